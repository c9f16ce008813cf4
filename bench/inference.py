"""Edge inference: latency and memory of the project's forecaster (``meter-forecast``) on TFLite.

The bundle is built as ``tools/train_forecaster.py`` builds it (12-16-1 MLP),
read with ``read_bundle`` and loaded with ``LoadedModel.load``. The process
pins itself to one core, as a gateway's inference thread shares a Pi with the
pollers. Each run is one ``LoadedModel.run`` on a window of simulated meter
readings (normalise, invoke, denormalise), timed one by one. The baseline,
in the same run on the same windows, is the same network in NumPy
(``numpy_reference``, with the same scaling), per window as the agent would
call it; both must agree to 1e-4 of the scale.

Memory: the RSS of fresh interpreters, read from their own /proc/self/status:
a bare one, one that imported ``ldt.models`` and read the bundle (no runtime),
and one that loaded the model into the runtime and ran it once.

    python bench/inference.py            # 100,000 inferences
    python bench/inference.py --quick    # 3,000 inferences (CI)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _table import print_table

from ldt.models.bundle import read_bundle
from ldt.models.forecaster import bundle_of, holdout_series, numpy_reference, train_forecaster
from ldt.models.interpreter import LoadedModel, runtime_name
from ldt.models.manifest import ModelManifest
from ldt.models.tflite_writer import DenseLayer

WARMUP = 300

_RSS = """
import sys
def rss():
    with open('/proc/self/status', encoding='ascii') as fh:
        for line in fh:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise SystemExit('no VmRSS')
mode, path = sys.argv[1], sys.argv[2]
if mode != 'bare':
    from ldt.models.bundle import read_bundle
    with open(path, 'rb') as fh:
        bundle = read_bundle(fh.read())
if mode == 'loaded':
    from ldt.models.interpreter import LoadedModel
    model = LoadedModel.load(bundle)
    model.run([1500.0] * bundle.manifest.input_size)
print(rss())
"""


def _pin_to_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _time_each(
    fn: Callable[[Sequence[float]], list[float]], windows: list[list[float]]
) -> list[float]:
    """Per-call latency in ms of ``fn`` over ``windows``, after a warm-up."""
    for w in windows[:WARMUP]:
        fn(w)
    out = []
    clock = time.perf_counter_ns
    for w in windows:
        t0 = clock()
        fn(w)
        out.append((clock() - t0) / 1e6)
    return out


def _numpy_model(
    m: ModelManifest, layers: Sequence[DenseLayer]
) -> Callable[[Sequence[float]], list[float]]:
    """The baseline: what ``LoadedModel.run`` does, with NumPy doing the network."""
    (inp,) = m.inputs
    (out,) = m.outputs
    assert out.denormalise is not None
    mean, std = np.float32(inp.normalise.mean), np.float32(inp.normalise.std)
    o_mean, o_std = out.denormalise.mean, out.denormalise.std

    def run(window: Sequence[float]) -> list[float]:
        x = (np.asarray(window, dtype=np.float32) - mean) / std
        y = numpy_reference(layers, x[None, :])[0]
        return [float(v) * o_std + o_mean for v in y]

    return run


def _stats(ms: list[float]) -> tuple[float, float, float]:
    """(p50, p95, inferences per second) of per-call latencies."""
    arr = np.array(ms)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95)), len(ms) / (arr.sum() / 1e3)


def _rss_kib(mode: str, path: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _RSS, mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 3_000 if args.quick else 100_000
    cpu = _pin_to_one_core()

    forecaster = train_forecaster(seed=0)
    data = bundle_of(forecaster)
    bundle = read_bundle(data)
    m = bundle.manifest
    window = forecaster.window
    series = holdout_series(forecaster, samples=runs + window)
    windows = [series[i : i + window].tolist() for i in range(runs)]
    shape = "-".join(str(n) for n in [window, *(layer.outputs for layer in forecaster.layers)])

    numpy_run = _numpy_model(m, forecaster.layers)
    with LoadedModel.load(bundle) as model:
        got = np.array([model.run(w)[0] for w in windows[:500]])
        want = np.array([numpy_run(w)[0] for w in windows[:500]])
        scale = m.inputs[0].normalise.std
        worst = float(np.max(np.abs(got - want)))
        if worst > 1e-4 * scale:
            raise SystemExit(f"TFLite and NumPy disagree by {worst:.4g} W (> 1e-4 of {scale:.1f})")
        tflite_ms = _time_each(model.run, windows)
        numpy_ms = _time_each(numpy_run, windows)
        stats = model.latency()

    with tempfile.TemporaryDirectory(prefix="ldt-bench-inf-") as d:
        path = Path(d) / "forecast.ldtmodel"
        path.write_bytes(data)
        rss = {mode: _rss_kib(mode, path) for mode in ("bare", "imported", "loaded")}

    t50, t95, t_rate = _stats(tflite_ms)
    n50, n95, n_rate = _stats(numpy_ms)
    runtime = runtime_name()
    version = metadata.version(runtime)
    print_table(
        f"inference, {m.name} {m.version} (MLP {shape}), "
        f"{runs:,} windows of simulated readings, pinned to cpu {cpu} "
        f"({os.cpu_count()} cores; {runtime} {version}; max |TFLite - NumPy| {worst:.2g} W)",
        ("implementation", "inferences", "per s", "p50 ms", "p95 ms", "speed vs NumPy"),
        [
            (
                "NumPy, same network per window (baseline)",
                f"{runs:,}",
                f"{n_rate:,.0f}",
                f"{n50:.4f}",
                f"{n95:.4f}",
                "1.00x",
            ),
            (
                "TFLite, LoadedModel.run",
                f"{runs:,}",
                f"{t_rate:,.0f}",
                f"{t50:.4f}",
                f"{t95:.4f}",
                f"{n_rate and t_rate / n_rate:.2f}x",
            ),
        ],
    )
    mb = 1024.0
    print_table(
        "RSS of a fresh python process (VmRSS from /proc/self/status)",
        ("process", "RSS MiB", "over bare python MiB"),
        [
            ("bare python (baseline)", f"{rss['bare'] / mb:.1f}", "0.0"),
            (
                "imported ldt.models, read the bundle (no runtime)",
                f"{rss['imported'] / mb:.1f}",
                f"{(rss['imported'] - rss['bare']) / mb:.1f}",
            ),
            (
                f"loaded the model in {runtime} and ran it once",
                f"{rss['loaded'] / mb:.1f}",
                f"{(rss['loaded'] - rss['bare']) / mb:.1f}",
            ),
        ],
    )
    budget = m.limits.max_latency_ms
    print(
        f"TFLite vs NumPy: {t_rate / n_rate:.2f}x; "
        f"LoadedModel.latency(): p50 {stats.p50_ms:.4f} ms, p95 {stats.p95_ms:.4f} ms "
        f"over the last {stats.window:,}, {stats.over_budget} over the {budget:g} ms budget"
    )
    if t95 > budget:
        raise SystemExit(f"TFLite p95 {t95:.3f} ms is over the manifest's {budget:g} ms budget")


if __name__ == "__main__":
    main()
