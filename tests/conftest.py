"""Shared fixtures and the fuzz-count report."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from latticeprune import RNNClassifier

#: ../shared/data relative to the project root.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Filled by property-based tests: {test name: number of inputs tried}.
FUZZ_COUNTS = {}

torch.set_num_threads(1)  # as the estimators default (n_threads=1)


@pytest.fixture(scope="session")
def digits():
    """sklearn's digits as (n, 8 steps, 8 features) float32 in [0, 1], and labels."""
    data = load_digits()
    return (data.data / 16.0).astype(np.float32).reshape(-1, 8, 8), data.target


@pytest.fixture(scope="session")
def small_digits(digits):
    X, y = digits
    return X[:300], y[:300]


class WeightSpy(RNNClassifier):
    """Records in ``seen`` the sample_weight its fit / partial_fit receive (trains without it)."""

    seen = []  #: (method, sample_weight) of every fit and partial_fit of any instance

    def fit(self, X, y, **fit_params):
        self.seen.append(("fit", fit_params.pop("sample_weight", None)))
        return super().fit(X, y, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        self.seen.append(("partial_fit", fit_params.pop("sample_weight", None)))
        return super().partial_fit(X, y, classes=classes, **fit_params)


@pytest.fixture
def weight_spy():
    """:class:`WeightSpy` with an empty record."""
    WeightSpy.seen.clear()
    return WeightSpy


def pytest_terminal_summary(terminalreporter):
    if FUZZ_COUNTS:
        terminalreporter.write_sep("-", "property-based input fuzzing")
        for name, count in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{name}: {count} inputs tried")
