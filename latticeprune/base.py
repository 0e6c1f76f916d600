"""``BaseSparsifier``: what every sparsifier shares, the meta-estimator conventions of
``SelectFromModel``."""

import copy
import numbers
import os

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._tags import TransformerTags, get_tags
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, check_memory

from .dependency import trace_net
from .neuron_graph import NeuronGraph, find_net
from .utils import torch_seed

__all__ = ["BaseSparsifier"]


def _has(name):
    """``available_if`` check: the (fitted) estimator has a method ``name``."""
    def check(self):
        inner = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        getattr(inner, name)  # raises AttributeError, so the method hides itself
        return True
    return check


def _delegate(name, doc):
    """A method calling ``estimator_.<name>``, present when the (fitted) estimator has one."""
    def method(self, X, *args, **kwargs):
        check_is_fitted(self, "estimator_")
        return getattr(self.estimator_, name)(X, *args, **kwargs)
    method.__name__, method.__qualname__, method.__doc__ = name, f"BaseSparsifier.{name}", doc
    return available_if(_has(name))(method)


def _fit_clone(estimator, X, y, fit_params, seed):
    """``estimator.fit(X, y, **fit_params)`` under torch's generator seeded by ``seed``; the
    fitted estimator (what a sparsifier's ``memory`` caches, keyed by every argument)."""
    with torch_seed(seed):
        return estimator.fit(X, y, **fit_params)


class BaseSparsifier(MetaEstimatorMixin, BaseEstimator):
    """Base of :class:`~latticeprune.LatticePruner` and :class:`~latticeprune.ModuliRegularizer`.

    A sparsifier clones ``estimator`` into ``estimator_`` (deep-copies it with ``prefit=True``),
    fits and sparsifies it, then behaves like it: ``predict``, ``predict_proba``,
    ``decision_function``, ``score`` and ``transform`` delegate to the sparse ``estimator_``
    (present when it has them). Sparsifiers nest: ``LatticePruner(ModuliRegularizer(net))``.
    Subclasses set ``estimator``, ``prefit``, ``verbose`` and ``random_state`` in ``__init__``
    and implement ``fit``. Tags (classifier or regressor, transformer, input and target) follow
    the estimator's. ``fit``'s ``**fit_params`` (e.g. ``sample_weight``) reach the estimator's
    ``fit`` and every ``partial_fit`` of the sparsification; with
    ``sklearn.set_config(enable_metadata_routing=True)`` they are routed by sklearn's metadata
    routing instead (request them on the estimator, e.g. ``set_fit_request(sample_weight=True)``
    and ``set_partial_fit_request``).

    Parameters
    ----------
    estimator : estimator
        A skorch net whose module holds ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layers or a
        :class:`~latticeprune.nets.HierarchicalRNN` (e.g. :class:`~latticeprune.RNNClassifier`).
        Never modified.
    prefit : bool, default=False
        ``estimator`` is already fitted: deep-copy it instead of fitting a clone.
    random_state : int, RandomState or None, default=None
        Seeds an unseeded inner estimator (as sklearn's ensembles do) and the sparsifier's own
        draws. Same value, same masks and predictions.
    verbose : int, default=0
        > 0: print one line per pruning step (round or epoch, target and achieved sparsity).
        The estimator's own ``verbose`` controls its epoch table.
    memory : str, path, joblib.Memory or None, default=None
        Cache the fit of the estimator's clone, as ``Pipeline(memory=...)`` caches fitted
        transformers: keyed by the clone's parameters (its seed included), ``X``, ``y`` and
        ``fit_params`` (``sample_weight`` included), so grid-search candidates that differ only
        in the sparsifier's own parameters fit each fold's estimator once. A changed estimator
        parameter, row or weight is a new entry. Safe under ``n_jobs > 1`` and on a Dask
        cluster whose workers share the location (joblib writes entries atomically).

    Attributes
    ----------
    estimator_ : estimator
        The fitted, sparse estimator.
    masks_ : dict of str to ndarray of bool
        ``{tensor name: weight-shaped mask}`` of the pruned tensors (False = pruned).
    sparsity_ : dict
        ``{"overall": float, "per_tensor": {name: float}}``, fractions of zero weight entries;
        ``overall`` over the pruned scope.
    classes_ : ndarray
        Class labels (classifiers).
    n_features_in_ : int
        Columns of the 2-D ``X`` seen in ``fit``.
    """

    # -- building estimator_ -----------------------------------------------------------------
    def _make_estimator(self, prefit=False):
        """Clone (or, with ``prefit``, deep-copy) the user's estimator; never mutate it."""
        if prefit:
            try:
                check_is_fitted(self.estimator)
            except NotFittedError as exc:
                raise NotFittedError(
                    f"prefit=True but the estimator {type(self.estimator).__name__} is not "
                    "fitted; fit it first or use prefit=False.") from exc
            estimator = copy.deepcopy(self.estimator)
        else:
            estimator = clone(self.estimator)
            self._seed_estimator(estimator)
        return estimator

    def _fit_estimator(self, estimator, X, y, fit_params, seed=None):
        """The fitted ``estimator`` (a clone), through ``memory`` when it caches."""
        memory = os.fspath(self.memory) if isinstance(self.memory, os.PathLike) else self.memory
        return check_memory(memory).cache(_fit_clone)(estimator, X, y, fit_params, seed)

    def _fit_params(self, fit_params, method="fit"):
        """``(params of the estimator's fit, params of its partial_fit)`` from ``method``'s
        ``**fit_params``: all of them to both, or as sklearn's metadata routing routes them."""
        if not get_config()["enable_metadata_routing"]:
            return fit_params, fit_params
        routed = process_routing(self, method, **fit_params).estimator
        return routed.get("fit", {}), routed.get("partial_fit", {})

    def get_metadata_routing(self):
        """sklearn's metadata routing: ``fit`` routes to the estimator's ``fit`` and
        ``partial_fit`` (the fine-tuning), ``partial_fit`` to its ``partial_fit``."""
        return MetadataRouter(owner=self).add(
            estimator=self.estimator,
            method_mapping=MethodMapping().add(caller="fit", callee="fit")
            .add(caller="fit", callee="partial_fit")
            .add(caller="partial_fit", callee="partial_fit"))

    def _say(self, message):
        """Print ``message`` when ``verbose > 0``."""
        if self.verbose:
            print(message, flush=True)

    def _seed_estimator(self, estimator):
        """Give an unseeded inner estimator a seed drawn from ``random_state`` (as sklearn's ensembles do)."""
        if self.random_state is None:
            return
        params = estimator.get_params(deep=True)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        updates = {key: seed for key, value in params.items()
                   if (key == "random_state" or key.endswith("__random_state")) and value is None}
        if updates:
            estimator.set_params(**updates)

    def _seed(self, offset=0):
        """An int derived from ``random_state`` (or None) for the sparsifier's own random draws."""
        if self.random_state is None:
            return None
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state) + offset
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    @staticmethod
    def _trace(net, X):
        """Trace ``net``'s module on the first samples of ``X`` (:func:`~latticeprune.dependency.trace_net`),
        so that its :class:`~latticeprune.neuron_graph.NeuronGraph` knows its wiring."""
        check = getattr(net, "check_sequences", None)  # latticeprune's estimators' layout
        trace_net(net, check(X) if check is not None else X)

    @property
    def net_(self):
        """The skorch net inside ``estimator_`` (through nested sparsifiers)."""
        check_is_fitted(self, "estimator_")
        return find_net(self.estimator_)

    def neuron_graph(self):
        """A :class:`~latticeprune.neuron_graph.NeuronGraph` of the fitted net."""
        return NeuronGraph(self.net_.module_)

    @property
    def pruning_scope(self):
        """The weight tensors ``sparsity_["overall"]`` counts: ``"recurrent"`` or ``"all"``."""
        raise NotImplementedError

    def read_masks(self, graph):
        """Set ``masks_`` and ``sparsity_`` from ``graph`` (the fitted net's
        :class:`~latticeprune.neuron_graph.NeuronGraph`): how ``fit`` ends, and how
        :func:`~latticeprune.persistence.load_weights` recomputes them from the masks it loads."""
        self.masks_ = {name: mask.cpu().numpy() for name, mask in graph.masks().items()}
        self.sparsity_ = graph.sparsity(self.pruning_scope)

    # -- delegation --------------------------------------------------------------------------
    predict = _delegate("predict", "Predict with the sparse ``estimator_``.")
    predict_proba = _delegate("predict_proba", "Class probabilities of the sparse ``estimator_``.")
    decision_function = _delegate("decision_function", "Raw outputs of the sparse ``estimator_``.")
    transform = _delegate("transform", "Hidden states of the sparse net, ``estimator_.transform``.")

    @available_if(_has("score"))
    def score(self, X, y, sample_weight=None):
        """``estimator_.score``: accuracy (classifiers), R^2 (regressors)."""
        check_is_fitted(self, "estimator_")
        weights = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self.estimator_.score(X, y, **weights)

    @available_if(_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features=None):
        """Names of the ``transform`` columns, as the estimator's."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.get_feature_names_out(input_features)

    @available_if(_has("transform"))
    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X, y, **fit_params)``, then ``transform(X)``."""
        return self.fit(X, y, **fit_params).transform(X)

    def to_inference(self, engine="auto"):
        """A prediction copy of the fitted skorch net (same class) whose ``module_`` is a
        :class:`~latticeprune.inference.FastRecurrentNet`; it predicts as this sparsifier.

        ``engine``: ``"auto"`` (CSR steps for layers sparse enough to gain, torch's fused dense
        kernels for the others), ``"sparse"`` (CSR everywhere) or ``"dense"`` (compacted
        dense net). See :func:`~latticeprune.inference.to_inference`; NotFittedError before fit.
        """
        check_is_fitted(self, "estimator_")
        from .inference import to_inference  # deferred: loaded only when used

        return to_inference(self, engine=engine)

    @property
    def classes_(self):
        check_is_fitted(self, "estimator_")
        return self.estimator_.classes_

    @property
    def n_features_in_(self):
        check_is_fitted(self, "estimator_")
        return self.estimator_.n_features_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        for name in ("estimator_type", "classifier_tags", "regressor_tags", "transformer_tags",
                     "target_tags", "input_tags", "non_deterministic"):
            setattr(tags, name, copy.deepcopy(getattr(inner, name)))
        if tags.transformer_tags is None and hasattr(self.estimator, "transform"):
            tags.transformer_tags = TransformerTags()  # as TransformerMixin sets it
        tags.target_tags.required = True
        return tags

