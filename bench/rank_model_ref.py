"""The per-reader model's decision written plainly, one reader at a time, as first committed
(ed99144): the reference `bench/rank_speed.py` checks the batched fast path against.

`reference(ranker, subs, ratings, rows, rel, kw_ok, blocked)` takes the dense inputs of one call
of `ReaderModels.rows` (copies) and gives, per reader, (paper positions best first, scores,
{position: via}) as `score_many` and `materialise` see them. Same formulas as digest/rank/model.py
(docstring there); nothing in place, no batching, nothing shared but the similarities and the
calibration (`Ratings`).
"""

from __future__ import annotations

import numpy as np

from digest.rank.model import (
    ADMIT, ADMIT_COS, EXPLORE, MIN_AUC, NEAR_DUP, U_CLIP, VIA_EXPLORE, VIA_MODEL, WEIGHT, Ratings, _mean_sim,
)


def reference(ranker, subs, ratings: Ratings, rows, rel, kw_ok, blocked):
    out = []
    for k, sub in enumerate(subs):
        row = int(rows[k])
        ups, downs = ratings.ups[row], ratings.downs[row]
        s = _mean_sim(ratings.sim, [ups], [downs])[0]  # one reader's sparse row @ sim
        lu, ld, auc = ratings.level_up[row], ratings.level_down[row], ratings.auc[row]
        has_down = np.isfinite(ld)
        zero = ld if has_down else s.mean(dtype=np.float64)
        scale = lu - zero
        trusted = bool(np.isfinite(lu) and scale > 1e-4 and (not has_down or np.nan_to_num(auc) >= MIN_AUC))
        if trusted:
            u = np.clip((s - np.float32(zero)) * np.float32(1.0 / scale), -U_CLIP, U_CLIP)
        else:
            u = np.clip(s * np.float32(0.0), -U_CLIP, U_CLIP)
        sim = ratings.sim
        dup = (sim[downs] >= NEAR_DUP).any(0) if len(downs) else np.zeros(len(s), bool)
        sibling = (sim[ups] >= ADMIT_COS).any(0)
        close = (sim[ups] >= EXPLORE * ADMIT_COS).any(0)
        out_ = blocked[k] | dup
        admit = (u >= ADMIT) & sibling & ~kw_ok[k] & ~out_
        included = (kw_ok[k] & ~out_) | admit
        score = rel[k] + WEIGHT * u
        papers = np.flatnonzero(included)
        total = np.round(score[papers].astype(np.float64), 6)
        order = np.lexsort((ranker.tiebreak[papers], -(total + ranker.boost[papers])))
        papers, total = papers[order], total[order]
        marks = {int(p): VIA_MODEL for p in papers if admit[p]}
        unsure = (u >= EXPLORE * ADMIT) & close & ~admit & ~kw_ok[k] & ~out_
        if trusted and unsure.any() and included.sum() < sub.max_papers:
            e = int(np.argmax(np.where(unsure, u, -np.inf)))
            papers, total = np.append(papers, e), np.append(total, score[e])
            marks[e] = VIA_EXPLORE
        out.append((papers, total, marks))
    return out
