#!/usr/bin/env python3
"""Train the project's active-power forecaster and write it as a model bundle.

Usage: python tools/train_forecaster.py OUT.ldtmodel [--version 1.0.0] [--seed N]

Deterministic: the same seed gives the same bundle bytes (and SHA-256) on the
same machine and NumPy build, so a published model can be rebuilt and checked
(another CPU's BLAS may round the weights' last bit differently). Prints the
training loss, the held-out errors against the naive baselines, and the path.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from ldt.models.forecaster import bundle_of, evaluate, holdout_series, train_forecaster
from ldt.models.manifest import ModelError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Train, check, write; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="bundle file to write (e.g. forecast.ldtmodel)")
    parser.add_argument("--version", default="1.0.0", help="model version (default 1.0.0)")
    parser.add_argument("--seed", type=int, default=0, help="simulated meter and init seed")
    parser.add_argument("--window", type=int, default=12, help="readings per forecast")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        forecaster = train_forecaster(seed=args.seed, window=args.window)
        bundle = bundle_of(forecaster, version=args.version)
    except (ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    held = evaluate(forecaster, holdout_series(forecaster))
    try:
        args.out.write_bytes(bundle)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"training loss (MSE, normalised): {forecaster.train_loss:.5f} in {seconds:.1f} s")
    print(
        f"held-out RMSE: model {held.model_rmse:.1f} W, last value {held.last_value_rmse:.1f} W, "
        f"window mean {held.mean_rmse:.1f} W ({held.samples} forecasts)"
    )
    print(f"wrote {args.out} ({len(bundle):,} bytes, sha256 {hashlib.sha256(bundle).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
