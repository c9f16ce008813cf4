"""The project's own model: a short-term forecast of an energy meter's active power.

It predicts the next ``active_power`` reading of an Eastron SDM120 from the
last ``window`` readings. The training data is the Modbus simulator's own
value model (``ldt.simulators.modbus.model``), stepped at the profile's poll
interval, so the model forecasts exactly what the demo gateway reads: a
daily load curve (compressed to ``LOAD_PERIOD_S``) with 3 % white noise on
the current and random walks on voltage and power factor.

Training is NumPy only, full-batch Adam on a 2-layer MLP, seeded: the same
arguments give the same weights, so the same bundle bytes, on one machine and
NumPy build (another CPU's BLAS may round the last bit differently). A
different seed or window gives a different model, which is how tests tell
versions apart.
The held-out check uses another simulated meter (another seed), so a model
that memorised its meter is caught.

This module imports the simulator: the cloud must not import it (import
contracts); it is for tools and tests that build the bundle.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ldt.models.bundle import pack_bundle
from ldt.models.manifest import ModelError, ModelManifest, parse_manifest
from ldt.models.tflite_writer import DenseLayer, write_mlp
from ldt.simulators.modbus.model import DeviceModel
from ldt.simulators.modbus.profile import load_sim_profile, resolve_profile

__all__ = [
    "ATTRIBUTE",
    "DEVICE",
    "MODEL_NAME",
    "POINT",
    "PROFILE",
    "Evaluation",
    "Forecaster",
    "build_bundle",
    "bundle_of",
    "evaluate",
    "holdout_series",
    "manifest_for",
    "numpy_reference",
    "point_unit",
    "simulate_active_power",
    "train_forecaster",
]

MODEL_NAME: Final = "meter-forecast"
DEVICE: Final = "meter-1"
PROFILE: Final = "eastron-sdm120"
POINT: Final = "active_power"
ATTRIBUTE: Final = "activePowerForecast"
_INTERVAL_S: Final = 5.0  # the profile's poll_interval_s: one reading per step
_TRAIN_SAMPLES: Final = 4 * 720  # four simulated days of 720 readings
_HOLDOUT_SEED_OFFSET: Final = 1_000_003


def point_unit(point: str = POINT, profile: str = PROFILE) -> str | None:
    """The point's ``unit`` in the shipped profile (``WTT`` for active power), read as data."""
    with resolve_profile(profile).open("rb") as fh:
        data = tomllib.load(fh)
    for raw in data.get("points", []):
        if isinstance(raw, dict) and raw.get("name") == point:
            unit = raw.get("unit")
            return unit if isinstance(unit, str) else None
    raise ModelError(f"profile {profile} has no point {point!r}")


def simulate_active_power(
    *, seed: int, samples: int, interval_s: float = _INTERVAL_S
) -> NDArray[np.float64]:
    """``samples`` consecutive ``active_power`` readings (W) of a simulated SDM120.

    The same model the Modbus simulator serves with ``seed``, without a network.
    """
    profile = load_sim_profile(resolve_profile(PROFILE))
    points = {p.name: p for p in profile.points}
    model = DeviceModel(points=profile.points, seed=seed, unit_id=1)
    out = np.empty(samples, dtype=np.float64)
    for i in range(samples):
        model.step(interval_s, points)
        out[i] = float(model.values[POINT])
    return out


def _windows(series: NDArray[np.float64], window: int) -> tuple[NDArray[np.float64], ...]:
    """(inputs [n, window], next value [n]) for every full window of ``series``."""
    n = series.shape[0] - window
    if n < 1:
        raise ValueError(f"a series of {series.shape[0]} readings has no window of {window}")
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]
    return series[idx], series[window:]


def numpy_reference(layers: Sequence[DenseLayer], x: NDArray[np.floating]) -> NDArray[np.float32]:
    """``layers`` applied to ``x`` ([n, in], already normalised) in float32, as TFLite does."""
    h = np.asarray(x, dtype=np.float32)
    for layer in layers:
        h = h @ layer.weights.T + layer.bias
        if layer.activation == "relu":
            h = np.maximum(h, np.float32(0.0))
    return h


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Root-mean-square errors (W) of one-step forecasts on a series."""

    model_rmse: float
    last_value_rmse: float
    """Baseline: the next reading equals the last one."""
    mean_rmse: float
    """Baseline: the next reading equals the window's mean."""
    samples: int


@dataclass(frozen=True, slots=True)
class Forecaster:
    """A trained forecaster: its layers work on normalised power, ``(W - mean) / std``."""

    layers: tuple[DenseLayer, ...]
    window: int
    mean: float
    std: float
    seed: int
    train_loss: float
    """Final mean squared error on the training set, in normalised units."""

    def predict(self, windows: NDArray[np.floating]) -> NDArray[np.float64]:
        """Next-value forecasts (W) for ``windows`` ([n, window], W)."""
        z = (np.asarray(windows, dtype=np.float64) - self.mean) / self.std
        y = numpy_reference(self.layers, z)[:, 0].astype(np.float64)
        return y * self.std + self.mean


def train_forecaster(
    *,
    seed: int = 0,
    window: int = 12,
    hidden: int = 16,
    samples: int = _TRAIN_SAMPLES,
    steps: int = 1500,
    learning_rate: float = 0.01,
) -> Forecaster:
    """Train on ``samples`` readings of the meter simulated with ``seed``; deterministic.

    Weights start from ``numpy.random.default_rng(seed)``; full-batch Adam for
    ``steps`` steps on mean squared error. About a second on a laptop core.
    """
    if window < 1 or hidden < 1 or steps < 1:
        raise ValueError("window, hidden and steps must be at least 1")
    series = simulate_active_power(seed=seed, samples=samples)
    mean, std = float(series.mean()), float(series.std())
    if not std > 0.0:
        raise ValueError("the simulated series is constant; nothing to learn")
    x, y = _windows((series - mean) / std, window)
    y = y[:, None]
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(0.0, np.sqrt(2.0 / window), (window, hidden)),  # He init for the ReLU
        np.zeros(hidden),
        rng.normal(0.0, np.sqrt(1.0 / hidden), (hidden, 1)),
        np.zeros(1),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = x.shape[0]
    loss = float("nan")
    for t in range(1, steps + 1):
        w1, b1, w2, b2 = params
        pre = x @ w1 + b1
        h = np.maximum(pre, 0.0)
        err = h @ w2 + b2 - y
        loss = float(np.mean(err**2))
        d_out = 2.0 * err / n
        d_h = (d_out @ w2.T) * (pre > 0.0)
        grads = [x.T @ d_h, d_h.sum(axis=0), h.T @ d_out, d_out.sum(axis=0)]
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat = m[i] / (1 - beta1**t)
            v_hat = v[i] / (1 - beta2**t)
            params[i] = params[i] - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    w1, b1, w2, b2 = params
    layers = (
        DenseLayer(np.ascontiguousarray(w1.T, dtype=np.float32), b1.astype(np.float32), "relu"),
        DenseLayer(np.ascontiguousarray(w2.T, dtype=np.float32), b2.astype(np.float32), "none"),
    )
    return Forecaster(layers=layers, window=window, mean=mean, std=std, seed=seed, train_loss=loss)


def evaluate(forecaster: Forecaster, series: NDArray[np.floating]) -> Evaluation:
    """One-step errors of ``forecaster`` and of the two naive baselines on ``series`` (W)."""
    x, y = _windows(np.asarray(series, dtype=np.float64), forecaster.window)

    def rmse(pred: NDArray[np.float64]) -> float:
        return float(np.sqrt(np.mean((pred - y) ** 2)))

    return Evaluation(
        model_rmse=rmse(forecaster.predict(x)),
        last_value_rmse=rmse(x[:, -1]),
        mean_rmse=rmse(x.mean(axis=1)),
        samples=int(y.shape[0]),
    )


def holdout_series(forecaster: Forecaster, samples: int = 2 * 720) -> NDArray[np.float64]:
    """Readings of another simulated meter than the one ``forecaster`` trained on."""
    return simulate_active_power(seed=forecaster.seed + _HOLDOUT_SEED_OFFSET, samples=samples)


def manifest_for(forecaster: Forecaster, *, version: str = "1.0.0") -> ModelManifest:
    """The bundle's manifest: one input (the meter's power), one output (its forecast).

    Raises ``ModelError`` (a bad ``version``, say) with the reason.
    """
    scale = {"mean": forecaster.mean, "std": forecaster.std}
    return parse_manifest(
        {
            "name": MODEL_NAME,
            "version": version,
            "license": "Apache-2.0",
            "description": (
                f"Next {POINT} reading of {DEVICE} from the last {forecaster.window} "
                f"(MLP {forecaster.window}-{forecaster.layers[0].outputs}-1, "
                f"trained on the {PROFILE} simulator, seed {forecaster.seed})"
            ),
            "inputs": [
                {
                    "device": DEVICE,
                    "point": POINT,
                    "window": forecaster.window,
                    "step": 1,
                    "normalise": scale,
                }
            ],
            "outputs": [
                {
                    "attribute": ATTRIBUTE,
                    "device": DEVICE,
                    "unit": point_unit(),
                    "denormalise": scale,
                }
            ],
        }
    )


def build_bundle(
    *, seed: int = 0, version: str = "1.0.0", window: int = 12, hidden: int = 16
) -> bytes:
    """Train the forecaster and pack it as a bundle (``meter-forecast``); deterministic."""
    forecaster = train_forecaster(seed=seed, window=window, hidden=hidden)
    return bundle_of(forecaster, version=version)


def bundle_of(forecaster: Forecaster, *, version: str = "1.0.0") -> bytes:
    """Pack an already trained forecaster."""
    tflite = write_mlp(
        forecaster.layers, description=f"{MODEL_NAME} {version} (ldt.models.forecaster)"
    )
    return pack_bundle(manifest_for(forecaster, version=version), tflite)
