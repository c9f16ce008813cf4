"""The cyclic garbage collector's settings for the broker process (``ldt cloud serve``).

Why: a 1,000-entity batch parses into ~50,000 dicts and lists that live for one request.
With CPython's default first threshold (700 allocations) that is ~70 young collections per
batch, and the survivors of each (the batch still in use) are promoted and traversed again
by older collections, together with every long-lived object of the process (the JSON-LD
contexts, compiled subscriptions, caches). Measured in-process on the write paths: 15-20 %
of an upsert's CPU. The broker's request objects are freed by reference counting (no
cycles in JSON documents), so collecting less often costs little memory; the objects that
exist once the server is up are frozen out of every collection.

Only the broker's own entry point calls this: the agent on a small gateway keeps the
defaults, and importing ldt never changes a process-wide setting.
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLDS", "tune_collector"]

GC_THRESHOLDS = (50_000, 20, 20)
"""(young, middle, old) as ``gc.set_threshold`` takes them."""


def tune_collector() -> None:
    """Collect once, freeze what exists (start-up objects), then raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
