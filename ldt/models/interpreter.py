"""Run a bundle's model with the TFLite interpreter, after checking it against its manifest.

The runtime is found on first use, not on import: importing this module costs
neither NumPy nor TFLite, so an agent without models never pays their memory
(about 25 MiB of RSS once a model is loaded: see ``bench/inference.py``).
``tflite_runtime`` (the historical interpreter-only wheel) is tried first, then
``ai_edge_litert`` (its successor, the one ldt depends on). Each is probed
with a tiny model, because importing is not proof: tflite-runtime 2.14, the
last for Python 3.11, is built against NumPy 1 and fails under NumPy 2 only
when it builds an interpreter. With no working runtime, every load raises
``ModelError`` saying what to install.

A ``LoadedModel`` is not safe for two threads at once (the interpreter's
tensors are shared state): its ``run`` holds a lock, so calls from worker
threads (the agent runs inference off the event loop) queue rather than
corrupt each other.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from ldt.models.bundle import Bundle
from ldt.models.manifest import ModelError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["LatencyStats", "LoadedModel", "runtime_name"]

_RUNTIMES: Final = (
    ("tflite-runtime", "tflite_runtime.interpreter"),
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
)
_LATENCY_SAMPLES: Final = 1024
"""Recent inferences kept for the percentiles: bounded, so months of inference cost ~32 KB."""


def _probe(interpreter_class: Any) -> None:
    """Run a 1x1 identity model; raises whatever a broken runtime raises.

    Importing is not enough: tflite-runtime 2.14 imports under NumPy 2, then
    fails on the first interpreter it builds (it was compiled against NumPy 1).
    """
    import numpy as np

    from ldt.models.tflite_writer import DenseLayer, write_mlp

    identity = DenseLayer(np.ones((1, 1), np.float32), np.zeros(1, np.float32))
    interpreter = interpreter_class(model_content=write_mlp([identity]))
    interpreter.allocate_tensors()
    interpreter.set_tensor(
        interpreter.get_input_details()[0]["index"], np.full((1, 1), 2.0, np.float32)
    )
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    if out.shape != (1, 1) or out[0, 0] != 2.0:
        raise RuntimeError(f"an identity model gave {out.tolist()} for [[2.0]]")


@cache
def _runtime() -> tuple[str, Any]:
    """(distribution name, Interpreter class) of the first runtime that imports and works."""
    broken: list[str] = []
    for dist, module in _RUNTIMES:
        try:
            interpreter_class = importlib.import_module(module).Interpreter
        except ModuleNotFoundError:
            continue
        except ImportError as exc:
            broken.append(f"{dist} is installed but does not import: {exc}")
            continue
        try:
            _probe(interpreter_class)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next runtime
            cause = exc.__cause__ or exc
            broken.append(f"{dist} is installed but cannot run a model: {cause}")
            continue
        return dist, interpreter_class
    hint = f" ({'; '.join(broken)})" if broken else ""
    raise ModelError(
        f"no TFLite runtime installed: pip install tflite-runtime or ai-edge-litert{hint}"
    )


def runtime_name() -> str:
    """The TFLite runtime models run on (``tflite-runtime`` or ``ai-edge-litert``).

    Imports it on the first call; raises ``ModelError`` when none is installed.
    """
    return str(_runtime()[0])


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Inference latency in milliseconds over the last ``window`` runs (``count`` in total)."""

    count: int
    """Inferences since the model was loaded."""
    over_budget: int
    """Inferences slower than the manifest's ``limits.max_latency_ms``."""
    window: int
    last_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ordered, non-empty sequence."""
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _shape(detail: dict[str, Any]) -> list[int]:
    return [int(d) for d in detail["shape"]]


class LoadedModel:
    """A bundle's model, checked and ready; build it with ``LoadedModel.load``."""

    def __init__(
        self,
        *,
        bundle: Bundle,
        interpreter: Any,
        input_index: int,
        output_index: int,
    ) -> None:
        import numpy as np

        m = bundle.manifest
        self.bundle = bundle
        self._interpreter: Any = interpreter
        self._input_index = input_index
        self._output_index = output_index
        self._lock = threading.Lock()
        self._in_mean: NDArray[np.float32] = np.concatenate(
            [np.full(i.window, i.normalise.mean, dtype=np.float32) for i in m.inputs]
        )
        self._in_std: NDArray[np.float32] = np.concatenate(
            [np.full(i.window, i.normalise.std, dtype=np.float32) for i in m.inputs]
        )
        self._out_mean = [o.denormalise.mean if o.denormalise else 0.0 for o in m.outputs]
        self._out_std = [o.denormalise.std if o.denormalise else 1.0 for o in m.outputs]
        self._budget_ms = m.limits.max_latency_ms
        self._recent: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._count = 0
        self._over_budget = 0
        self.last_latency_ms: float = 0.0
        """Latency of the last ``run`` (normalise, invoke, denormalise), in milliseconds."""

    @classmethod
    def load(cls, bundle: Bundle) -> LoadedModel:
        """Build the interpreter and check its tensors against the manifest; raises ``ModelError``.

        The model must have exactly one float32 input ``[1, sum(window)]`` and one
        float32 output ``[1, len(outputs)]``.
        """
        import numpy as np

        _, interpreter_class = _runtime()
        m = bundle.manifest
        try:
            interpreter = interpreter_class(
                model_content=bundle.tflite, num_threads=m.limits.threads
            )
            interpreter.allocate_tensors()
            # reading the details decodes tensor names: a damaged name fails here
            inputs = interpreter.get_input_details()
            outputs = interpreter.get_output_details()
        except (ValueError, RuntimeError) as exc:  # UnicodeDecodeError is a ValueError
            raise ModelError(f"not a valid TFLite model: {exc}".strip()) from None
        where = f"model {m.name} {m.version}"
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{where} has {len(inputs)} input and {len(outputs)} output tensors; "
                "expected exactly one of each"
            )
        for role, detail, width in (
            ("input", inputs[0], m.input_size),
            ("output", outputs[0], m.output_size),
        ):
            expected = [1, width]
            if _shape(detail) != expected:
                origin = "sum of the inputs' windows" if role == "input" else "number of outputs"
                raise ModelError(
                    f"{where}: the manifest expects an {role} tensor of shape {expected} "
                    f"({origin}), the model's is {_shape(detail)}"
                )
            if np.dtype(detail["dtype"]) != np.float32:
                raise ModelError(
                    f"{where}: the {role} tensor must be float32, the model's is "
                    f"{np.dtype(detail['dtype']).name}"
                )
        return cls(
            bundle=bundle,
            interpreter=interpreter,
            input_index=int(inputs[0]["index"]),
            output_index=int(outputs[0]["index"]),
        )

    def run(self, window: Sequence[float]) -> list[float]:
        """The outputs, in manifest order, for one input window; raises ``ModelError``.

        ``window`` is the inputs' windows concatenated in manifest order, each
        oldest first, in the points' own units: normalising and denormalising
        happen here.
        """
        import numpy as np

        started = time.perf_counter()
        x = np.asarray(window, dtype=np.float32)
        if x.shape != self._in_mean.shape:
            raise ModelError(
                f"the model takes {self._in_mean.shape[0]} values per run, got {len(window)}"
            )
        if not np.isfinite(x).all():
            raise ModelError("the input window holds a non-finite value (NaN or infinity)")
        x = ((x - self._in_mean) / self._in_std).reshape(1, -1)
        with self._lock:
            if self._interpreter is None:
                raise ModelError("the model is closed")
            try:
                self._interpreter.set_tensor(self._input_index, x)
                self._interpreter.invoke()
                y = self._interpreter.get_tensor(self._output_index)[0].tolist()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"inference failed: {exc}") from None
            result = [v * s + mu for v, s, mu in zip(y, self._out_std, self._out_mean, strict=True)]
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            self.last_latency_ms = elapsed_ms
            self._recent.append(elapsed_ms)
            self._count += 1
            if elapsed_ms > self._budget_ms:
                self._over_budget += 1
        return result

    def latency(self) -> LatencyStats:
        """Latency over the recent runs (all zero before the first)."""
        with self._lock:
            ordered = sorted(self._recent)
            count, over = self._count, self._over_budget
        if not ordered:
            return LatencyStats(count, over, 0, 0.0, 0.0, 0.0, 0.0)
        return LatencyStats(
            count=count,
            over_budget=over,
            window=len(ordered),
            last_ms=self.last_latency_ms,
            p50_ms=_percentile(ordered, 50),
            p95_ms=_percentile(ordered, 95),
            max_ms=ordered[-1],
        )

    def close(self) -> None:
        """Free the interpreter; ``run`` raises ``ModelError`` afterwards. Idempotent."""
        with self._lock:
            self._interpreter = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
