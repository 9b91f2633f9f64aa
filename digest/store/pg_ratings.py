"""The PostgreSQL store's paper vectors and ratings (schema version 2): a mixin of PostgresStore.

Every method is one statement (its own transaction) through the store's `_call` (reconnect once,
errors as StoreError, the password never in a message), and safe to retry. Read-only mode
(`--dry-run`) writes nothing; a read-only store on a database without the tables reads nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from digest.models import RatedPaper
from digest.store import VOTES
from digest.store.sql import parse_time, ts

__all__ = ["PostgresRatings"]

T = TypeVar("T")

SAVE_VECTORS = """
INSERT INTO papers AS p (paper_key, title, model, vector, first_seen)
SELECT k, t, %(model)s, v, %(now)s FROM unnest(%(keys)s::text[], %(titles)s::text[], %(vectors)s::bytea[]) AS u(k, t, v)
ON CONFLICT (paper_key) DO UPDATE SET title = excluded.title, model = excluded.model, vector = excluded.vector
    WHERE p.model <> excluded.model
"""

SAVE_DENSE = """
UPDATE papers AS p SET dense_model = %(model)s, dense = u.v
  FROM unnest(%(keys)s::text[], %(vectors)s::bytea[]) AS u(k, v)
 WHERE p.paper_key = u.k
"""

# The vote it replaces comes from the statement's snapshot; the row lock of the upsert (or the
# delete) orders concurrent votes on one paper: the last one wins.
RATE = """
WITH old AS (SELECT vote FROM ratings WHERE subscriber_id = %(sub)s AND paper_key = %(key)s),
upsert AS (
    INSERT INTO ratings AS r (subscriber_id, paper_key, vote, rated_at)
    SELECT %(sub)s, %(key)s, %(vote)s, %(now)s WHERE %(vote)s <> 0
    ON CONFLICT (subscriber_id, paper_key) DO UPDATE SET vote = excluded.vote, rated_at = excluded.rated_at
        WHERE r.vote <> excluded.vote
    RETURNING 1
), removed AS (
    DELETE FROM ratings WHERE subscriber_id = %(sub)s AND paper_key = %(key)s AND %(vote)s = 0 RETURNING 1
)
SELECT COALESCE((SELECT vote FROM old), 0) AS previous
"""

RATINGS = """
SELECT r.subscriber_id, r.paper_key, r.vote, r.rated_at, p.title, p.model, p.vector
  FROM ratings r LEFT JOIN papers p ON p.paper_key = r.paper_key
 WHERE r.subscriber_id = ANY(%s::text[])
 ORDER BY r.subscriber_id, r.rated_at COLLATE "C", r.paper_key COLLATE "C"
"""


class PostgresRatings:
    read_only: bool
    _schema: int  # the schema version the store works with (PostgresStore)

    def _call(self, fn: Callable[[Any, bool], T]) -> T: ...  # provided by PostgresStore

    def _v2(self) -> bool:
        """Whether the tables exist (a read-only store does not migrate an older database)."""
        return self._schema >= 2

    def save_vectors(self, model: str, rows: Sequence[tuple[str, str, bytes]], *, now: dt.datetime) -> None:
        if self.read_only or not rows:
            return
        ordered = sorted({key: (title, bytes(vector)) for key, title, vector in rows}.items())  # one lock order
        params = {
            "model": model,
            "now": ts(now),
            "keys": [k for k, _ in ordered],
            "titles": [t for _, (t, _) in ordered],
            "vectors": [v for _, (_, v) in ordered],
        }
        self._call(lambda c, _: c.execute(SAVE_VECTORS, params))

    def vectors(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        if not keys or not self._v2():
            return {}
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT paper_key, vector FROM papers WHERE model = %s AND paper_key = ANY(%s::text[])",
                (model, list(keys)),
            ).fetchall()
        )
        return {r["paper_key"]: bytes(r["vector"]) for r in rows}

    def newest_vectors(self, model: str, limit: int) -> list[bytes]:
        if not self._v2():
            return []
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT vector FROM papers WHERE model = %s ORDER BY first_seen DESC, paper_key COLLATE \"C\" LIMIT %s",
                (model, limit),
            ).fetchall()
        )
        return [bytes(r["vector"]) for r in rows]

    def _v4(self) -> bool:
        """Whether papers have the dense columns (see `_v2`)."""
        return self._schema >= 4

    def save_dense(self, model: str, rows: Sequence[tuple[str, bytes]]) -> None:
        if self.read_only or not rows:
            return
        ordered = sorted({key: bytes(vector) for key, vector in rows}.items())  # one lock order
        params = {"model": model, "keys": [k for k, _ in ordered], "vectors": [v for _, v in ordered]}
        self._call(lambda c, _: c.execute(SAVE_DENSE, params))

    def dense(self, model: str, keys: Collection[str]) -> dict[str, bytes]:
        if not keys or not self._v4():
            return {}
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT paper_key, dense FROM papers WHERE dense_model = %s AND paper_key = ANY(%s::text[])",
                (model, list(keys)),
            ).fetchall()
        )
        return {r["paper_key"]: bytes(r["dense"]) for r in rows}

    def titles(self, keys: Collection[str]) -> dict[str, str]:
        if not keys or not self._v2():
            return {}
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT paper_key, title FROM papers WHERE paper_key = ANY(%s::text[])", (list(keys),)
            ).fetchall()
        )
        return {r["paper_key"]: r["title"] for r in rows}

    def rate(self, subscriber_id: str, paper_key: str, vote: int, *, now: dt.datetime) -> int:
        if vote not in VOTES:
            raise ValueError(f"vote must be one of {VOTES}, not {vote!r}")
        if self.read_only:
            if not self._v2():
                return 0
            row = self._call(
                lambda c, _: c.execute(
                    "SELECT vote FROM ratings WHERE subscriber_id = %s AND paper_key = %s", (subscriber_id, paper_key)
                ).fetchone()
            )
            return int(row["vote"]) if row else 0
        params = {"sub": subscriber_id, "key": paper_key, "vote": vote, "now": ts(now)}
        row = self._call(lambda c, _: c.execute(RATE, params).fetchone())
        return int(row["previous"]) if row else 0

    def ratings_many(self, subscriber_ids: list[str], model: str) -> dict[str, list[RatedPaper]]:
        out: dict[str, list[RatedPaper]] = {s: [] for s in subscriber_ids}
        if not subscriber_ids or not self._v2():
            return out
        rows = self._call(lambda c, _: c.execute(RATINGS, (list(subscriber_ids),)).fetchall())
        for r in rows:
            same = r["model"] == model and r["vector"] is not None
            vector = bytes(r["vector"]) if same else None
            out[r["subscriber_id"]].append(
                RatedPaper(r["paper_key"], int(r["vote"]), r["title"] or "", vector, parse_time(r["rated_at"]))
            )
        return out

    def rating_counts(self) -> dict[str, tuple[int, int]]:
        if not self._v2():
            return {}
        rows = self._call(
            lambda c, _: c.execute(
                "SELECT subscriber_id, COUNT(*) FILTER (WHERE vote > 0) AS ups, "
                "COUNT(*) FILTER (WHERE vote < 0) AS downs FROM ratings GROUP BY subscriber_id"
            ).fetchall()
        )
        return {r["subscriber_id"]: (int(r["ups"]), int(r["downs"])) for r in rows}
