"""Models on the gateway: sliding windows fed from readings, outputs as derived readings.

Each installed model (``install``, from a verified bundle) keeps one window per manifest
input, fed by that input's device point. When the first input's window is full and has
taken ``step`` new readings since the last run, and every other window is full, the model
runs once and each output becomes a ``Reading`` of the output's device and attribute: it
is buffered and synced like any other and carries the model's name and version as its
provenance (``SeriesInfo.provenance``), so the twin tells a forecast from a measurement.

A bad reading empties that input's window: a model fed across a gap would predict from
values that are not consecutive. A run that fails (non-finite input, interpreter error)
is logged and counted; readings keep flowing.

Runs on the event loop: the project's models take tens of microseconds (bench/inference.py);
a model whose p95 exceeds its manifest's ``max_latency_ms`` is logged.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ldt.reading import Quality, Reading, Structured, Value

if TYPE_CHECKING:
    from ldt.models.bundle import Bundle
    from ldt.models.interpreter import LoadedModel

__all__ = ["Derived", "InferenceEngine", "RunningModel"]

_log = logging.getLogger("ldt.agent.inference")


@dataclass(frozen=True, slots=True)
class Derived:
    """One model output: the reading and where it lands."""

    reading: Reading
    unit: str | None
    provenance: str


@dataclass
class RunningModel:
    """One installed model and its windows."""

    model: LoadedModel
    artifact_version: int
    windows: list[deque[float]]
    since_run: int = 0
    runs: int = 0
    failures: int = 0
    over_budget_logged: bool = field(default=False)

    @property
    def name(self) -> str:
        """The manifest's name."""
        return self.model.bundle.manifest.name

    @property
    def provenance(self) -> str:
        """``model NAME VERSION``: what derived readings carry."""
        manifest = self.model.bundle.manifest
        return f"model {manifest.name} {manifest.version}"


class InferenceEngine:
    """The installed models, by name."""

    def __init__(self) -> None:
        self.models: dict[str, RunningModel] = {}
        self._by_source: dict[tuple[str, str], list[tuple[RunningModel, int]]] = {}

    def install(self, bundle: Bundle, artifact_version: int) -> RunningModel:
        """Load ``bundle`` and put it in service, replacing a model of the same name.

        Raises ``ModelError`` (and the running version keeps running) if the model does
        not load or its tensors do not match the manifest.
        """
        from ldt.models.interpreter import LoadedModel

        loaded = LoadedModel.load(bundle)
        windows: list[deque[float]] = [deque(maxlen=i.window) for i in bundle.manifest.inputs]
        running = RunningModel(model=loaded, artifact_version=artifact_version, windows=windows)
        old = self.models.get(bundle.manifest.name)
        self.models[bundle.manifest.name] = running
        if old is not None:
            old.model.close()
        self._index()
        _log.info(
            "model running",
            extra={"model": running.provenance, "artifact_version": artifact_version},
        )
        return running

    def _index(self) -> None:
        by_source: dict[tuple[str, str], list[tuple[RunningModel, int]]] = {}
        for running in self.models.values():
            for position, spec in enumerate(running.model.bundle.manifest.inputs):
                by_source.setdefault((spec.device, spec.point), []).append((running, position))
        self._by_source = by_source

    def outputs(self) -> set[tuple[str, str]]:
        """(device, attribute) of every output: sources a rule may watch."""
        return {
            (o.device, o.attribute)
            for running in self.models.values()
            for o in running.model.bundle.manifest.outputs
        }

    def observe(self, reading: Reading) -> list[Derived]:
        """Feed one reading; the derived readings of every model it completed a step of."""
        targets = self._by_source.get((reading.device_id, reading.point))
        if not targets:
            return []
        out: list[Derived] = []
        number = _number(reading.value)
        for running, position in targets:
            window = running.windows[position]
            if reading.quality == Quality.BAD or number is None:
                window.clear()
                continue
            window.append(number)
            if position != 0:
                continue
            running.since_run += 1
            manifest = running.model.bundle.manifest
            if running.since_run < manifest.inputs[0].step:
                continue
            if any(len(w) < w.maxlen for w in running.windows if w.maxlen is not None):
                continue
            running.since_run = 0
            out.extend(self._run(running, reading.observed_at_ms))
        return out

    def _run(self, running: RunningModel, at_ms: int) -> list[Derived]:
        from ldt.models.manifest import ModelError

        values = [v for w in running.windows for v in w]
        try:
            outputs = running.model.run(values)
        except ModelError as exc:
            running.failures += 1
            _log.warning("inference failed", extra={"model": running.name, "reason": str(exc)})
            return []
        running.runs += 1
        self._watch_latency(running)
        manifest = running.model.bundle.manifest
        return [
            Derived(
                reading=Reading(
                    device_id=spec.device,
                    point=spec.attribute,
                    value=float(value),
                    observed_at_ms=at_ms,
                ),
                unit=spec.unit,
                provenance=running.provenance,
            )
            for spec, value in zip(manifest.outputs, outputs, strict=True)
        ]

    def _watch_latency(self, running: RunningModel) -> None:
        if running.over_budget_logged or running.runs % 100:
            return
        stats = running.model.latency()
        budget = running.model.bundle.manifest.limits.max_latency_ms
        if stats.p95_ms > budget:
            running.over_budget_logged = True
            _log.warning(
                "model slower than its manifest allows",
                extra={"model": running.name, "p95_ms": stats.p95_ms, "budget_ms": budget},
            )

    def close(self) -> None:
        """Release every interpreter."""
        for running in self.models.values():
            running.model.close()
        self.models.clear()
        self._by_source.clear()


def _number(value: Value | Structured | None) -> float | None:
    if isinstance(value, Structured):
        return None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None if not isinstance(value, bool) else float(value)
    return float(value)
