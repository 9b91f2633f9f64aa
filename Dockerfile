# digest: `digest run` (scheduler + /healthz, /metrics, one-click unsubscribe on :8080).
#   docker build -t digest .
#   docker run -d --name digest -p 8080:8080 --stop-timeout 130 \
#     -v digest-data:/data -v "$PWD/config:/app/config:ro" digest
# See docs/service.md (secrets, PostgreSQL, an SMTP relay, compose).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package (templates/ goes into the wheel via hatch force-include), then drop the
# sources. `tzdata` backs zoneinfo should the base image ever ship without /usr/share/zoneinfo.
WORKDIR /tmp/build
COPY pyproject.toml README.md ./
COPY digest/ digest/
COPY templates/ templates/
RUN pip install ".[postgres]" tzdata \
 && cd / && rm -rf /tmp/build

# An unprivileged user; /data holds the SQLite database and the Maildir outbox.
RUN groupadd --system --gid 10001 digest \
 && useradd --system --uid 10001 --gid digest --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin digest \
 && mkdir -p /data/outbox \
 && chown -R digest:digest /data

WORKDIR /app
# The example configuration; operators mount their own over /app/config.
COPY config/ /app/config/

ENV DIGEST_DATABASE_URL=sqlite:////data/digest.db \
    DIGEST_OUTBOX=/data/outbox \
    DIGEST_LISTEN=0.0.0.0:8080

VOLUME ["/data"]
USER digest
EXPOSE 8080

# No curl in slim: ask /healthz with the standard library, on the port of DIGEST_LISTEN (proxies
# ignored; a 503 or no answer -> exit 1 -> unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('DIGEST_LISTEN', ':8080').rpartition(':')[2]; u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# SIGTERM: start nothing new, finish the messages in flight (at most smtp.deadline, 120 s by
# default, + 5 s), record them, exit 0. Give it that long: `docker run --stop-timeout 130`,
# compose `stop_grace_period: 130s` (Docker's default is 10 s, then SIGKILL; a killed send is
# resent at most once, with the same Message-ID).
STOPSIGNAL SIGTERM
CMD ["digest", "run"]
