"""The SQL the PostgreSQL store runs, and the parameters of its one-statement `mark_sent`
(see digest/store/postgres.py for why each is one statement)."""

from __future__ import annotations

from typing import Any

from digest.store import SentEdition

__all__ = ["CLAIM", "TAKE_OVER", "UPSERT_STATUS", "MARK_SENT", "sent_params"]

# Pending, or claimed with a lease that ran out. Times are ISO UTC text: compared bytewise (COLLATE "C").
CLAIMABLE = """(e.status = 'pending'
       OR (e.status = 'claimed' AND (e.lease_until IS NULL OR e.lease_until COLLATE "C" <= %(now)s)))"""

CLAIM = f"""
WITH taken AS (
    UPDATE editions AS e
       SET status = 'claimed', attempts = e.attempts + 1, claimed_by = %(worker)s, lease_until = %(until)s,
           updated_at = %(now)s
     WHERE e.subscriber_id = %(sub)s AND e.edition_date = %(day)s AND {CLAIMABLE}
    RETURNING 1
), fresh AS (
    INSERT INTO editions (subscriber_id, edition_date, status, attempts, claimed_by, lease_until,
                          created_at, updated_at)
    SELECT %(sub)s::text, %(day)s::text, 'claimed', 1, %(worker)s::text, %(until)s::text, %(now)s::text, %(now)s::text
     WHERE NOT EXISTS (SELECT 1 FROM taken)
    ON CONFLICT (subscriber_id, edition_date) DO NOTHING
    RETURNING 1
)
SELECT TRUE AS won, NULL::text AS status, NULL::text AS claimed_by, NULL::text AS lease_until FROM taken
UNION ALL
SELECT TRUE, NULL, NULL, NULL FROM fresh
UNION ALL
SELECT FALSE, status, claimed_by, lease_until FROM editions
 WHERE subscriber_id = %(sub)s AND edition_date = %(day)s
   AND NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM fresh)
"""

# Take over a claim held by `owner` (a dead process on this host): compare-and-set on the holder.
TAKE_OVER = """
UPDATE editions SET status = 'claimed', attempts = attempts + 1, claimed_by = %(worker)s,
       lease_until = %(until)s, updated_at = %(now)s
 WHERE subscriber_id = %(sub)s AND edition_date = %(day)s AND status = 'claimed'
   AND claimed_by IS NOT DISTINCT FROM %(owner)s
RETURNING 1
"""

UPSERT_STATUS = """
INSERT INTO editions AS e (subscriber_id, edition_date, status, attempts, message_id, paper_count, error,
                           created_at, updated_at)
VALUES (%(sub)s, %(day)s, %(status)s, 1, %(message_id)s, %(count)s, %(error)s, %(now)s, %(now)s)
ON CONFLICT (subscriber_id, edition_date) DO UPDATE
    SET status = excluded.status,
        message_id = COALESCE(excluded.message_id, e.message_id),
        paper_count = COALESCE(excluded.paper_count, e.paper_count),
        error = excluded.error, claimed_by = NULL, lease_until = NULL, updated_at = excluded.updated_at
"""

# Edition `sent` and papers `seen` in one statement, hence one transaction. A data-modifying CTE
# runs exactly once whether or not the main query reads it.
MARK_SENT = f"""
WITH edition AS ({UPSERT_STATUS} RETURNING 1)
INSERT INTO seen (subscriber_id, paper_key, edition_date, sent_at)
SELECT %(sub)s, k, %(day)s, %(now)s FROM unnest(%(keys)s::text[]) AS k
ON CONFLICT (subscriber_id, paper_key) DO NOTHING
"""


def sent_params(e: SentEdition, at: str) -> dict[str, Any]:
    return {
        "sub": e.subscriber_id,
        "day": e.edition_date.isoformat(),
        "status": "sent",
        "message_id": e.message_id,
        "count": len(e.paper_keys),
        "error": None,
        "now": at,
        "keys": sorted(set(e.paper_keys)),  # sorted: concurrent inserts take index locks in one order
    }
