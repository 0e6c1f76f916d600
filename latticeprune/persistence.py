"""Save and load fitted nets and sparsifiers.

Two routes:

* :func:`save` / :func:`load`: the whole fitted object through joblib's pickle. Everything
  survives (masks, lattice analysis, embedding, history), and the loaded object predicts
  exactly as the saved one. **Never load a pickle from a source you do not trust**: unpickling
  runs code chosen by whoever wrote the file.
* :func:`save_weights` / :func:`load_weights`: no pickle. The net's ``state_dict`` goes through
  skorch's ``save_params`` / ``load_params`` and is read back with
  ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers;
  the fitted attributes that are plain data (shapes, classes, masks, lattice analysis,
  embedding, sparsity, history) go to a JSON file. Loading needs the estimator configured as it
  was for training; the files supply what ``fit`` learned.

A pruned module's ``state_dict`` holds ``<name>_orig`` and ``<name>_mask`` for every pruned
weight (``torch.nn.utils.prune``'s reparametrisation). :func:`load_weights` re-creates that
reparametrisation in the freshly initialised module before ``load_params``, so the masks come
back as masks: pruned weights stay exactly zero through further training.
"""

import base64
import json
import os
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import LabelEncoder
from torch.nn.utils import prune

from .base import BaseSparsifier
from .neuron_graph import _refresh_flat_weights

__all__ = ["save", "load", "save_weights", "load_weights", "PARAMS_FILE", "HISTORY_FILE",
           "STATE_FILE"]

#: Files :func:`save_weights` writes into its directory.
PARAMS_FILE = "params.pt"
HISTORY_FILE = "history.json"
STATE_FILE = "latticeprune.json"

_FORMAT_VERSION = 1

#: What ``fit`` sets on a skorch net that ``initialize()`` needs to rebuild the module.
_NET_FITTED_ATTRIBUTES = ("input_size_", "n_steps_", "n_features_in_", "n_outputs_", "_y_ndim",
                          "classes_inferred_")
#: Parameters that may differ between the saved and the loading configuration.
_IGNORED_PARAMS = frozenset({"verbose", "device", "n_threads"})


# -- pickle route ---------------------------------------------------------------------------------
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

    Examples
    --------
    >>> import tempfile, os
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.persistence import save, load
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), sparsity=0.5,
    ...                        n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X[:100], y[:100])
    >>> path = save(pruner, os.path.join(tempfile.mkdtemp(), "pruner.joblib"))
    >>> bool((load(path).predict(X[:5]) == pruner.predict(X[:5])).all())
    True
    """
    path = Path(path)
    joblib.dump(estimator, path, compress=compress)
    return path


def load(path):
    """Load an object written by :func:`save` (or ``joblib.dump``).

    .. warning::
       Loading a pickle runs code chosen by whoever wrote the file. Only load files you
       created or obtained from a source you trust. To exchange models, use
       :func:`save_weights` / :func:`load_weights`, which read tensors with
       ``torch.load(weights_only=True)`` and plain JSON.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    estimator : object
        The saved object; a fitted sparsifier predicts exactly as it did when saved.

    Examples
    --------
    See :func:`save`.
    """
    return joblib.load(Path(path))


# -- weights route --------------------------------------------------------------------------------
def save_weights(estimator, directory):
    """Save a fitted net or sparsifier without pickle: skorch ``save_params`` plus JSON.

    Writes into ``directory`` (created if needed):

    * ``params.pt``: the module's ``state_dict`` (skorch ``save_params(f_params=...)``); for a
      pruned weight, ``<name>_orig`` and ``<name>_mask``;
    * ``history.json``: the skorch training history (``save_params(f_history=...)``);
    * ``latticeprune.json``: the classes and the parameters of every level
      (sparsifiers down to the net), what ``fit`` learned about the data (input size, classes,
      number of outputs), the names of the pruned weights, and every fitted attribute of the
      sparsifiers that is plain data (``masks_``, ``sparsity_``, ``meet_irreducible_``,
      ``lattice_``, ``rounds_``, ``embedding_``, ``penalty_``, ``history_``...). Fitted
      attributes that hold other objects (``ModuliRegularizer.pruned_estimator_``) are not saved;
      a ``UserWarning`` names them.

    Parameters
    ----------
    estimator : fitted skorch net or sparsifier (nested sparsifiers too)
    directory : str or path-like

    Returns
    -------
    directory : pathlib.Path

    See Also
    --------
    load_weights : the inverse.

    Examples
    --------
    >>> import tempfile
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> from latticeprune.persistence import save_weights, load_weights
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> def configure():
    ...     return LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), sparsity=0.5,
    ...                          n_rounds=1, fine_tune_epochs=0, random_state=0)
    >>> pruner = configure().fit(X[:100], y[:100])
    >>> folder = save_weights(pruner, tempfile.mkdtemp())
    >>> restored = load_weights(configure(), folder)
    >>> bool((restored.predict_proba(X[:5]) == pruner.predict_proba(X[:5])).all())
    True
    >>> restored.sparsity_ == pruner.sparsity_
    True
    """
    levels = _levels(estimator)
    net = levels[-1]
    if not getattr(net, "initialized_", False):
        raise NotFittedError(f"save_weights needs a fitted estimator; this "
                             f"{type(net).__name__} is not initialised (call fit first).")
    for level in levels[:-1]:
        if not hasattr(level, "estimator_"):
            raise NotFittedError(f"save_weights needs a fitted estimator; this "
                                 f"{type(level).__name__} has no estimator_ (call fit first).")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    not_saved = []
    state = {
        "format": _FORMAT_VERSION,
        "levels": [_describe_level(level, is_net=level is net, not_saved=not_saved)
                   for level in levels],
        "pruned_parameters": _pruned_parameter_names(net.module_),
    }
    net.save_params(f_params=directory / PARAMS_FILE, f_history=directory / HISTORY_FILE)
    with open(directory / STATE_FILE, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)
    if not_saved:
        warnings.warn(f"save_weights does not save fitted attributes that hold objects other "
                      f"than plain data: {', '.join(not_saved)}. Use save() (pickle) to keep "
                      "them.", UserWarning, stacklevel=2)
    return directory


def load_weights(estimator, directory):
    """Restore a fitted net or sparsifier written by :func:`save_weights`, without pickle.

    ``estimator`` must be configured as the saved one was (same classes and parameters, e.g.
    the code that built it for training); it is fitted in place from the files: the inner net
    is cloned and initialised, the prune reparametrisation of the saved masks is re-created,
    the weights are loaded with skorch's ``load_params`` under
    ``torch.load(weights_only=True)`` (whatever the net's ``torch_load_kwargs`` say), and the
    saved fitted attributes are set.

    The restored object predicts and transforms exactly as the saved one. Nested sparsifiers
    share one net. A restored :class:`~latticeprune.ModuliRegularizer`'s net has the user's
    callbacks but not the penalty and pruning callbacks, so it cannot ``partial_fit``; the
    net itself can (its pruned weights stay zero).

    Parameters
    ----------
    estimator : unfitted skorch net or sparsifier
        The configuration. Its plain parameters (numbers, strings, None) must equal the saved
        ones, except ``verbose``, ``device`` and ``n_threads``.
    directory : str or path-like
        A folder written by :func:`save_weights`.

    Returns
    -------
    estimator : the same object, fitted

    Raises
    ------
    ValueError
        If the configuration's classes or parameters differ from the saved ones.
    pickle.UnpicklingError
        If ``params.pt`` holds anything but tensors and plain containers.

    Examples
    --------
    See :func:`save_weights`.
    """
    directory = Path(directory)
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} does not exist: {directory} is not a folder "
                                "written by latticeprune.persistence.save_weights.")
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    if state.get("format") != _FORMAT_VERSION:
        raise ValueError(f"{state_file} has format {state.get('format')!r}; this version of "
                         f"latticeprune reads format {_FORMAT_VERSION}.")
    saved_levels = state["levels"]
    levels = _configured_levels(estimator, len(saved_levels))
    _check_configuration(levels, saved_levels)
    net = levels[-1]
    _restore_net(net, saved_levels[-1], state["pruned_parameters"], directory)
    for level, saved in zip(levels[:-1], saved_levels[:-1]):
        for name, value in saved["fitted"].items():
            setattr(level, name, _decode(value))
    return estimator


# -- levels: sparsifiers down to the net ----------------------------------------------------------
def _levels(estimator):
    """``[outer sparsifier, ..., inner sparsifier, net]`` of a fitted object."""
    levels = [estimator]
    while isinstance(levels[-1], BaseSparsifier):
        if not hasattr(levels[-1], "estimator_"):
            raise NotFittedError(f"This {type(levels[-1]).__name__} is not fitted yet; call fit "
                                 "before saving it.")
        levels.append(levels[-1].estimator_)
    if not hasattr(levels[-1], "module_") and not hasattr(levels[-1], "save_params"):
        raise TypeError(f"save_weights saves skorch nets and latticeprune sparsifiers; got "
                        f"{type(levels[-1]).__name__}.")
    return levels


def _configured_levels(estimator, n_levels):
    """Give every sparsifier level of the configuration its ``estimator_`` (cloned, seeded)."""
    levels = [estimator]
    while isinstance(levels[-1], BaseSparsifier) and len(levels) < n_levels:
        sparsifier = levels[-1]
        inner = clone(sparsifier.estimator)
        sparsifier._seed_estimator(inner)  # as fit does, so the parameters match the saved ones
        sparsifier.estimator_ = inner
        levels.append(inner)
    return levels


def _class_path(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _plain_params(obj):
    """The parameters that are plain values (numbers, strings, None), for the consistency check."""
    params = {}
    for name, value in obj.get_params(deep=False).items():
        if isinstance(value, (bool, int, float, str, type(None), np.integer, np.floating)):
            params[name] = value.item() if isinstance(value, np.generic) else value
    return params


def _describe_level(level, is_net, not_saved):
    fitted = _net_fitted_state(level) if is_net else _sparsifier_fitted_state(level, not_saved)
    return {"class": _class_path(level), "params": _plain_params(level), "fitted": fitted}


def _net_fitted_state(net):
    """What ``fit`` learned about the data, which ``initialize()`` needs to rebuild the module."""
    fitted = {name: _encode(getattr(net, name)) for name in _NET_FITTED_ATTRIBUTES
              if hasattr(net, name)}
    encoder = getattr(net, "label_encoder_", None)
    if encoder is not None:
        fitted["label_encoder_"] = _encode(encoder.classes_)
    return fitted


def _sparsifier_fitted_state(sparsifier, not_saved):
    """The public fitted attributes that are plain data; the others' names go to ``not_saved``."""
    fitted = {}
    for name, value in vars(sparsifier).items():
        if not name.endswith("_") or name.startswith("_") or name == "estimator_":
            continue
        try:
            fitted[name] = _encode(value)
        except TypeError:
            not_saved.append(f"{type(sparsifier).__name__}.{name}")
    return fitted


def _check_configuration(levels, saved_levels):
    if len(levels) != len(saved_levels):
        raise ValueError(f"The saved object has {len(saved_levels)} levels "
                         f"({' > '.join(s['class'] for s in saved_levels)}); the configuration "
                         f"has {len(levels)} ({' > '.join(_class_path(x) for x in levels)}).")
    problems = []
    for level, saved in zip(levels, saved_levels):
        if _class_path(level) != saved["class"]:
            problems.append(f"{_class_path(level)} where {saved['class']} was saved")
            continue
        current = _plain_params(level)
        for name, value in saved["params"].items():
            if name in _IGNORED_PARAMS or name not in current:
                continue
            if current[name] != value:
                problems.append(f"{type(level).__name__}.{name}={current[name]!r} (saved: "
                                f"{value!r})")
    if problems:
        raise ValueError("The estimator is not configured as the saved one: "
                         + "; ".join(problems) + ". Build it with the parameters used for "
                         "training (they are listed in " + STATE_FILE + ").")


# -- the net --------------------------------------------------------------------------------------
def _pruned_parameter_names(module):
    """``["encoder.weight_hh_l0", ...]``: every parameter under ``torch.nn.utils.prune``."""
    names = []
    for module_name, sub in module.named_modules():
        for hook in sub._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                names.append(f"{module_name}.{hook._tensor_name}" if module_name
                             else hook._tensor_name)
    return sorted(names)


def _restore_net(net, saved, pruned_parameters, directory):
    for name, value in saved["fitted"].items():
        value = _decode(value)
        if name == "label_encoder_":
            encoder = LabelEncoder()
            encoder.classes_ = value
            value = encoder
        setattr(net, name, value)
    with torch.random.fork_rng(devices=[]):  # initialize() draws weights we overwrite anyway
        net.initialize()
    for name in pruned_parameters:
        module_name, _, param = name.rpartition(".")
        prune.identity(net.module_.get_submodule(module_name), param)
    previous = net.torch_load_kwargs
    net.torch_load_kwargs = {**(previous or {}), "weights_only": True}
    try:
        net.load_params(f_params=directory / PARAMS_FILE, f_history=_existing(
            directory / HISTORY_FILE))
    finally:
        net.torch_load_kwargs = previous
    _apply_masks(net.module_)


def _existing(path):
    return path if os.path.exists(path) else None


def _apply_masks(module):
    """Recompute every pruned weight from its ``_orig`` and ``_mask`` (outside autograd)."""
    with torch.no_grad():
        for sub in module.modules():
            for hook in sub._forward_pre_hooks.values():
                if isinstance(hook, prune.BasePruningMethod):
                    setattr(sub, hook._tensor_name, hook.apply_mask(sub))
    _refresh_flat_weights(module)


# -- JSON encoding of fitted attributes -----------------------------------------------------------
def _encode(value):
    """Plain data to JSON values, arrays exactly (base64 of their bytes); TypeError otherwise."""
    if isinstance(value, (bool, str, type(None))):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return _encode(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            data = np.ascontiguousarray(value)
            return {"__ndarray__": base64.b64encode(data.tobytes()).decode("ascii"),
                    "dtype": data.dtype.str, "shape": list(data.shape)}
        if value.dtype.kind in "USO":
            return {"__ndarray_list__": _encode(value.tolist()), "dtype": value.dtype.str}
        raise TypeError(f"arrays of dtype {value.dtype} are not saved")
    if isinstance(value, torch.Tensor):
        return _encode(value.detach().cpu().numpy())
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"__items__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise TypeError(f"{type(value).__name__} is not plain data")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        raw = base64.b64decode(value["__ndarray__"])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
    if "__ndarray_list__" in value:
        return np.array(_decode(value["__ndarray_list__"]), dtype=np.dtype(value["dtype"]))
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k)): _decode(v) for k, v in value["__items__"]}
    return {k: _decode(v) for k, v in value.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key
