"""The compiled top-down LSTM kernel against torch's eager ops (latticeprune.top_down_kernel)."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from latticeprune import RNNClassifier
from latticeprune.nets import HierarchicalRNN
from latticeprune.kernel_build import KernelBuildError
from latticeprune.top_down_kernel import SWITCH, frozen_weights, kernel_applies, load_kernel

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                    reason="no C++ compiler: the kernel cannot be built here")


def both_ways(monkeypatch, func):
    """``func()`` through the kernel, then through torch's eager ops."""
    assert kernel_applies(*func.kernel_args)
    got = func()
    monkeypatch.setenv(SWITCH, "0")
    assert not kernel_applies(*func.kernel_args)
    want = func()
    monkeypatch.delenv(SWITCH)
    return got, want


@needs_compiler
def test_the_kernel_builds_where_there_is_a_compiler():
    assert load_kernel() is not None


@needs_compiler
@pytest.mark.parametrize("num_layers", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", [1, 5])
def test_kernel_equals_eager_ops_outputs_and_gradients(num_layers, dtype, batch, monkeypatch):
    torch.manual_seed(num_layers)
    net = HierarchicalRNN(5, 7, num_layers).to(dtype)
    prune.random_unstructured(net.layers[0], "weight_hh", amount=0.5)  # masks through hooks
    prune.random_unstructured(net.layers[1], "weight_td" if num_layers > 2 else "weight_ih",
                              amount=0.5)
    x = torch.randn(batch, 6, 5, dtype=dtype, requires_grad=True)
    weight = torch.randn(batch, 6, 7, dtype=dtype)

    def run():
        out = net(x)[0]
        grads = torch.autograd.grad((out * weight).sum(), [x, *net.parameters()])
        return out.detach(), grads
    run.kernel_args = (net.layers, x)
    (got, got_grads), (want, want_grads) = both_ways(monkeypatch, run)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, want, **tol)
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, **(dict(rtol=1e-4, atol=1e-6)
                                          if dtype == torch.float32 else tol))


@needs_compiler
def test_kernel_gradients_pass_gradcheck():
    torch.manual_seed(0)
    net = HierarchicalRNN(3, 4, 3).double()
    x = torch.randn(2, 5, 3, dtype=torch.double, requires_grad=True)
    assert kernel_applies(net.layers, x)
    assert torch.autograd.gradcheck(lambda x, *params: net(x)[0], (x, *net.parameters()))


@needs_compiler
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_kernel_without_gradients_equals_eager_ops(mode, monkeypatch):
    torch.manual_seed(0)
    net = HierarchicalRNN(5, 9, 2)
    x = torch.randn(3, 8, 5)

    def run():
        with mode():
            return net(x, torch.tensor([8, 3, 1]))
    run.kernel_args = (net.layers, x)
    got, want = both_ways(monkeypatch, run)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@needs_compiler
def test_fitted_top_down_classifier_is_the_same_with_and_without_the_kernel(small_digits,
                                                                             monkeypatch):
    X, y = small_digits
    params = dict(hidden_size=8, num_layers=2, top_down=True, max_epochs=2, random_state=0)
    got = RNNClassifier(**params).fit(X, y).predict_proba(X)
    monkeypatch.setenv(SWITCH, "0")
    want = RNNClassifier(**params).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_kernel_applies_only_to_what_it_computes(monkeypatch):
    lstm = HierarchicalRNN(3, 4, 2)
    x = torch.randn(2, 5, 3)
    assert not kernel_applies(HierarchicalRNN(3, 4, 2, cell="gru").layers, x)
    assert not kernel_applies(lstm.layers, x.half())
    assert not kernel_applies(lstm.layers, x.to(torch.int64))
    empty = HierarchicalRNN(3, 4, 2)
    empty.layers[1].hidden_size = 0  # a compacted layer left with no units
    assert not kernel_applies(empty.layers, x)
    monkeypatch.setenv(SWITCH, "0")
    assert not kernel_applies(lstm.layers, x)


def test_a_failed_build_warns_once_and_runs_on_eager_ops(monkeypatch):
    from latticeprune import top_down_kernel

    def no_compiler(*args, **kwargs):
        raise KernelBuildError("no C++ compiler (c++) found; install one (e.g. g++)")
    monkeypatch.setattr(top_down_kernel, "build", no_compiler)
    load_kernel.cache_clear()
    try:
        torch.manual_seed(0)
        net = HierarchicalRNN(3, 4, 2)
        x = torch.randn(2, 5, 3)
        with pytest.warns(RuntimeWarning) as record:
            out = net(x)[0]
        message = str(record[0].message)
        assert len(record) == 1 and len(message) < 300
        assert message.startswith("latticeprune: no C++ compiler (c++) found; install one")
        assert f"{SWITCH}=0 silences this" in message
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once: the failure is remembered
            torch.testing.assert_close(net(x)[0], out)
        monkeypatch.setenv(SWITCH, "0")
        torch.testing.assert_close(net(x)[0], out)
    finally:
        load_kernel.cache_clear()


def test_without_a_compiler_one_short_warning_and_no_torch_banner(tmp_path, monkeypatch, capfd):
    # A machine without c++: a top-down net fits on the eager ops after one short warning.
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    load_kernel.cache_clear()
    X, y = np.random.RandomState(0).rand(20, 4, 3).astype(np.float32), [0, 1] * 10
    try:
        with pytest.warns(RuntimeWarning) as record:
            RNNClassifier(hidden_size=4, num_layers=2, top_down=True, max_epochs=1,
                          random_state=0).fit(X, y).predict(X)
    finally:
        load_kernel.cache_clear()
    assert len(record) == 1 and len(str(record[0].message)) < 300
    assert "no C++ compiler (no-such-compiler) found" in str(record[0].message)
    printed = capfd.readouterr()
    assert "compatible" not in printed.err + printed.out  # torch's compiler banner
    assert "compiling" not in printed.err
    assert not list(tmp_path.iterdir())  # nothing written


@needs_compiler
def test_kernel_keeps_intermediates_only_when_a_backward_can_follow(monkeypatch):
    from latticeprune import top_down_kernel
    kernel, calls = load_kernel(), []

    class Recording:
        def forward(self, *args):
            calls.append(args[-1])  # save
            return kernel.forward(*args)

        def backward(self, *args):
            return kernel.backward(*args)
    monkeypatch.setattr(top_down_kernel, "load_kernel", lambda: Recording())
    net = HierarchicalRNN(3, 4, 2)  # its parameters require grad
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        net(x)
    with torch.inference_mode():
        net(x)
    net(x)[0].sum().backward()
    assert calls == [False, False, True]
    assert net.layers[0].weight_td.grad is not None


@needs_compiler
def test_frozen_weights_prepares_a_nets_weights_once_per_batch_size_and_thread():
    torch.manual_seed(0)
    net = HierarchicalRNN(3, 4, 2)
    x, wider = torch.randn(2, 5, 3), torch.randn(3, 5, 3)
    with torch.no_grad():
        before, before_wider = net(x)[0], net(wider)[0]
        with frozen_weights():
            assert torch.equal(net(x)[0], before)  # prepared here, for batches of 2
            net.layers[0].weight_hh.add_(0.5)
            assert torch.equal(net(x)[0], before)  # reused: the scope promised fixed weights
            changed_wider = net(wider)[0]  # batches of 3: prepared now, from the new weights
            assert not torch.allclose(changed_wider, before_wider)
            with torch.enable_grad():  # calls with gradients prepare their weights each time
                assert not torch.allclose(net(x)[0], before)
            other_thread = []
            thread = threading.Thread(target=lambda: other_thread.append(net(x)[0]))
            thread.start()
            thread.join()
            assert not torch.allclose(other_thread[0], before)  # the scope is this thread's
        after = net(x)[0]  # the scope ended: prepared again
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, other_thread[0])


@needs_compiler
def test_predictions_over_uneven_batches_equal_eager_ops(small_digits, monkeypatch):
    X, y = small_digits
    clf = RNNClassifier(hidden_size=8, num_layers=2, top_down=True, max_epochs=1,
                        random_state=0).fit(X, y)
    clf.set_params(batch_size=7)  # the last batch is shorter: its weights packed for its size
    assert len(X) % 7
    got, got_states = clf.predict_proba(X), clf.transform(X)
    monkeypatch.setenv(SWITCH, "0")
    np.testing.assert_allclose(clf.predict_proba(X), got, atol=1e-5)
    np.testing.assert_allclose(clf.transform(X), got_states, atol=1e-5)


CHECK_BUILD = """
import torch
from latticeprune.nets import HierarchicalRNN
from latticeprune.top_down_kernel import SWITCH, load_kernel
import os
torch.manual_seed(0)
net = HierarchicalRNN(5, 21, 3)  # 21 units: vector lanes and a remainder
x = torch.randn(4, 6, 5, requires_grad=True)

def run():
    out = net(x)[0]
    return [out, *torch.autograd.grad(out.sum(), [x, *net.parameters()])]
got = run()
os.environ[SWITCH] = "0"
for a, b in zip(got, run()):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
print(load_kernel().__name__)
"""


@needs_compiler
@pytest.mark.kernel_builds
@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_the_kernel_built_for_other_vector_capabilities_equals_eager_ops(capability):
    # torch runs its own kernels for the capability ATEN_CPU_CAPABILITY names (at most the
    # CPU's); the kernel is built for it too, the gates on torch's ops without vector flags.
    if capability == "avx2" and torch.backends.cpu.get_cpu_capability() not in ("AVX2",
                                                                              "AVX512"):
        pytest.skip("this CPU has no AVX2")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    done = subprocess.run([sys.executable, "-c", CHECK_BUILD], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].startswith(f"latticeprune_top_down_lstm_{capability}_")


@needs_compiler
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e30])
def test_kernel_propagates_nan_and_infinity_as_eager_ops(value, monkeypatch):
    torch.manual_seed(0)
    net = HierarchicalRNN(5, 21, 2)  # 21 units: vector lanes and a remainder
    x = torch.randn(3, 6, 5)
    x[0, 2, 1] = value

    def run():
        with torch.no_grad():
            return net(x)[0]
    run.kernel_args = (net.layers, x)
    got, want = both_ways(monkeypatch, run)
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.isnan(got).any() == (value != value)  # a NaN reaches the outputs
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)


# -- the real kernel's first build, interrupted (each test compiles it from scratch) ----------
FIT = """
import numpy as np
from latticeprune import RNNClassifier
from latticeprune.top_down_kernel import load_kernel
X, y = np.random.RandomState(0).rand(40, 5, 3).astype("float32"), [0, 1] * 20
RNNClassifier(hidden_size=6, num_layers=2, top_down=True, max_epochs=2,
              random_state=0).fit(X, y).predict(X)
print("kernel" if load_kernel() is not None else "eager", flush=True)
"""

SEARCH = """
import numpy as np
from sklearn.model_selection import GridSearchCV
from latticeprune import RNNClassifier
X, y = np.random.RandomState(0).rand(40, 5, 3).astype("float32"), [0, 1] * 20
GridSearchCV(RNNClassifier(num_layers=2, top_down=True, max_epochs=2, random_state=0),
             {"hidden_size": [4, 5]}, cv=2, n_jobs=2).fit(X, y)
"""


def started(script, env):
    """A process running ``script`` in a session of its own, once something said it compiles."""
    process = subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    for line in process.stderr:
        if "compiling the top-down LSTM kernel" in line:
            return process
    raise AssertionError(f"no build started: {process.communicate()}")


def fit_after(env):
    """A fresh process's top-down fit: ``(kernel or eager, seconds, seconds its build took)``."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True,
                          timeout=900)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    built = re.search(r"compiled in (\d+) s", done.stderr)
    return done.stdout.strip(), elapsed, int(built.group(1)) if built else 0


@needs_compiler
@pytest.mark.kernel_builds
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_fit_killed_during_the_kernel_build_leaves_the_next_fit_working(tmp_path, signum):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    first = started(FIT, env)
    os.killpg(first.pid, signum)  # the fit and its compiler: an OOM kill, a CI timeout
    first.wait(timeout=60)
    used, seconds, built = fit_after(env)
    assert used == "kernel" and built > 0
    assert seconds < built + 30
    assert not list((tmp_path / "latticeprune").glob(".build-*"))


@needs_compiler
@pytest.mark.kernel_builds
def test_a_parallel_grid_search_interrupted_during_the_build_leaves_the_next_fit_working(
        tmp_path):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    search = started(SEARCH, env)
    time.sleep(2)  # both workers have reached the build: one compiles, one waits its turn
    os.killpg(search.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
    search.communicate(timeout=120)
    used, seconds, built = fit_after(env)
    assert used == "kernel"
    assert seconds < built + 30


@needs_compiler
@pytest.mark.kernel_builds
def test_ctrl_c_during_the_build_in_a_fit_leaves_the_process_able_to_build(tmp_path):
    # skorch ends training at a KeyboardInterrupt; the next fit in the same process builds.
    script = FIT.replace("RNNClassifier(hidden", """import os, signal, sys, threading
real_write = sys.stderr.write
def write(text):
    if "compiling" in text:
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    return real_write(text)
sys.stderr.write = write
RNNClassifier(hidden_size=6, num_layers=2, top_down=True, max_epochs=2, random_state=0).fit(X, y)
sys.stderr.write = real_write
print("interrupted" if load_kernel.cache_info().currsize == 0 else "built", flush=True)
RNNClassifier(hidden""", 1)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "kernel"]
    assert done.stderr.count("compiling the top-down LSTM kernel") == 2


@needs_compiler
@pytest.mark.kernel_builds
def test_a_kernel_built_ahead_of_time_is_used_from_a_read_only_folder(tmp_path):
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "latticeprune", "build-kernel"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    library = Path(done.stdout.strip().rsplit(": ", 1)[1])
    assert library.is_file() and library.parent == tmp_path / "latticeprune"
    for path in library.parent.iterdir():
        if path != library:
            path.unlink()  # an image ships the library alone
    folder = str(library.parent)
    script = f"mount --bind -o ro {folder} {folder} && {sys.executable} -c \"$0\""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, f"open({folder!r} + '/x', 'w')"],
                           capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"no read-only bind mount here: {probe.stderr.strip()[-200:]}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, FIT], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kernel" and "compiling" not in done.stderr
    assert [p.name for p in library.parent.iterdir()] == [library.name]
