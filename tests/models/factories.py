"""Small valid models and manifests for the tests to break one thing at a time."""

from __future__ import annotations

import io
import itertools
import zipfile
from typing import Any

import numpy as np

from ldt.models.manifest import ModelManifest, parse_manifest
from ldt.models.tflite_writer import Activation, DenseLayer


def random_mlp(seed: int, widths: list[int], last: Activation = "none") -> list[DenseLayer]:
    """Random layers ``widths[0] -> ... -> widths[-1]``, ReLU between, ``last`` at the end."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        act: Activation = last if i == len(widths) - 2 else "relu"
        layers.append(
            DenseLayer(
                rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32),
                rng.normal(0, 0.1, n_out).astype(np.float32),
                act,
            )
        )
    return layers


def manifest_dict(
    *, windows: tuple[int, ...] = (12,), outputs: int = 1, **extra: Any
) -> dict[str, Any]:
    """A valid manifest's JSON: input windows, output count; ``extra`` replaces top-level keys."""
    data: dict[str, Any] = {
        "name": "test-model",
        "version": "1.0.0",
        "license": "Apache-2.0",
        "inputs": [
            {"device": "meter-1", "point": f"p{i}", "window": w} for i, w in enumerate(windows)
        ],
        "outputs": [{"attribute": f"out{i}", "device": "meter-1"} for i in range(outputs)],
    }
    data.update(extra)
    return data


def manifest(*, windows: tuple[int, ...] = (12,), outputs: int = 1, **extra: Any) -> ModelManifest:
    """``manifest_dict`` validated."""
    return parse_manifest(manifest_dict(windows=windows, outputs=outputs, **extra))


def zip_of(members: dict[str, bytes]) -> bytes:
    """A zip holding exactly ``members``: bundles that ``pack_bundle`` would never write."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()
