"""Write the intersphinx inventories (``objects.inv``) of scikit-learn, skorch, PyTorch,
NumPy and Python into this folder, from the installed packages, so that the site builds offline.

Each project's real inventory lives on its site, which a build machine without internet
cannot reach. This script lists the public classes and functions of the installed packages
and records, for each, the page its project's documentation gives it (the URL scheme of each
site, below: sklearn's and numpy's ``generated/<name>.html``, torch's ``generated/<name>.html``
for ``torch`` and ``torch.nn``, skorch's one page per module). Only names found by import are
written, so a link can only point to an object that exists; where a site moves a page, the
link breaks as it would with a stale downloaded inventory. Run:
``python docs/intersphinx/make_inventories.py``.
"""

import importlib
import inspect
import pkgutil
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def public(module):
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        try:
            obj = getattr(module, name, None)
        except ImportError:  # sklearn's experimental names, behind an explicit import
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield name, obj


def role(obj):
    return "py:class" if inspect.isclass(obj) else "py:function"


def sklearn_entries():
    import sklearn
    for info in pkgutil.iter_modules(sklearn.__path__, "sklearn."):
        if info.name.split(".")[-1].startswith("_") or "tests" in info.name:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        for name, obj in public(module):
            full = f"{info.name}.{name}"
            yield full, role(obj), f"modules/generated/{full}.html#{full}"
    bunch = "sklearn.utils.Bunch"
    yield bunch, "py:class", f"modules/generated/{bunch}.html#{bunch}"
    # the glossary terms and the label that sklearn's docstrings (and ours, in its style) cite
    for term in ("random_state", "meta-estimator", "n_jobs", "estimator", "fit", "predict",
                 "transform", "sample_weight"):
        yield term, "std:term", f"glossary.html#term-{term}"
    yield "metadata_routing", "std:label", "metadata_routing.html#metadata-routing"


def numpy_entries():
    import numpy
    for name, obj in public(numpy):
        full = f"numpy.{name}"
        yield full, role(obj), f"reference/generated/{full}.html#{full}"
    # what numpydoc's default type aliases cite (numpydoc.xref.DEFAULT_LINKS)
    yield "array_like", "std:term", "glossary.html#term-array_like"
    yield "arrays.scalars", "std:label", "reference/arrays.scalars.html#arrays-scalars"
    for name in ("inf", "nan"):
        yield f"numpy.{name}", "py:data", f"reference/constants.html#numpy.{name}"
    yield "numpy", "py:module", "reference/index.html#module-numpy"


def python_entries():
    """The builtins and terms numpydoc's default type aliases cite."""
    for name in ("None", "True", "False"):
        yield name, "py:data", f"library/constants.html#{name}"
    for name in ("list", "tuple", "str", "dict", "float", "int"):
        yield name, "py:class", f"library/stdtypes.html#{name}"
    yield "callable", "py:function", "library/functions.html#callable"
    yield "contextlib.contextmanager", "py:function", \
        "library/contextlib.html#contextlib.contextmanager"
    yield "collections.namedtuple", "py:function", \
        "library/collections.html#collections.namedtuple"
    for term in ("iterable", "sequence", "generator"):
        yield term, "std:term", f"glossary.html#term-{term}"
    yield "bltin-boolean-values", "std:label", "library/stdtypes.html#bltin-boolean-values"


def torch_entries():
    import torch
    import torch.nn
    for prefix, module in (("torch", torch), ("torch.nn", torch.nn)):
        for name, obj in public(module):
            full = f"{prefix}.{name}"
            yield full, role(obj), f"generated/{full}.html#{full}"
    import torch.nn.utils.prune as prune
    for name, obj in public(prune):
        full = f"torch.nn.utils.prune.{name}"
        yield full, role(obj), f"generated/{full}.html#{full}"


def skorch_entries():
    for page, module_name in (("net", "skorch.net"), ("classifier", "skorch.classifier"),
                              ("regressor", "skorch.regressor"),
                              ("callbacks", "skorch.callbacks"), ("history", "skorch.history"),
                              ("dataset", "skorch.dataset")):
        module = importlib.import_module(module_name)
        for name, obj in public(module):
            if getattr(obj, "__module__", "").startswith("skorch"):
                full = f"{module_name}.{name}"
                yield full, role(obj), f"{page}.html#{getattr(obj, '__module__')}.{name}"
                if module_name != obj.__module__:  # also under the module that defines it
                    yield (f"{obj.__module__}.{name}", role(obj),
                           f"{page}.html#{obj.__module__}.{name}")


def write(name, project, entries):
    lines = sorted({f"{full} {kind} {-1 if kind.startswith('std') else 1} {uri} -"
                    for full, kind, uri in entries})
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
              "# The remainder of this file is compressed using zlib.\n").encode()
    (HERE / f"{name}.inv").write_bytes(header + zlib.compress("\n".join(lines).encode() + b"\n"))
    print(f"{name}.inv: {len(lines)} entries")


if __name__ == "__main__":
    write("sklearn", "scikit-learn", sklearn_entries())
    write("numpy", "NumPy", numpy_entries())
    write("torch", "PyTorch", torch_entries())
    write("skorch", "skorch", skorch_entries())
    write("python", "Python", python_entries())
