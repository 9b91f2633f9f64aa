# digest: `digest run` (scheduler + /healthz, /metrics, one-click unsubscribe on :8080).
#   docker build -t digest .
#   docker run -d -p 8080:8080 -v digest-data:/data -v "$PWD/config:/app/config:ro" digest
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

# No curl in slim: ask /healthz with the standard library (proxies ignored; 503 -> unhealthy).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["digest", "run"]
