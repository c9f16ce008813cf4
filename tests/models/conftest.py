"""Shared, expensive things: the trained forecaster and its bundle, built once per session."""

from __future__ import annotations

import pytest

from ldt.models.bundle import Bundle, read_bundle
from ldt.models.forecaster import Forecaster, bundle_of, train_forecaster


@pytest.fixture(scope="session")
def forecaster() -> Forecaster:
    return train_forecaster(seed=0)


@pytest.fixture(scope="session")
def forecast_bundle(forecaster: Forecaster) -> bytes:
    return bundle_of(forecaster, version="1.0.0")


@pytest.fixture(scope="session")
def forecast(forecast_bundle: bytes) -> Bundle:
    return read_bundle(forecast_bundle)
