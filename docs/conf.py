"""Sphinx configuration of latticeprune's site.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (the README's docs command;
``.ci/run`` runs it through ``tests/test_docs.py``). The gallery executes
``examples/plot_*.py`` into ``docs/auto_examples``; the API pages go to ``docs/generated``."""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
os.environ.setdefault("PYTHONWARNINGS", "ignore")

import latticeprune  # noqa: E402

project = "latticeprune"
author = "the latticeprune developers"
copyright = "2026, the latticeprune developers"
release = version = latticeprune.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "intersphinx/*"]
templates_path = ["_templates"]

autosummary_generate = True
# the aeon extra pins numpy below the test environment's: its base classes are mocked here
autodoc_mock_imports = ["aeon"]
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# parameter types link where they name an object of numpy, torch, skorch or sklearn
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray", "RandomState": "numpy.random.RandomState",
    "Generator": "numpy.random.Generator", "Tensor": "torch.Tensor", "Module": "torch.nn.Module",
    "NeuralNet": "skorch.net.NeuralNet", "Pipeline": "sklearn.pipeline.Pipeline",
    "Bunch": "sklearn.utils.Bunch", "GridSearchCV": "sklearn.model_selection.GridSearchCV",
}
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# The inventories of the projects the docstrings (and numpydoc's type links) cite, kept in docs/intersphinx/ so the site
# builds offline (docs/intersphinx/make_inventories.py writes them; see its docstring).
intersphinx_mapping = {
    name: (url, str(ROOT / "docs" / "intersphinx" / f"{name}.inv"))
    for name, url in {
        "sklearn": "https://scikit-learn.org/stable/",
        "skorch": "https://skorch.readthedocs.io/en/stable/",
        "torch": "https://docs.pytorch.org/docs/stable/",
        "numpy": "https://numpy.org/doc/stable/",
        "python": "https://docs.python.org/3/",
    }.items()
}

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
    "ignore_pattern": r"make_walkthrough\.py",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "capture_repr": (),  # printed output only, not the repr of a block's last value
}

html_theme = "pydata_sphinx_theme"
html_title = "latticeprune"
html_static_path = []
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2,
                      "secondary_sidebar_items": ["page-toc"]}
