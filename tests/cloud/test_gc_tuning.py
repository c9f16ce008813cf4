"""The broker's collector settings: applied by the serve entry point only, and undoable."""

from __future__ import annotations

import gc

from ldt.cloud.gc_tuning import GC_THRESHOLDS, tune_collector


def test_tune_collector_raises_thresholds_and_freezes_startup_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what existed at start-up is left out of collections
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_importing_the_cloud_changes_nothing() -> None:
    import ldt.cloud.server  # noqa: F401 - the import is the test

    assert gc.get_threshold() != GC_THRESHOLDS
