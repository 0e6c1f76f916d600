"""Accuracy against sparsity: one curve per configuration of a fitted search's ``cv_results_``.

Curves are named by the values of the other parameters that vary; an estimator value by its class
name and the parameters that differ between the estimators of its class, never by its repr.
"""
import warnings

import numpy as np

from .axes import new_axes

__all__ = ["SPARSITY_PARAMS", "plot_sparsity_curves"]

#: Parameter names (after the last ``__``) read as the sparsity of a grid-search candidate.
SPARSITY_PARAMS = ("sparsity", "target_sparsity")


def plot_sparsity_curves(search, *, sparsity_param=None, group_by=None, metric=None, ax=None):
    """Mean cross-validated score against sparsity, one curve per strategy.

    Parameters
    ----------
    search : fitted ``GridSearchCV`` / ``RandomizedSearchCV``, or its ``cv_results_`` dict
    sparsity_param : str or list of str or None, default=None
        Parameter(s) holding a candidate's sparsity (the first one it has); None: those in
        :data:`SPARSITY_PARAMS` after their last ``__``. Candidates without one: a UserWarning.
    group_by : str or list of str or None, default=None
        Parameters whose values make a curve (with several, labelled ``name=value, ...``); None:
        the other parameters that vary. Of several candidates at one sparsity, the best is drawn.
    metric : str or None, default=None
        Scorer of a multi-metric search; None: ``"score"``, or the search's ``refit`` metric.
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        One errorbar container (mean +- std over the splits) per curve in ``ax.containers``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from latticeprune import LatticePruner, RNNClassifier, datasets
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=8, max_epochs=1), n_rounds=1,
    ...                        fine_tune_epochs=0, random_state=0)
    >>> search = GridSearchCV(pruner, {"sparsity": [0.3, 0.6], "strategy": ["lattice", "random"]},
    ...                       cv=2).fit(X[:200], y[:200])
    >>> ax = plot_sparsity_curves(search)
    >>> sorted(text.get_text() for text in ax.get_legend().get_texts())
    ['lattice', 'random']
    """
    results = getattr(search, "cv_results_", search)
    if not isinstance(results, dict) or "params" not in results:
        raise TypeError("plot_sparsity_curves needs a fitted GridSearchCV/RandomizedSearchCV "
                        f"or its cv_results_ dict; got {type(search).__name__}.")
    available = sorted(key.removeprefix("mean_test_") for key in results
                       if key.startswith("mean_test_"))
    if metric is None:
        refit = getattr(search, "refit", None)
        metric = "score" if "score" in available else (refit if isinstance(refit, str) else None)
    if metric not in available:
        raise ValueError(f"metric={metric!r} is not in the results; available: {available}.")
    names = [key.removeprefix("param_") for key in results if key.startswith("param_")]
    if sparsity_param is None:
        sparsity_names = [n for n in names if _short(n) in SPARSITY_PARAMS]
        if not sparsity_names:
            raise ValueError(f"No searched parameter is named {' or '.join(SPARSITY_PARAMS)}; "
                             f"pass sparsity_param (searched: {names}).")
    else:
        sparsity_names = _names(sparsity_param, names, "sparsity_param {} is not a searched "
                                "parameter; searched: {}.")
    candidates = results["params"]
    x = [next((params[n] for n in sparsity_names if params.get(n) is not None), None)
         for params in candidates]
    kept = [i for i, value in enumerate(x) if value is not None]
    if len(kept) < len(candidates):
        warnings.warn(f"{len(candidates) - len(kept)} of {len(candidates)} candidates have no "
                      f"value for {sparsity_names} and are not drawn.", UserWarning, stacklevel=2)
    if not kept:
        raise ValueError(f"No candidate has a value for {sparsity_names}.")
    others = [n for n in names if n not in sparsity_names]
    if group_by is None:
        group_by = [n for n in others if len({repr(candidates[i].get(n)) for i in kept}) > 1]
    group_by = _names(group_by, others, "group_by names {} are not searched parameters (other "
                      "than the sparsity); searched: {}.")

    mean = np.asarray(results[f"mean_test_{metric}"], dtype=float)
    std = np.asarray(results[f"std_test_{metric}"], dtype=float)
    values = {n: _value_labels([candidates[i].get(n) for i in kept],
                               {m[len(n) + 2:] for m in names if m.startswith(n + "__")})
              for n in group_by}
    curves = {}  # label -> {sparsity: best candidate}
    for k, i in enumerate(kept):
        present = [n for n in group_by if n in candidates[i]]
        if len(group_by) == 1:
            label = values[present[0]][k] if present else "(not set)"
        else:
            label = ", ".join(f"{_short(n)}={values[n][k]}" for n in present) or (
                "(not set)" if group_by else f"mean test {metric}")
        best = curves.setdefault(label, {})
        s = float(x[i])
        if s not in best or mean[i] > mean[best[s]]:
            best[s] = i

    ax = new_axes(ax)
    for label, best in curves.items():
        idx = [best[s] for s in sorted(best)]
        ax.errorbar(sorted(best), mean[idx], yerr=std[idx], marker="o", capsize=3, label=label)
    ax.set(xlabel=f"{' / '.join(_short(n) for n in dict.fromkeys(sparsity_names))} (fraction of "
           "pruned weights)", ylabel=f"mean test {metric} (cross-validation)")
    ax.legend(title=_short(group_by[0]) if len(group_by) == 1 else None)
    ax.grid(True, alpha=0.3)
    return ax


def _names(given, valid, message):
    """``given`` (a name or names) as a list; a ValueError ``message`` if some are not ``valid``."""
    given = [given] if isinstance(given, str) else list(given)
    if set(given) - set(valid):
        raise ValueError(message.format(sorted(set(given) - set(valid)), valid))
    return given


def _short(name):
    return name.rsplit("__", 1)[-1]


def _text(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value_labels(values, searched):
    """Labels of one parameter's values: an estimator by its class name and the (deep) parameters,
    other than the ``searched`` ones, that differ between the estimators of its class."""
    params = [{k: v for k, v in value.get_params(deep=True).items() if not hasattr(v, "get_params")}
              if hasattr(value, "get_params") else None for value in values]
    labels = []
    for value, own in zip(values, params):
        peers = [p for v, p in zip(values, params) if type(v) is type(value)]
        differ = [k for k in own or () if k not in searched
                  and len({repr(p.get(k)) for p in peers}) > 1]
        labels.append(_text(value) if own is None else " ".join(
            [type(value).__name__] + [f"{_short(k)}={_text(own[k])}" for k in differ]))
    return labels


