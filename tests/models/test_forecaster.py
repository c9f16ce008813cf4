"""The project's own model: trained on the simulator, deterministic, better than naive."""

from __future__ import annotations

import numpy as np

from ldt.models.bundle import Bundle, read_bundle
from ldt.models.forecaster import (
    Forecaster,
    build_bundle,
    bundle_of,
    evaluate,
    holdout_series,
    simulate_active_power,
    train_forecaster,
)
from ldt.models.interpreter import LoadedModel


def test_training_is_deterministic_and_the_seed_matters() -> None:
    a = train_forecaster(seed=7, steps=50, samples=400)
    b = train_forecaster(seed=7, steps=50, samples=400)
    c = train_forecaster(seed=8, steps=50, samples=400)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert np.array_equal(la.weights, lb.weights)
        assert np.array_equal(la.bias, lb.bias)
    assert a.train_loss == b.train_loss
    assert not np.array_equal(a.layers[0].weights, c.layers[0].weights)
    assert bundle_of(a) == bundle_of(b)


def test_the_simulated_series_is_the_simulator_s_active_power() -> None:
    power = simulate_active_power(seed=0, samples=720)  # one simulated day at 5 s
    assert power.shape == (720,)
    # a single-phase load of 8-16 A peak at ~230 V and pf ~0.93, 15 % floor
    assert 200.0 < power.min() < power.max() < 4000.0
    assert power.max() > 2.5 * power.min()  # the daily curve is there


def test_the_forecast_beats_naive_baselines_on_another_meter(forecaster: Forecaster) -> None:
    held = evaluate(forecaster, holdout_series(forecaster))
    # measured (seed 0, 1500 Adam steps): model 58.9 W, last value 68.9 W, window mean 67.9 W
    assert held.samples > 1000
    assert held.model_rmse < 0.92 * held.last_value_rmse
    assert held.model_rmse < 0.92 * held.mean_rmse
    assert forecaster.train_loss < 0.01  # normalised MSE; the series' variance is 1


def test_the_bundle_runs_the_same_forecast_as_numpy(
    forecaster: Forecaster, forecast: Bundle
) -> None:
    series = holdout_series(forecaster, samples=200)
    windows = np.lib.stride_tricks.sliding_window_view(series, forecaster.window)[:100]
    want = forecaster.predict(windows)
    with LoadedModel.load(forecast) as model:
        got = np.array([model.run(w.tolist())[0] for w in windows])
    # float32 inside TFLite: 1e-4 of the normalised scale, in watts
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * forecaster.std)


def test_the_bundle_describes_the_meter_point(forecast: Bundle) -> None:
    m = forecast.manifest
    assert (m.name, m.version, m.license) == ("meter-forecast", "1.0.0", "Apache-2.0")
    (inp,) = m.inputs
    assert (inp.device, inp.point, inp.window, inp.step) == ("meter-1", "active_power", 12, 1)
    (out,) = m.outputs
    assert (out.attribute, out.device, out.unit) == ("activePowerForecast", "meter-1", "WTT")
    assert out.denormalise == inp.normalise


def test_versions_and_seeds_give_distinguishable_bundles(forecast: Bundle) -> None:
    other = read_bundle(build_bundle(seed=1, version="2.0.0", window=8, hidden=8))
    assert other.manifest.version == "2.0.0"
    assert other.manifest.inputs[0].window == 8
    assert other.sha256 != forecast.sha256
    with LoadedModel.load(other) as model:
        assert len(model.run([1500.0] * 8)) == 1
