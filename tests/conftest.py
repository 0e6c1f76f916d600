"""Shared fixtures, the kernel built in the background, and the fuzz-count report."""

import functools
import importlib
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from latticeprune import RNNClassifier
from latticeprune.kernel_build import KernelBuildError, build
from latticeprune.top_down_kernel import kernel_extension

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


@pytest.fixture(scope="session")
def dask_cluster():
    """``(cluster, client)``: one local Dask cluster of two worker processes for the session."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


#: The small classifier and regressor of sklearn's estimator checks (tests/test_conformance.py,
#: and inside the sparsifiers in tests/test_sparsifier_conformance.py); the regressor's 2
#: epochs pass every check but one.
CHECK_CLASSIFIER = dict(hidden_size=4, max_epochs=5, lr=0.05, random_state=0)
CHECK_REGRESSOR = dict(hidden_size=8, max_epochs=2, lr=0.03, batch_size=16, max_grad_norm=None,
                       random_state=0)
#: check_regressors_train asks R^2 > 0.5 on sklearn's regression data: 20 epochs reach it
#: (unclipped: under the moduli penalty, clipped steps at norm 1 stay below it in 20).
REGRESSORS_TRAIN_EPOCHS = 20


def trained_for(check, estimator):
    """``estimator`` as ``check`` needs it: trained for :data:`REGRESSORS_TRAIN_EPOCHS` in
    ``check_regressors_train`` (a regressor's, or a sparsifier's inner, ``max_epochs``)."""
    if getattr(check, "func", check).__name__ != "check_regressors_train":
        return estimator
    inner = "max_epochs" in estimator.get_params(deep=False)
    key = "max_epochs" if inner else "estimator__max_epochs"
    return clone(estimator).set_params(**{key: REGRESSORS_TRAIN_EPOCHS})


def onnx_session(path):
    """An ONNX Runtime session on one thread that does not spin (a test shares the cores)."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options)


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


def pytest_sessionstart(session):
    """Compile the top-down kernel (if missing) while the first tests run: its compiler is a
    child process, so it takes the other core; the first test that needs it waits for it (a
    second pytest-xdist worker waits its turn instead of compiling it again)."""
    def prebuild():
        try:
            build(kernel_extension(), say=lambda message: None)
        except KernelBuildError:
            pass  # load_kernel warns where a test needs the kernel
    threading.Thread(target=prebuild, name="kernel prebuild", daemon=True).start()


def _parse_torchlib_once():
    """Every ``torch.onnx.export`` parses the signatures of onnxscript's ~500 torchlib
    functions from their source again (about 2 s of a 6 s export); they cannot change within a
    test session, so each worker parses them once. The exporter still builds its registry per
    export from the list. Skipped where torch no longer reaches onnxscript this way."""
    try:
        from torch.onnx._internal._lazy_import import onnxscript_apis
    except ImportError:
        return
    name = getattr(onnxscript_apis, "_name", None)  # a torch lazy module: onnxscript not imported
    if not isinstance(name, str):
        return

    @functools.cache
    def get_torchlib_ops():
        return importlib.import_module(name).get_torchlib_ops()

    onnxscript_apis.get_torchlib_ops = get_torchlib_ops  # found before the lazy __getattr__


_parse_torchlib_once()


#: The xdist group of the tests that start worker processes (joblib's loky, the Dask cluster):
#: they run on one pytest-xdist worker, which starts loky's workers and the cluster once.
WORKER_PROCESSES = "worker processes"
#: The xdist group of the tests that export to ONNX (marked ``exports``, the demo's tests,
#: ``export_onnx``'s docstring): a process's first ``torch.onnx`` export pays about 6 s of
#: imports and set-up, which one worker then pays once.
ONNX_EXPORTS = "onnx exports"
EXPORTING = ("tests/test_cli.py", "latticeprune/export.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group the tests for pytest-xdist's ``--dist loadgroup`` (setup.cfg): a test that uses
    the Dask cluster joins :data:`WORKER_PROCESSES`, as the tests marked with it do, a test
    that exports :data:`ONNX_EXPORTS`; every other test is grouped by its module, as
    ``loadscope`` would (module fixtures once)."""
    for item in items:
        if "dask_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(WORKER_PROCESSES))
        elif (item.get_closest_marker("exports") is not None
              or item.nodeid.split("::")[0] in EXPORTING):
            item.add_marker(pytest.mark.xdist_group(ONNX_EXPORTS))
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller adds the counts up
        workeroutput["fuzz_counts"] = dict(FUZZ_COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    for name, count in getattr(node, "workeroutput", {}).get("fuzz_counts", {}).items():
        FUZZ_COUNTS[name] = FUZZ_COUNTS.get(name, 0) + count


def pytest_terminal_summary(terminalreporter):
    if FUZZ_COUNTS:
        terminalreporter.write_sep("-", "property-based input fuzzing")
        for name, count in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{name}: {count} inputs tried")
