"""Shared fixtures and the fuzz-count report."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

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


def pytest_terminal_summary(terminalreporter):
    if FUZZ_COUNTS:
        terminalreporter.write_sep("-", "property-based input fuzzing")
        for name, count in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{name}: {count} inputs tried")
