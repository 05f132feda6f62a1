"""prefix_affinity: requests with the same affinity key go to the same provider of a pool. Pure.

Rules:
- Rendezvous (highest random weight) hashing: each routable candidate scores
  `weight / -ln(u)`, u = a stable hash of (key, provider) in (0, 1); the highest score is the
  key's preferred provider, and the rest follow by score. A provider that leaves the candidates
  (unavailable, excluded, removed) moves only the keys it was preferred for; every other key
  keeps its provider and its whole order. No state and no randomness: every router replica
  computes the same order from the same key and candidates.
- Bounded by load: walking that order, the first candidate whose pressure (backend_load's
  score: (busy + 1) / (capacity x weight) + KV term) is at most the bound goes first; the rest
  keep their order. The bound is the larger of `FREE_SLOT` (the request still finds a free
  sequence slot: an engine batches running sequences, so a cached prefix is worth more than a
  few sequences more or less) and `AFFINITY_LOAD_FACTOR` x the least pressure +
  `AFFINITY_SLACK`. So a key stays put until its provider would queue it while another has
  room, and then spills to its *second* choice (the same for every replica), not to whoever
  is idle.
- Candidates with no live load report go after those with one (no worker may be running).
- A request without a key is ranked as backend_load.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from services.router.strategies import Candidate, pressure

FREE_SLOT = 1.0  # (busy + 1) / capacity <= 1: this request runs at once, it does not wait
AFFINITY_LOAD_FACTOR = 2.0
AFFINITY_SLACK = 0.25  # a quarter of the provider's capacity


def score(key: str, candidate: Candidate) -> float:
    digest = hashlib.blake2b(f"{key}\x00{candidate.provider}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)  # in (0, 1)
    weight = candidate.effective_weight
    return weight / -math.log(u) if weight > 0 else 0.0


def rendezvous(key: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-score(key, c), c.provider))


def rank_by_affinity(key: str, candidates: Sequence[Candidate]) -> list[Candidate]:
    order = rendezvous(key, candidates)
    known = [c for c in order if c.busy is not None]
    order = known + [c for c in order if c.busy is None]
    if not known:
        return order
    least = min(pressure(c)[1] for c in known)
    bound = max(FREE_SLOT, AFFINITY_LOAD_FACTOR * least + AFFINITY_SLACK)
    first = next((c for c in known if pressure(c)[1] <= bound), known[0])
    return [first, *(c for c in order if c is not first)]
