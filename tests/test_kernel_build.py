"""Building the compiled extension (latticeprune.kernel_build) on a tiny extension that compiles
in seconds. The scenarios that run builds in child processes (killed, interrupted, concurrent
and read-only builds, a virtual environment run without activation) are marked
``kernel_builds``, as are the real kernel's in test_top_down_kernel.py: ``.ci/run`` runs them
after the default suite."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latticeprune import kernel_build
from latticeprune.kernel_build import (Extension, KernelBuildError, build, import_library,
                                       library_path)

TINY = str(Path(__file__).parent / "data" / "tiny_extension.cpp")

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None,
                                    reason="no C++ compiler: nothing can be built here")
needs_flock = pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock (POSIX)")

#: Imports latticeprune.kernel_build alone (it needs only torch): a process starts in about
#: half the time of one importing the package, sklearn and skorch.
STANDALONE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("kernel_build", {module!r})
kernel_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernel_build)
Extension, build, import_library, library_path = (
    kernel_build.Extension, kernel_build.build, kernel_build.import_library,
    kernel_build.library_path)
tiny = Extension("tiny", {source!r}, description="a tiny test extension", build_seconds=2)
""".format(module=kernel_build.__file__, source=TINY)

#: Builds the tiny extension under the root argv[1] and prints its answer (42).
BUILD = STANDALONE + """
print(import_library(build(tiny, root=sys.argv[1])).answer(), flush=True)
"""


def tiny():
    return Extension("tiny", TINY, description="a tiny test extension", build_seconds=2)


def start_build(root, **kwargs):
    """A process building the tiny extension under ``root``, once it has said it compiles."""
    process = subprocess.Popen([sys.executable, "-c", BUILD, str(root)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **kwargs)
    for line in process.stderr:
        if "compiling" in line:
            return process
    raise AssertionError(f"the build never started: {process.communicate()}")


def finish_build(root, timeout=120):
    """``(answer, seconds, build seconds reported)`` of a fresh process building under ``root``."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", BUILD, str(root)], capture_output=True,
                          text=True, timeout=timeout)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    built = re.search(r"compiled in (\d+) s", done.stderr)
    return done.stdout.strip(), elapsed, int(built.group(1)) if built else 0


def leftovers(root):
    return sorted(p.name for p in (Path(root) / "latticeprune").glob(".build-*"))


@needs_compiler
def test_a_build_is_one_library_file_loaded_again_without_a_build(tmp_path):
    messages = []
    path = build(tiny(), root=tmp_path, say=messages.append)
    assert path == library_path(tiny(), tmp_path) and os.path.isfile(path)
    assert import_library(path).answer() == 42
    assert [m.split(" ")[1] for m in messages] == ["compiling", "a"]  # before and after
    assert "about 2 s" in messages[0] and re.search(r"compiled in \d+ s", messages[1])
    again = []
    assert build(tiny(), root=tmp_path, say=again.append) == path and again == []
    assert leftovers(tmp_path) == []


def test_the_library_name_changes_with_source_and_flags(tmp_path):
    source = tmp_path / "a.cpp"
    source.write_text("int x;")
    first = Extension("a", str(source)).module_name
    assert Extension("a", str(source), ("-O3",)).module_name != first
    source.write_text("int y;")
    assert Extension("a", str(source)).module_name != first
    assert first.startswith("a_") and first.isidentifier()


@pytest.mark.kernel_builds
@needs_compiler
@needs_flock
@pytest.mark.parametrize("signum,whole_group", [(signal.SIGKILL, True), (signal.SIGTERM, False)],
                         ids=["SIGKILL-group", "SIGTERM-parent"])
def test_a_killed_build_leaves_the_next_one_working(tmp_path, signum, whole_group):
    # The whole process group (an OOM kill of a container, docker stop): the next process
    # builds. The parent alone: its compiler child finishes, holding the lock; the next
    # process waits its turn and loads that build (two builders never compile twice).
    first = start_build(tmp_path, start_new_session=True)
    (os.killpg if whole_group else os.kill)(first.pid, signum)
    first.wait(timeout=60)
    assert first.returncode == -signum
    answer, seconds, built = finish_build(tmp_path)
    assert answer == "42"
    assert seconds < built + 30
    assert (built > 0) == whole_group
    assert leftovers(tmp_path) == []
    assert len(list((tmp_path / "latticeprune").glob("*.so"))) == 1


INTERRUPTED = STANDALONE + """
import os, signal, threading

def interrupt_soon(message):
    if "compiling" in message:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    build(tiny, root=sys.argv[1], say=interrupt_soon)
except KeyboardInterrupt:
    print("interrupted", os.path.exists(library_path(tiny, sys.argv[1])), flush=True)
print(import_library(build(tiny, root=sys.argv[1])).answer(), flush=True)
"""


@pytest.mark.kernel_builds
@needs_compiler
def test_ctrl_c_during_a_build_leaves_the_same_process_able_to_build(tmp_path):
    done = subprocess.run([sys.executable, "-c", INTERRUPTED, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interrupted", "False", "42"]
    assert leftovers(tmp_path) == []


@pytest.mark.kernel_builds
@needs_compiler
def test_a_prebuilt_library_in_a_read_only_folder_is_used(tmp_path):
    build(tiny(), root=tmp_path, say=lambda message: None)
    for path in (tmp_path / "latticeprune").iterdir():
        if path.suffix != ".so":
            path.unlink()  # a prebuilt image ships the library alone
    folder = str(tmp_path / "latticeprune")
    # A private mount namespace where the folder is mounted read-only onto itself.
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {folder} {folder}"
                            f" && touch {folder}/x"], capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"no read-only bind mount here: {probe.stderr.strip()}")
    done = subprocess.run(["unshare", "-m", "sh", "-c",
                           f"mount --bind -o ro {folder} {folder} && "
                           f"{sys.executable} -c \"$0\" {tmp_path}", BUILD],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42" and "compiling" not in done.stderr
    assert sorted(p.suffix for p in Path(folder).iterdir()) == [".so"]


@needs_compiler
def test_a_read_only_folder_without_the_library_is_a_clear_error(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(KernelBuildError, match="cannot write to .*Read-only file system.*"
                                               "TORCH_EXTENSIONS_DIR.*build-kernel"):
        build(tiny(), root=tmp_path)


@pytest.mark.kernel_builds
@needs_compiler
def test_ninja_next_to_the_interpreter_is_found_without_activation(tmp_path):
    # A virtual environment's python run by its path (cron, an IDE): PATH has the compiler
    # but no ninja; the ninja that pip installed into the environment's bin/ is used.
    ninja = shutil.which("ninja", path=os.path.dirname(sys.executable))
    if ninja is None:
        pytest.skip("this interpreter's environment has no ninja next to it to copy")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    shutil.copy(ninja, venv / "bin" / "ninja")  # as `pip install ninja` in the venv puts it
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("c++", "as", "ld"):
        (tools / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(tools)}
    assert shutil.which("ninja", path=env["PATH"]) is None
    done = subprocess.run([str(venv / "bin" / "python"), "-c", BUILD, str(tmp_path / "root")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_missing_tools_are_named_before_any_build(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(KernelBuildError, match=r"no C\+\+ compiler \(no-such-compiler\) found; "
                                               r"install one \(e\.g\. g\+\+\)"):
        build(tiny(), root=tmp_path)
    assert not (tmp_path / "latticeprune").exists()


@needs_compiler
def test_a_failing_build_names_the_error_and_its_log(tmp_path):
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++;\n")
    with pytest.raises(KernelBuildError, match=r"the build failed: .*error.* \(log: .*\.log\)"):
        build(Extension("broken", str(broken)), root=tmp_path / "root", say=lambda m: None)
    assert leftovers(tmp_path / "root") == []
