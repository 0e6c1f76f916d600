"""Grid search in parallel gives the scores of ``n_jobs=1``: joblib/loky and a local Dask cluster.

See ``docs/distributed.md``. The Dask tests skip when ``dask[distributed]`` is not installed.
"""

import importlib.util
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from joblib import parallel_backend
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from conftest import WORKER_PROCESSES
from latticeprune import LatticePruner, RNNClassifier

# worker processes import torch: about a minute in all; one pytest-xdist worker starts them
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(WORKER_PROCESSES)]

GRID = {"sparsity": [0.5, 0.8], "strategy": ["lattice", "magnitude"]}
N_SPLITS = 2

requires_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                   reason="dask[distributed] is not installed "
                                          "(pip install latticeprune[distributed])")
requires_thread_setting = pytest.mark.skipif(
    "n_threads" not in RNNClassifier().get_params(),
    reason="RNNClassifier has no n_threads parameter yet (fixed torch threads per fit)")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Fit in this process with one torch thread, as joblib's and Dask's workers do.

    Tiny nets also train far faster on one thread than on two on a busy machine.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_search(n_jobs):
    pruner = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=2, batch_size=32),
                           n_rounds=1, fine_tune_epochs=1, random_state=0)
    return GridSearchCV(pruner, GRID, cv=StratifiedKFold(N_SPLITS), n_jobs=n_jobs, refit=False)


def split_scores(search):
    """``(n_candidates, n_splits)`` test scores, in the order of ``cv_results_['params']``."""
    return np.column_stack([search.cv_results_[f"split{k}_test_score"] for k in range(N_SPLITS)])


@pytest.fixture(scope="module")
def data(digits):
    X, y = digits
    return X[:240], y[:240]


@pytest.fixture(scope="module")
def sequential_scores(data):
    search = make_search(n_jobs=1).fit(*data)
    scores = split_scores(search)
    assert len(np.unique(scores)) > 1, "the candidates should not all score the same"
    return scores


def test_loky_gives_the_scores_of_one_job(data, sequential_scores):
    with parallel_backend("loky"):
        search = make_search(n_jobs=2).fit(*data)
    np.testing.assert_array_equal(split_scores(search), sequential_scores)


@requires_thread_setting
def test_fitted_nets_do_not_depend_on_the_callers_torch_threads(data):
    """Float sums depend on the thread count: a fit must not inherit the caller's setting.

    joblib's loky workers run with ``cpu_count // n_jobs`` threads, Dask's with one, the
    caller's process with torch's default (all cores); the nets must come out identical.
    """
    X, y = data
    probabilities = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        pruner = LatticePruner(RNNClassifier(hidden_size=16, max_epochs=2), sparsity=0.5,
                               n_rounds=1, random_state=0).fit(X, y)
        probabilities.append(pruner.predict_proba(X))
    torch.set_num_threads(1)
    np.testing.assert_array_equal(probabilities[0], probabilities[1])


# -- Dask -----------------------------------------------------------------------------------------
class _CountFinished:
    """Scheduler plugin counting the tasks that ran to completion (scattered data does not run)."""

    name = "latticeprune-test-count-finished"

    def __init__(self):
        self.finished = 0

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish == "memory":
            self.finished += 1


@requires_dask
def test_dask_gives_the_scores_of_one_job(dask_cluster, data, sequential_scores):
    from distributed import get_task_stream

    _, client = dask_cluster
    with get_task_stream(client) as stream, parallel_backend("dask"):
        search = make_search(n_jobs=2).fit(*data)
    np.testing.assert_array_equal(split_scores(search), sequential_scores)
    workers = {task["worker"] for task in stream.data}
    assert workers == set(client.scheduler_info()["workers"])  # both workers fitted


@requires_dask
def test_dask_search_survives_a_killed_worker(dask_cluster, data, sequential_scores):
    cluster, client = dask_cluster
    counter = _CountFinished()
    cluster.scheduler.add_plugin(counter)
    pids = client.run(os.getpid)  # {worker address: process id}
    killed = {}
    search_done = threading.Event()

    def kill_a_busy_worker():
        # In the middle: once a task has finished, kill a worker that is running another one.
        while not search_done.is_set():
            if counter.finished:
                for address, keys in client.processing().items():
                    if keys and address in pids:
                        os.kill(pids[address], signal.SIGKILL)
                        killed.update(address=address, pid=pids[address],
                                      finished=counter.finished)
                        return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    try:
        # scatter: X and y go to every worker once, so losing one worker loses no data.
        with parallel_backend("dask", scatter=list(data)):
            search = make_search(n_jobs=2).fit(*data)
    finally:
        search_done.set()
        killer.join(timeout=10)
        cluster.scheduler.remove_plugin(name=counter.name)
    assert killed, "no worker was killed during the search"
    np.testing.assert_array_equal(split_scores(search), sequential_scores)
    # The nanny replaced the killed process; the search did not wait for it.
    deadline = time.time() + 60
    while killed["pid"] in client.run(os.getpid).values() and time.time() < deadline:
        time.sleep(0.5)
    assert killed["pid"] not in client.run(os.getpid).values()
