"""Save and load fitted nets and sparsifiers.

* :func:`save` / :func:`load`: the whole object through joblib's pickle. **Never load a
  pickle from a source you do not trust**: unpickling runs code chosen by its writer.
* :func:`save_weights` / :func:`load_weights`: no pickle. Every array goes into one ``.npz``
  file written and read with ``allow_pickle=False``: the net's ``state_dict`` (a pruned weight
  as ``<name>_orig`` and ``<name>_mask``) and the fitted arrays (``classes_``, ``masks_``,
  ``embedding_``...). The rest is JSON, where an array is the name of its ``.npz`` entry.
  Loading needs the estimator configured as for training; the masks are re-applied with
  :meth:`~latticeprune.neuron_graph.NeuronGraph.apply_masks` (``torch.nn.utils.prune``), so
  pruned weights stay zero through further training. Cost: one copy of every array.
"""

import json
import pickle
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder

from .base import BaseSparsifier
from .dependency import from_json, to_json
from .neuron_graph import (NeuronGraph, apply_module_masks, estimator_chain, find_net,
                           module_masks)
from .units import remove_units

__all__ = ["save", "load", "save_weights", "load_weights", "ARRAYS_FILE", "HISTORY_FILE",
           "STATE_FILE"]

#: Files :func:`save_weights` writes.
ARRAYS_FILE = "arrays.npz"
HISTORY_FILE = "history.json"
STATE_FILE = "latticeprune.json"

_FORMAT_VERSION = 2
#: What ``fit`` sets on a skorch net that ``initialize()`` needs to rebuild the module.
_NET_FITTED = ("input_size_", "n_steps_", "n_features_in_", "n_outputs_", "_y_ndim",
               "classes_inferred_")
#: Parameters that may differ between the saved and the loading configuration.
_IGNORED_PARAMS = frozenset({"verbose", "device", "n_threads"})


def save(estimator, path, *, compress=3):
    """Pickle ``estimator`` (any object) to the file ``path`` with joblib; returns the path.

    ``compress`` (0 to 9, default 3) is joblib's zlib level. :func:`load` is the inverse (read
    its warning); :func:`save_weights` is the pickle-free route.
    """
    joblib.dump(estimator, path, compress=compress)
    return Path(path)


def load(path):
    """Load an object written by :func:`save` (or ``joblib.dump``).

    .. warning::
       Loading a pickle runs code chosen by whoever wrote the file: only load files from a
       source you trust. To exchange models, use :func:`save_weights` / :func:`load_weights`.
    """
    return joblib.load(Path(path))


def save_weights(estimator, directory):
    """Save a fitted net or (nested) sparsifier into ``directory`` without pickle; returns it.

    Writes ``arrays.npz``, ``latticeprune.json`` (class and plain parameters of every level,
    fitted attributes, pruned weight names) and ``history.json``. Fitted attributes holding
    other objects (``ModuliRegularizer.pruned_estimator_``) are skipped with a UserWarning.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.base import clone
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), sparsity=0.5,
    ...                        n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X[:99], y[:99])
    >>> restored = load_weights(clone(pruner), save_weights(pruner, tempfile.mkdtemp()))
    >>> bool((restored.predict_proba(X[:5]) == pruner.predict_proba(X[:5])).all())
    True
    """
    net = find_net(estimator)
    arrays = {key: value.numpy(force=True) for key, value in net.module_.state_dict().items()}
    levels, not_saved = [], []
    for index, level in enumerate(estimator_chain(estimator)):
        if level is net:
            fitted = {name: getattr(net, name) for name in _NET_FITTED if hasattr(net, name)}
            if hasattr(net, "label_encoder_"):
                fitted["label_encoder_"] = net.label_encoder_.classes_
        else:
            fitted = {name: value for name, value in vars(level).items() if name.endswith("_")
                      and not name.startswith("_") and name != "estimator_"}
        stored = {}
        for name, value in fitted.items():
            try:
                stored[name] = _split(value, f"{index}/{name}", arrays)
            except TypeError:
                not_saved.append(f"{type(level).__name__}.{name}")
        levels.append({"class": _class_path(level), "params": _plain_params(level),
                       "fitted": stored})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / ARRAYS_FILE, allow_pickle=False, **arrays)
    net.save_params(f_history=directory / HISTORY_FILE)
    state = {"format": _FORMAT_VERSION, "levels": levels,
             "pruned_parameters": sorted(module_masks(net.module_))}
    deps = NeuronGraph(net).dependencies
    if deps.complete:  # the traced wiring: what unit removal needs to rebuild the net
        state["dependencies"] = to_json(deps)
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    if not_saved:
        warnings.warn(f"save_weights skips fitted attributes that are not plain data: "
                      f"{', '.join(not_saved)}; save() (pickle) keeps them.", stacklevel=2)
    return directory


def load_weights(estimator, directory):
    """Fit ``estimator`` in place from a folder written by :func:`save_weights`; returns it.

    ``estimator`` must be configured as the saved one (same classes and plain parameters but
    ``verbose``, ``device``, ``n_threads``); it then predicts exactly as the saved object. Below
    a ``LatticePruner(granularity="unit")`` the net's ``hidden_size`` comes from the files (the
    fit made it smaller). A
    restored ``ModuliRegularizer`` lacks its penalty callbacks: only its net can
    ``partial_fit``. The outermost sparsifier's ``masks_`` and ``sparsity_`` are recomputed from
    the masks loaded (at ``granularity="unit"`` its ``sparsity_`` is the saved one). Raises
    FileNotFoundError without ``latticeprune.json`` or ``arrays.npz``, ValueError naming a class
    or parameter that differs, a file that is truncated, malformed or lacks an array the other
    refers to, ``pickle.UnpicklingError`` for object arrays.
    """
    directory = Path(directory)
    state = _read_state(directory)
    arrays = _read_arrays(directory / ARRAYS_FILE)
    saved = state["levels"]
    chain = [estimator]
    while isinstance(chain[-1], BaseSparsifier) and len(chain) < len(saved):
        chain[-1].estimator_ = chain[-1]._make_estimator()  # as fit does: cloned and seeded
        chain.append(chain[-1].estimator_)
    for parent, level, saved_level in zip(chain, chain[1:], saved[1:]):
        if getattr(parent, "granularity", None) == "unit" and "hidden_size" in saved_level[
                "params"]:  # latticeprune's estimators: fit made the net smaller
            level.set_params(hidden_size=saved_level["params"]["hidden_size"])
    _check_configuration(chain, saved)
    net = chain[-1]
    entry = _entries(arrays, directory)
    for level, saved_level in zip(chain, saved):
        for name, value in saved_level["fitted"].items():
            setattr(level, name, _join(value, entry))
    if "label_encoder_" in saved[-1]["fitted"]:  # saved as its classes_
        net.label_encoder_ = LabelEncoder().fit(net.label_encoder_)
    with torch.random.fork_rng(devices=[]):  # initialize() draws weights we overwrite anyway
        net.initialize()
    _rebuild(net, chain, state, arrays)
    apply_module_masks(net.module_, {name: torch.from_numpy(entry(name + "_mask"))
                                     for name in state["pruned_parameters"]})
    # state_dict keys hold no "/"; the fitted attributes' arrays are "<level>/<name>/...".
    net.module_.load_state_dict({key: torch.from_numpy(value) for key, value in arrays.items()
                                 if "/" not in key})
    graph = NeuronGraph(net).freeze()
    top = chain[0]
    if isinstance(top, BaseSparsifier) and getattr(top, "granularity", None) != "unit":
        top.read_masks(graph)  # what the loaded masks prune, whatever the file says it was
    net.load_params(f_history=directory / HISTORY_FILE)
    return estimator


def _rebuild(net, chain, state, arrays):
    """Give ``net`` the saved wiring and, where a unit pruner made the saved net smaller than
    its configuration builds (a user's module), remove the same units first."""
    if "dependencies" not in state:
        return
    saved = {key[:-len("_orig")] if key.endswith("_orig") else key: value.shape
             for key, value in arrays.items() if "/" not in key and not key.endswith("_mask")}
    try:
        from_json(net.module_, state["dependencies"])
        if {k: tuple(v.shape) for k, v in net.module_.state_dict().items()} == saved:
            return
    except ValueError:  # other recurrent layers: the saved net was restacked
        pass
    pruner = next((level for level in chain if getattr(level, "units_", None) is not None),
                  None)
    if pruner is None:
        return  # load_state_dict names the mismatch
    from_json(net.module_, getattr(pruner, "wiring_", state["dependencies"]))
    net.module_ = remove_units(net.module_, [np.asarray(k) for k in pruner.units_])
    from_json(net.module_, state["dependencies"])
    net.initialize_optimizer()


def _read_state(directory):
    """``latticeprune.json`` of ``directory``, checked: ``ValueError`` naming what is wrong."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {directory} is not a folder written "
                                "by latticeprune.persistence.save_weights.")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}): the file was cut short or "
                         "edited.") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT_VERSION:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} has format {found!r}; this version of latticeprune reads "
                         f"format {_FORMAT_VERSION}.")
    levels, pruned = state.get("levels"), state.get("pruned_parameters")
    if not (isinstance(levels, list) and levels and all(
            isinstance(level, dict) and isinstance(level.get("class"), str)
            and isinstance(level.get("params"), dict) and isinstance(level.get("fitted"), dict)
            for level in levels)):
        raise ValueError(f"{path}: 'levels' must be a non-empty list of objects with 'class', "
                         f"'params' and 'fitted'; got {json.dumps(levels)[:80]}. The file was "
                         "edited or is not from save_weights.")
    if not (isinstance(pruned, list) and all(isinstance(name, str) for name in pruned)):
        raise ValueError(f"{path}: 'pruned_parameters' must be a list of tensor names; got "
                         f"{json.dumps(pruned)[:80]}.")
    return state


def _read_arrays(path):
    """Every array of the ``.npz`` file ``path``, without pickle."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: save_weights writes it beside "
                                f"{STATE_FILE}.") from None
    except ValueError as exc:  # numpy refuses object arrays: they are pickles
        if "allow_pickle" not in str(exc):
            raise ValueError(f"{path} cannot be read ({exc}).") from None
        raise pickle.UnpicklingError(f"{path} holds pickled objects; only plain arrays are "
                                     "read (weights only).") from exc
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}): the file is truncated or not one "
                         "that save_weights wrote.") from None


def _entries(arrays, directory):
    """``entry(key)``: ``arrays[key]``, or ``ValueError`` naming the missing entry."""
    def entry(key):
        try:
            return arrays[key]
        except KeyError:
            raise ValueError(f"{directory / ARRAYS_FILE} has no array {key!r}, which "
                             f"{STATE_FILE} refers to: the two files do not belong together "
                             "or were edited.") from None
    return entry


def _class_path(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _plain_params(obj):
    """The parameters that are plain values (numbers, strings, None), for the consistency check."""
    scalar = (bool, int, float, str, type(None), np.integer, np.floating)
    return {name: value.item() if isinstance(value, np.generic) else
            [v.item() if isinstance(v, np.generic) else v for v in value]
            if isinstance(value, (list, tuple)) else value
            for name, value in obj.get_params(deep=False).items()
            if isinstance(value, scalar) or (isinstance(value, (list, tuple))
                                              and all(isinstance(v, scalar) for v in value))}


def _check_configuration(chain, saved):
    problems = [] if len(chain) == len(saved) else [f"{len(chain)} levels where {len(saved)} "
                                                    "levels were saved"]
    for level, saved_level in zip(chain, saved):
        if _class_path(level) != saved_level["class"]:
            problems.append(f"{_class_path(level)} where {saved_level['class']} was saved")
            continue
        current = _plain_params(level)
        problems += [f"{type(level).__name__}.{name}={current[name]!r} (saved: {value!r})"
                     for name, value in saved_level["params"].items()
                     if name not in _IGNORED_PARAMS and name in current
                     and current[name] != value]
    if problems:
        raise ValueError("The estimator is not configured as the saved one: "
                         + "; ".join(problems) + ". Build it with the parameters used for "
                         f"training (they are listed in {STATE_FILE}).")


def _split(value, key, arrays):
    """``value`` as JSON data, its arrays moved into ``arrays`` under names starting with ``key``.

    An array becomes ``{"array": name, "dtype": ...}`` (an object array only if it holds
    strings), a tuple ``{"tuple": [...]}``, a dict ``{"items": [[key, value], ...]}``;
    TypeError for other objects (some arrays may then be in ``arrays`` already, unreferenced).
    """
    value = value.numpy(force=True) if isinstance(value, torch.Tensor) else value
    value = value.item() if isinstance(value, np.generic) else value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject and not all(isinstance(v, str) for v in value.flat):
            raise TypeError("object arrays other than strings are not plain data")
        arrays[key] = value.astype(str) if value.dtype.hasobject else value
        return {"array": key, "dtype": value.dtype.str}
    if isinstance(value, (list, tuple)):
        items = [_split(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"tuple": items}
    if isinstance(value, dict):  # items, as keys need not be strings
        return {"items": [[_split(k, f"{key}/k{i}", arrays), _split(v, f"{key}/{i}", arrays)]
                          for i, (k, v) in enumerate(value.items())]}
    raise TypeError(f"{type(value).__name__} is not plain data")


def _join(value, entry):
    """The inverse of :func:`_split`; ``entry(key)`` reads an array."""
    if isinstance(value, list):
        return [_join(v, entry) for v in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return np.asarray(entry(value["array"]), dtype=value["dtype"])
    if "tuple" in value:
        return tuple(_join(v, entry) for v in value["tuple"])
    return {_join(k, entry): _join(v, entry) for k, v in value["items"]}
