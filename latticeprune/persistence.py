"""Save and load fitted nets and sparsifiers.

Two routes:

* :func:`save` / :func:`load`: the whole fitted object through joblib's pickle. Everything
  survives (masks, lattice analysis, embedding, history) and the loaded object predicts exactly
  as the saved one. **Never load a pickle from a source you do not trust**: unpickling runs
  code chosen by whoever wrote the file.
* :func:`save_weights` / :func:`load_weights`: no pickle. Every array goes into one
  ``numpy.savez`` file written and read with ``allow_pickle=False``: the net's ``state_dict``
  (a pruned weight as ``<name>_orig``, the unpruned tensor, and ``<name>_mask``) and the fitted
  array attributes (``classes_``, ``masks_``, ``meet_irreducible_``, ``embedding_``...). The
  parameters and the other fitted attributes are JSON, in which an array appears only as the
  name of its ``.npz`` entry; skorch writes the training history as JSON. Loading needs the
  estimator configured as it was for training; the files supply what ``fit`` learned, and the
  masks are re-applied with :meth:`~latticeprune.neuron_graph.NeuronGraph.apply_masks`
  (``torch.nn.utils.prune``), so pruned weights stay exactly zero through further training.

Cost: one copy of every array, written once; nothing is recomputed on load.
"""

import json
import pickle
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder

from .base import BaseSparsifier
from .neuron_graph import NeuronGraph, estimator_chain, find_net

__all__ = ["save", "load", "save_weights", "load_weights", "ARRAYS_FILE", "HISTORY_FILE",
           "STATE_FILE"]

#: Files :func:`save_weights` writes into its directory.
ARRAYS_FILE = "arrays.npz"
HISTORY_FILE = "history.json"
STATE_FILE = "latticeprune.json"

_FORMAT_VERSION = 2
#: What ``fit`` sets on a skorch net that ``initialize()`` needs to rebuild the module.
_NET_FITTED_ATTRIBUTES = ("input_size_", "n_steps_", "n_features_in_", "n_outputs_", "_y_ndim",
                          "classes_inferred_")
#: Parameters that may differ between the saved and the loading configuration.
_IGNORED_PARAMS = frozenset({"verbose", "device", "n_threads"})


def save(estimator, path, *, compress=3):
    """Pickle a fitted net or sparsifier (or any object) to ``path`` with joblib.

    Parameters
    ----------
    estimator : object
        Typically a fitted :class:`~latticeprune.LatticePruner`,
        :class:`~latticeprune.ModuliRegularizer` or skorch net.
    path : str or path-like
        File to write; its folder must exist.
    compress : int from 0 to 9, default=3
        joblib's zlib compression level (0: none).

    Returns
    -------
    path : pathlib.Path

    See Also
    --------
    load : the inverse; read its warning about untrusted files.
    save_weights : the pickle-free route.
    """
    path = Path(path)
    joblib.dump(estimator, path, compress=compress)
    return path


def load(path):
    """Load an object written by :func:`save` (or ``joblib.dump``).

    .. warning::
       Loading a pickle runs code chosen by whoever wrote the file. Only load files you
       created or obtained from a source you trust. To exchange models, use
       :func:`save_weights` / :func:`load_weights` (``numpy`` arrays without pickle, JSON).
    """
    return joblib.load(Path(path))


def save_weights(estimator, directory):
    """Save a fitted net or sparsifier (nested sparsifiers too) into ``directory``, without pickle.

    Writes ``arrays.npz`` (every array), ``latticeprune.json`` (the class and the plain
    parameters of every level down to the net, what ``fit`` learned, the names of the pruned
    weights) and ``history.json`` (skorch's history). Fitted attributes that hold objects other
    than plain data (``ModuliRegularizer.pruned_estimator_``) are not saved; a ``UserWarning``
    names them. Returns the directory as a :class:`pathlib.Path`.

    Examples
    --------
    >>> import tempfile
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> def configure():
    ...     return LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), sparsity=0.5,
    ...                          n_rounds=1, fine_tune_epochs=0, random_state=0)
    >>> pruner = configure().fit(X[:100], y[:100])
    >>> restored = load_weights(configure(), save_weights(pruner, tempfile.mkdtemp()))
    >>> bool((restored.predict_proba(X[:5]) == pruner.predict_proba(X[:5])).all())
    True
    """
    net = find_net(estimator)
    arrays = {key: value.detach().cpu().numpy() for key, value in net.module_.state_dict().items()}
    levels, not_saved = [], []
    for index, level in enumerate(estimator_chain(estimator)):
        if level is net:
            fitted = {name: getattr(net, name) for name in _NET_FITTED_ATTRIBUTES
                      if hasattr(net, name)}
            if hasattr(net, "label_encoder_"):
                fitted["label_encoder_"] = net.label_encoder_.classes_
        else:
            fitted = {name: value for name, value in vars(level).items() if name.endswith("_")
                      and not name.startswith("_") and name != "estimator_"}
        stored = {}
        for name, value in fitted.items():
            found = {}
            try:
                stored[name] = _split(value, f"{index}/{name}", found)
            except TypeError:
                not_saved.append(f"{type(level).__name__}.{name}")
            else:
                arrays.update(found)
        levels.append({"class": _class_path(level), "params": _plain_params(level),
                       "fitted": stored})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / ARRAYS_FILE, allow_pickle=False, **arrays)
    net.save_params(f_history=directory / HISTORY_FILE)
    state = {"format": _FORMAT_VERSION, "levels": levels,
             "pruned_parameters": sorted(NeuronGraph(net).masks())}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    if not_saved:
        warnings.warn(f"save_weights does not save fitted attributes that hold objects other "
                      f"than plain data: {', '.join(not_saved)}. Use save() (pickle) to keep "
                      "them.", UserWarning, stacklevel=2)
    return directory


def load_weights(estimator, directory):
    """Fit ``estimator`` in place from a folder written by :func:`save_weights`, without pickle.

    ``estimator`` must be configured as the saved one was (same classes and plain parameters,
    except ``verbose``, ``device`` and ``n_threads``); every sparsifier level gets its seeded
    clone as ``estimator_``, the net is initialised, the saved masks are applied, the
    ``state_dict`` is loaded and the fitted attributes are set. The result predicts and
    transforms exactly as the saved object. A restored
    :class:`~latticeprune.ModuliRegularizer`'s net has the user's callbacks but not the penalty
    and pruning callbacks, so the regulariser cannot ``partial_fit``; the net itself can.

    Raises
    ------
    FileNotFoundError
        If ``directory`` holds no ``latticeprune.json``.
    ValueError
        If the configuration's classes or parameters differ from the saved ones (the message
        names them) or the file format is not this version's.
    pickle.UnpicklingError
        If ``arrays.npz`` holds pickled objects (object arrays): they are refused, never run.
    """
    directory = Path(directory)
    if not (directory / STATE_FILE).is_file():
        raise FileNotFoundError(f"{directory / STATE_FILE} does not exist: {directory} is not "
                                "a folder written by latticeprune.persistence.save_weights.")
    state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("format") != _FORMAT_VERSION:
        raise ValueError(f"{directory / STATE_FILE} has format {state.get('format')!r}; this "
                         f"version of latticeprune reads format {_FORMAT_VERSION}.")
    try:
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:  # numpy refuses object arrays: they are pickles
        raise pickle.UnpicklingError(f"{directory / ARRAYS_FILE} holds pickled objects; "
                                     "load_weights reads plain arrays only (weights only, "
                                     "allow_pickle=False).") from exc
    saved = state["levels"]
    level = estimator
    for _ in saved[1:]:
        if not isinstance(level, BaseSparsifier):
            break
        level.estimator_ = level._make_estimator()  # as fit: cloned, seeded from random_state
        level = level.estimator_
    chain = estimator_chain(estimator)
    _check_configuration(chain, saved)
    net = chain[-1]
    fitted = {name: _join(value, arrays) for name, value in saved[-1]["fitted"].items()}
    if "label_encoder_" in fitted:
        net.label_encoder_ = LabelEncoder()
        net.label_encoder_.classes_ = fitted.pop("label_encoder_")
    for name, value in fitted.items():
        setattr(net, name, value)
    with torch.random.fork_rng(devices=[]):  # initialize() draws weights we overwrite anyway
        net.initialize()
    graph = NeuronGraph(net)
    graph.apply_masks({name: torch.from_numpy(arrays[name + "_mask"])
                       for name in state["pruned_parameters"]})
    # state_dict keys hold no "/"; the fitted attributes' arrays are "<level>/<name>/...".
    net.module_.load_state_dict({key: torch.from_numpy(value) for key, value in arrays.items()
                                 if "/" not in key})
    graph.freeze()
    if (directory / HISTORY_FILE).is_file():
        net.load_params(f_history=directory / HISTORY_FILE)
    for level, saved_level in zip(chain[:-1], saved[:-1]):
        for name, value in saved_level["fitted"].items():
            setattr(level, name, _join(value, arrays))
    return estimator


def _class_path(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _plain_params(obj):
    """The parameters that are plain values (numbers, strings, None), for the consistency check."""
    return {name: value.item() if isinstance(value, np.generic) else value
            for name, value in obj.get_params(deep=False).items()
            if isinstance(value, (bool, int, float, str, type(None), np.integer, np.floating))}


def _check_configuration(chain, saved):
    if len(chain) != len(saved):
        raise ValueError(f"The saved object has {len(saved)} levels "
                         f"({' > '.join(s['class'] for s in saved)}); the configuration has "
                         f"{len(chain)} ({' > '.join(_class_path(x) for x in chain)}).")
    problems = []
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

    An array becomes ``{"array": name, "dtype": ...}``, a tuple ``{"tuple": [...]}``, a dict
    ``{"keys": [...], "values": [...]}`` (keys need not be strings); TypeError for other
    objects. Object arrays are kept only when they hold strings (saved as a unicode array).
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        value = value.item()
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
    if isinstance(value, dict):
        return {"keys": [_split(k, f"{key}/k{i}", arrays) for i, k in enumerate(value)],
                "values": [_split(v, f"{key}/{i}", arrays) for i, v in enumerate(value.values())]}
    raise TypeError(f"{type(value).__name__} is not plain data")


def _join(value, arrays):
    """The inverse of :func:`_split`."""
    if isinstance(value, list):
        return [_join(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "array" in value:
        return np.asarray(arrays[value["array"]], dtype=value["dtype"])
    if "tuple" in value:
        return tuple(_join(v, arrays) for v in value["tuple"])
    return dict(zip((_join(k, arrays) for k in value["keys"]),
                    (_join(v, arrays) for v in value["values"])))
