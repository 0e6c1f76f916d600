"""Compiling the package's C++ extension once per machine, and finding it again.

torch's ``torch.utils.cpp_extension.load`` compiles an extension into a shared folder guarded
by a lock *file* (``FileBaton``): a process killed during the build (an OOM kill, a CI
timeout, ``docker stop``, Ctrl-C on a parallel grid search) leaves the file behind, and every
later process waits for it forever. It also writes that lock before loading even a finished
build, so a prebuilt library in a read-only folder is never used, and it finds ``ninja`` only
on ``PATH``. This module keeps torch's compiler (``load`` does the build) and changes where
and how it runs:

* A finished library is a single file, ``<root>/latticeprune/<name>_<tag>.so``; ``<tag>`` hashes
  everything the binary depends on (source, flags, torch and Python versions), so a stale
  build is never loaded. Where it exists it is imported directly, without writing anything
  (a read-only folder works).
* Otherwise the build runs in a child Python process (torch's ``load``, its output kept in
  ``<name>_<tag>.log``) inside a private temporary folder next to the target; the child moves
  the finished library into place with one atomic rename. An interrupted build leaves only a
  temporary folder, which the next build removes.
* Builders of the same library take turns through an advisory lock (``fcntl.flock``) that the
  operating system releases when its holder dies, whatever killed it: a lock is never stale.
  The child holds it too, so a build whose parent was killed finishes and is used.
* The child's ``PATH`` starts with the running interpreter's folder and the ``ninja`` package's
  own binary folder, so a virtual environment's ``ninja`` is found without activating it.
* One line says a build is starting (it takes about 30 s), one that it is done; a failure
  raises :class:`KernelBuildError` with a short reason and the log's path.

``<root>`` is ``TORCH_EXTENSIONS_DIR`` where set, else torch's default extensions folder
(``torch.utils.cpp_extension.get_default_build_root()``). Cost: a file-existence check per
process once built; a build is one child process (torch's import, about 2 s, plus the
compiler).
"""

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import torch

try:
    import fcntl
except ImportError:  # Windows: builds still go through private folders, without turns
    fcntl = None

__all__ = ["Extension", "KernelBuildError", "build", "build_root", "import_library",
           "library_path", "BUILD_TIMEOUT"]

#: Seconds a build, or a wait for another process's build, may take before it is given up.
BUILD_TIMEOUT = 900
#: The file name ending of a compiled Python extension, as ``torch.utils.cpp_extension`` uses.
LIBRARY_SUFFIX = ".pyd" if sys.platform == "win32" else ".so"

# Runs in the child: torch's load compiles (and imports, which checks the result) in the
# private folder; the rename puts the finished library where every process looks. The child
# removes its folder itself, as its parent may be gone.
_CHILD = """
import os, shutil, sys
from torch.utils.cpp_extension import load
name, source, folder, target = sys.argv[1:5]
load(name, [source], extra_cflags=sys.argv[5:], build_directory=folder, verbose=True)
os.replace(os.path.join(folder, name + {suffix!r}), target)
shutil.rmtree(folder, ignore_errors=True)
""".format(suffix=LIBRARY_SUFFIX)


class KernelBuildError(RuntimeError):
    """The extension cannot be built here; the message says why and what to do."""


@dataclass(frozen=True)
class Extension:
    """A C++ extension of one source file: ``name`` (a Python identifier), the ``source``
    path, the compiler ``flags`` added to torch's; ``description`` and the typical
    ``build_seconds`` for the messages."""

    name: str
    source: str
    flags: tuple = ()
    description: str = "the extension"
    build_seconds: int = 30

    @property
    def module_name(self):
        """``<name>_<tag>``: the tag hashes the source, flags, torch and Python versions."""
        digest = hashlib.sha256()
        with open(self.source, "rb") as file:
            digest.update(file.read())
        for part in (*self.flags, torch.__version__, sys.version, platform.machine()):
            digest.update(b"\0" + str(part).encode())
        return f"{self.name}_{digest.hexdigest()[:12]}"


def build_root():
    """The folder holding ``latticeprune/``: ``TORCH_EXTENSIONS_DIR``, or torch's default."""
    from torch.utils.cpp_extension import get_default_build_root
    return os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()


def library_path(extension, root=None):
    """Where the finished library of ``extension`` is (or will be) under ``root``."""
    return os.path.join(root or build_root(), "latticeprune",
                        extension.module_name + LIBRARY_SUFFIX)


def import_library(path):
    """The extension module in the library file ``path``."""
    name = os.path.basename(path)[:-len(LIBRARY_SUFFIX)]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tool_path():
    """``PATH`` for the build: the interpreter's folder and the ``ninja`` package's first."""
    folders = [os.path.dirname(sys.executable)]
    with contextlib.suppress(ImportError):
        import ninja
        folders.append(ninja.BIN_DIR)
    return os.pathsep.join(folders + [os.environ.get("PATH", "")])


def _check_tools(path):
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler, path=path) is None:
        raise KernelBuildError(f"no C++ compiler ({compiler}) found; install one (e.g. g++)")
    if shutil.which("ninja", path=path) is None:
        raise KernelBuildError("ninja not found; pip install ninja")


def _open_lock(path):
    """A file descriptor of the builders' lock file ``path`` (created if missing), or None
    where there is no ``fcntl``."""
    return None if fcntl is None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def _turn(fd, what, say, timeout):
    """Hold the builders' lock ``fd`` (waiting for a live holder, saying so), then close it."""
    if fd is None:
        yield
        return
    try:
        start, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    say(f"latticeprune: waiting for another process that is compiling {what} ...")
                    said = True
                if time.monotonic() - start > timeout:
                    raise KernelBuildError(f"another process has been compiling {what} for "
                                           f"over {timeout} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock (a dead process's is released by the system)


def _say(message):
    print(message, file=sys.stderr, flush=True)


def build(extension, root=None, say=_say, timeout=BUILD_TIMEOUT):
    """The path of ``extension``'s library under ``root``, compiled first if missing.

    Raises :class:`KernelBuildError` (no compiler or ``ninja``, a folder that cannot be
    written, a failed or timed-out build: the message names the log); ``KeyboardInterrupt``
    stops the build and removes its temporary folder.
    """
    target = library_path(extension, root)
    if os.path.exists(target):
        return target
    env = {**os.environ, "PATH": _tool_path()}
    _check_tools(env["PATH"])
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
        fd = _open_lock(target[:-len(LIBRARY_SUFFIX)] + ".lock")
    except OSError as error:
        raise KernelBuildError(f"cannot write to {folder} ({error.strerror}); set "
                               "TORCH_EXTENSIONS_DIR to a writable folder, or run `python -m "
                               "latticeprune build-kernel` where it is writable") from None
    with _turn(fd, extension.description, say, timeout):
        for stale in os.listdir(folder):  # left by builds that were killed: we hold the turn
            if stale.startswith(f".build-{extension.module_name}-"):
                shutil.rmtree(os.path.join(folder, stale), ignore_errors=True)
        if not os.path.exists(target):  # else built by the process we waited for
            _compile(extension, target, env, fd, say, timeout)
    return target


def _compile(extension, target, env, fd, say, timeout):
    folder = os.path.dirname(target)
    log_path = target[:-len(LIBRARY_SUFFIX)] + ".log"
    private = tempfile.mkdtemp(prefix=f".build-{extension.module_name}-", dir=folder)
    start = time.monotonic()
    try:
        with open(log_path, "w") as log:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, extension.module_name, extension.source,
                 private, target, *extension.flags],
                stdout=log, stderr=subprocess.STDOUT, env=env,
                pass_fds=() if fd is None else (fd,))
            say(f"latticeprune: compiling {extension.description} for this machine (once; "
                f"about {extension.build_seconds} s) into {folder} ...")
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise KernelBuildError(f"the build took over {timeout} s (log: "
                                       f"{log_path})") from None
            except BaseException:  # Ctrl-C: stop the compiler too
                child.kill()
                child.wait()
                raise
        if code != 0 or not os.path.exists(target):
            raise KernelBuildError(f"the build failed: {_last_error(log_path)} (log: "
                                   f"{log_path})")
    finally:
        shutil.rmtree(private, ignore_errors=True)
    say(f"latticeprune: {extension.description} compiled in {time.monotonic() - start:.0f} s: "
        f"{target}")


def _last_error(log_path):
    """The first compiler error line of the build log (or its last line), shortened."""
    with open(log_path, errors="replace") as log:
        lines = [line.strip() for line in log if line.strip()]
    found = next((line for line in lines if "error" in line.lower()), lines[-1] if lines
                 else "no output")
    return found if len(found) <= 100 else found[:97] + "..."
