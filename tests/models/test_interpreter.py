"""The interpreter: the runtime agrees with NumPy, and refuses models that do not fit."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ldt.models.bundle import Bundle, pack_bundle, read_bundle
from ldt.models.forecaster import numpy_reference
from ldt.models.interpreter import LoadedModel, runtime_name
from ldt.models.manifest import ModelError, ModelManifest, parse_manifest
from ldt.models.tflite_writer import DenseLayer, write_mlp
from tests.models.factories import manifest, manifest_dict, random_mlp


def _load(m: ModelManifest, tflite: bytes) -> LoadedModel:
    return LoadedModel.load(read_bundle(pack_bundle(m, tflite)))


def test_a_runtime_is_installed() -> None:
    assert runtime_name() in ("tflite-runtime", "ai-edge-litert")


def test_importing_the_interpreter_loads_neither_numpy_nor_tflite() -> None:
    code = (
        "import sys, ldt.models.interpreter\n"
        "loaded = [m for m in ('numpy', 'tflite_runtime', 'ai_edge_litert') if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("widths", "last"),
    [([12, 16, 1], "none"), ([5, 3], "relu"), ([20, 32, 8, 3], "none"), ([1, 1], "none")],
)
def test_the_runtime_matches_the_numpy_reference(widths: list[int], last: str) -> None:
    layers = random_mlp(sum(widths), widths, last)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    with _load(manifest(windows=(widths[0],), outputs=widths[-1]), write_mlp(layers)) as model:
        for _ in range(50):
            x = rng.normal(0.0, 2.0, widths[0]).astype(np.float32)
            got = np.array(model.run(x.tolist()))
            want = numpy_reference(layers, x[None, :])[0]
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_inputs_are_normalised_per_block_and_outputs_denormalised() -> None:
    # identity weights make the model's output its normalised input, so the scaling shows
    eye = np.eye(3, dtype=np.float32)
    layers = [DenseLayer(eye, np.zeros(3, np.float32))]
    m = parse_manifest(
        manifest_dict()
        | {
            "inputs": [
                {"device": "a", "point": "p", "window": 2, "normalise": {"mean": 10, "std": 2}},
                {"device": "a", "point": "q", "window": 1, "normalise": {"mean": -1, "std": 0.5}},
            ],
            "outputs": [
                {"attribute": "x", "device": "a"},
                {"attribute": "y", "device": "a", "denormalise": {"mean": 100, "std": 10}},
                {"attribute": "z", "device": "a", "denormalise": {"mean": 0, "std": 4}},
            ],
        }
    )
    with _load(m, write_mlp(layers)) as model:
        got = model.run([12.0, 6.0, 0.0])
    # (12-10)/2 = 1; (6-10)/2 = -2 -> -2*10+100 = 80; (0+1)/0.5 = 2 -> 2*4 = 8
    assert got == pytest.approx([1.0, 80.0, 8.0], abs=1e-5)


def test_the_writer_is_deterministic_and_checks_its_layers() -> None:
    layers = random_mlp(3, [4, 4, 2])
    assert write_mlp(layers) == write_mlp(layers)
    with pytest.raises(ModelError, match="layer 1 takes 4 inputs but layer 0 gives 3"):
        write_mlp([*random_mlp(0, [4, 3]), *random_mlp(0, [4, 2])])
    with pytest.raises(ModelError, match="weights and bias must be float32"):
        write_mlp([DenseLayer(np.ones((1, 1)), np.zeros(1))])  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="must be finite"):
        write_mlp([DenseLayer(np.full((1, 1), np.nan, np.float32), np.zeros(1, np.float32))])


TFLITE = write_mlp(random_mlp(0, [12, 16, 1]))


def _raw(tflite: bytes, m: ModelManifest | None = None) -> Bundle:
    """A bundle that skipped ``read_bundle``'s checks (a runtime must still refuse it)."""
    return Bundle(
        manifest=m or manifest(), tflite=tflite, sha256=hashlib.sha256(tflite).hexdigest()
    )


@pytest.mark.parametrize(
    "tflite",
    [
        TFLITE[: len(TFLITE) // 2],
        TFLITE[:200],
        TFLITE[:8] + np.random.default_rng(0).bytes(len(TFLITE) - 8),
        TFLITE[:8] + bytes(64),
        np.random.default_rng(1).bytes(512),
    ],
    ids=["truncated-half", "truncated-200", "header-then-garbage", "header-then-zeros", "random"],
)
def test_a_corrupt_model_is_refused(tflite: bytes) -> None:
    with pytest.raises(ModelError, match=r"^not a valid TFLite model: "):
        LoadedModel.load(_raw(tflite))


def test_a_corrupt_model_is_refused_through_a_bundle_too() -> None:
    garbage = TFLITE[:8] + np.random.default_rng(2).bytes(1000)
    with pytest.raises(ModelError, match=r"^not a valid TFLite model"):
        LoadedModel.load(read_bundle(pack_bundle(manifest(), garbage)))


@pytest.mark.parametrize(
    ("windows", "outputs", "says"),
    [
        (
            (10,),
            1,
            r"expects an input tensor of shape \[1, 10\] \(sum of the inputs' windows\), "
            r"the model's is \[1, 12\]",
        ),
        ((6, 4), 1, r"expects an input tensor of shape \[1, 10\]"),
        (
            (12,),
            2,
            r"expects an output tensor of shape \[1, 2\] \(number of outputs\), "
            r"the model's is \[1, 1\]",
        ),
    ],
)
def test_a_manifest_that_does_not_match_the_tensors_is_refused(
    windows: tuple[int, ...], outputs: int, says: str
) -> None:
    with pytest.raises(ModelError, match=f"^model test-model 1.0.0: the manifest {says}"):
        _load(manifest(windows=windows, outputs=outputs), TFLITE)


def test_run_refuses_windows_of_the_wrong_size_or_not_finite_and_after_close() -> None:
    model = _load(manifest(), TFLITE)
    with pytest.raises(ModelError, match="the model takes 12 values per run, got 3"):
        model.run([1.0, 2.0, 3.0])
    with pytest.raises(ModelError, match="non-finite"):
        model.run([math.nan] * 12)
    model.close()
    model.close()
    with pytest.raises(ModelError, match="the model is closed"):
        model.run([0.0] * 12)


def test_latency_is_recorded_per_inference() -> None:
    with _load(manifest(), TFLITE) as model:
        assert model.latency().count == 0
        for i in range(30):
            model.run([float(i)] * 12)
        stats = model.latency()
    assert stats.count == stats.window == 30
    assert stats.last_ms == model.last_latency_ms > 0.0
    assert 0.0 < stats.p50_ms <= stats.p95_ms <= stats.max_ms
    assert stats.over_budget <= 30


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(st.integers(8, len(TFLITE) - 1), st.integers(0, 255)), min_size=1, max_size=4
    )
)
def test_damaged_models_are_refused_or_run_never_crash(flips: list[tuple[int, int]]) -> None:
    data = bytearray(TFLITE)
    for at, value in flips:
        data[at] = value
    try:
        model = LoadedModel.load(_raw(bytes(data)))
    except ModelError:
        return
    with model:
        out = model.run([0.5] * 12)
    assert len(out) == 1
