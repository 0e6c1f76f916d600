"""The documentation site (docs/, issue 28): every public name is in the API reference, and
the site builds with warnings as errors (marked ``docs``: it executes the gallery)."""

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import latticeprune

ROOT = Path(__file__).resolve().parents[1]


def api_entries():
    """The names ``docs/api.rst`` lists, as ``module.name``."""
    entries, module = set(), None
    for line in (ROOT / "docs" / "api.rst").read_text().splitlines():
        found = re.match(r"\.\. currentmodule:: (\S+)", line)
        if found:
            module = found.group(1)
        elif module and re.fullmatch(r"   \w+", line):
            entries.add(f"{module}.{line.strip()}")
    return entries


def public_names():
    """``(module, name)`` for every name in the ``__all__`` of every module of the package
    (the aeon wrappers where aeon is installed)."""
    for info in pkgutil.walk_packages(latticeprune.__path__, "latticeprune."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # the optional aeon module without aeon
            continue
        for name in getattr(module, "__all__", ()):
            yield module, name


def test_every_public_name_is_in_the_api_reference():
    entries = api_entries()
    missing = []
    for module, name in public_names():
        # listed under its module, or under a package above it that re-exports the same object
        owners = [p for p in (module.__name__.rsplit(".", k)[0]
                              for k in range(module.__name__.count(".") + 1))
                  if f"{p}.{name}" in entries]
        if not any(getattr(importlib.import_module(p), name, None) is getattr(module, name)
                   for p in owners):
            missing.append(f"{module.__name__}.{name}")
    assert not missing, f"not in docs/api.rst: {missing}"
    assert "latticeprune.LatticePruner" in entries  # the parser reads the file


def test_the_api_reference_lists_no_name_that_does_not_exist():
    for entry in api_entries():
        module, _, name = entry.rpartition(".")
        try:
            imported = importlib.import_module(module)
        except ImportError:
            continue  # latticeprune.aeon_estimators without aeon
        assert hasattr(imported, name), entry


@pytest.mark.docs
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx_gallery")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                             "html", "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"),
                             str(tmp_path / "html")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    html = tmp_path / "html"
    api = (html / "api.html").read_text()
    assert "latticeprune.LatticePruner" in api and (html / "generated").is_dir()
    classifier = (html / "generated" / "latticeprune.RNNClassifier.html").read_text()
    assert "skorch.readthedocs.io/en/stable/classifier.html" in classifier  # intersphinx
    scaler = (html / "generated" / "latticeprune.SequenceScaler.html").read_text()
    assert "scikit-learn.org/stable/modules/generated/sklearn.preprocessing" in scaler
    examples = sorted(p.stem for p in (ROOT / "examples").glob("plot_*.py"))
    assert set(EXAMPLE_OUTPUT) == set(examples)
    for name in examples:  # each gallery page shows what its script printed, and its figures
        page = (html / "auto_examples" / f"{name}.html").read_text()
        assert re.search(EXAMPLE_OUTPUT[name], page), name
        figures = re.findall(r'<img [^>]*class\s*=\s*"sphx-glr-single-img"', page)
        assert len(figures) == EXAMPLE_FIGURES[name], name


#: What each gallery page must show of its script's output (tests the examples' results).
EXAMPLE_OUTPUT = {
    "plot_dask_search": r"same scores: True",
    "plot_grid_search": r"chosen: \w+ test accuracy 0\.[89]",
    "plot_lattice": r"lattice +at sparsity 0\.80: 0\.[89]",
    "plot_moduli": r"torus +at sparsity 0\.90: 0\.[89]",
    "plot_unit_removal": r"same labels: True",
    "plot_variable_length": r"alone and inside the batch: largest difference 0\.0",
}
EXAMPLE_FIGURES = {"plot_dask_search": 1, "plot_grid_search": 1, "plot_lattice": 2,
                   "plot_moduli": 1, "plot_unit_removal": 1, "plot_variable_length": 1}
