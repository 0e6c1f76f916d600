"""The sdist and wheel build without a deprecation warning and carry the kernel's C++ source."""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sdist_and_wheel_build_with_warnings_as_errors_and_hold_the_kernel_source(tmp_path):
    pytest.importorskip("build")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "latticeprune", source / "latticeprune",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # --no-isolation: the installed setuptools builds it (a test downloads nothing)
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(tmp_path / "dist"), str(source)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "error"}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("*.whl")
    sdist, = (tmp_path / "dist").glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "latticeprune/csrc/top_down_lstm.cpp" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert b"License-Expression: BSD-3-Clause" in metadata
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    top = names[0].split("/")[0]
    assert f"{top}/latticeprune/csrc/top_down_lstm.cpp" in names
    assert f"{top}/LICENSE" in names
