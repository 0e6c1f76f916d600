"""One call from a fitted sparsifier, skorch net or torch module to its fast inference form.

:func:`to_inference` reads the pruned net's live weights (through
:class:`~latticeprune.neuron_graph.NeuronGraph`), compacts it
(:mod:`~latticeprune.inference.compact`) and runs each layer with the engine its sparsity pays
for (:mod:`~latticeprune.inference.sparse`), inside :class:`FastRecurrentNet`, a torch module
with the source module's ``forward`` and ``encode``. Given an estimator, it returns a copy of
the fitted skorch net running that module, so every prediction method is the estimator's own.
Building costs O(weights) (compaction is a graph search over the non-zeros).
"""

import copy
import numbers

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils.validation import check_scalar
from skorch.callbacks import Callback
from torch import nn

from ..nets import readout_linear
from ..neuron_graph import find_module, find_net
from ..sequences import sequence_ends
from .compact import CompactRecurrentNet, compact_weights, read_weights, run_fused_layer
from .sparse import (ALWAYS_SPARSE, MIN_SPARSITY, NEVER_SPARSE, SparseRecurrentNet,
                     runs_sparse, sparse_batches)

__all__ = ["to_inference", "FastRecurrentNet", "ENGINES"]

#: Valid ``engine`` values of :func:`to_inference` (which describes them).
ENGINES = ("auto", "sparse", "dense")

class _LayerStack:
    """Stacked layers ``(plan, fused dense layer, CSR runner)``, each run by the engine its
    plan gives for the batch size (:func:`~latticeprune.inference.sparse.runs_sparse`); numpy
    in and out. The sequence changes layout (batch-first / time-major) only where engines do.
    """

    def __init__(self, layers):
        self.layers = layers
        # runs_dense in O(1): dense at batch 1, and for batches below the smallest threshold.
        self._dense_at_one = not any(plan[0] for plan, _, _ in layers)
        self._sparse_from = min([plan[1] for plan, _, _ in layers if plan[1] is not None],
                                default=None)

    def encode(self, x, need_sequence):
        below, time_major, batch = x, False, x.shape[0]
        for index, (plan, dense, sparse) in enumerate(self.layers):
            if not runs_sparse(plan, batch):
                if time_major:
                    below, time_major = np.ascontiguousarray(below.transpose(2, 0, 1)), False
                with torch.inference_mode():  # batch-first outputs are a transposed view
                    below = run_fused_layer(dense, torch.from_numpy(below)).numpy()
                last = below[:, -1]
            else:
                if not time_major:
                    below = np.ascontiguousarray(below.transpose(1, 2, 0))
                layout = "time" if index < len(self.layers) - 1 else (
                    "batch" if need_sequence else None)
                below, last = sparse.encode_time_major(below, layout)
                time_major, last = layout == "time", last.T
        return (below if need_sequence else None), np.ascontiguousarray(last)

    def runs_dense(self, batch):
        """Whether every layer runs on torch's fused kernel for ``batch`` sequences."""
        if batch == 1:
            return self._dense_at_one
        return self._sparse_from is None or batch < self._sparse_from

    def encode_tensor(self, x):
        """Top-layer states (batch, steps, hidden) of tensor ``x``, for a batch that
        :meth:`runs_dense`."""
        for _, rnn, _ in self.layers:
            x = run_fused_layer(rnn, x)
        return x


class _TorchRunner:
    """A top-down :class:`~latticeprune.inference.compact.CompactRecurrentNet`, run by torch."""

    def __init__(self, net):
        self.net = net

    def runs_dense(self, batch):
        return True

    def encode_tensor(self, x):
        return self.net.encode(x)[0]


class _TopDownChoice:
    """A top-down net held twice, as a :class:`_TorchRunner` (torch, the top-down kernel) and as
    the CSR step loop, each run for the batch sizes its ``plan`` gives it
    (:func:`~latticeprune.inference.sparse.runs_sparse`): a top-down net's layers step
    jointly, so one engine runs them all."""

    def __init__(self, plan, dense, sparse):
        self.plan, self.dense, self.sparse = plan, dense, sparse

    def runs_dense(self, batch):
        return not runs_sparse(self.plan, batch)

    def encode_tensor(self, x):
        return self.dense.encode_tensor(x)

    def encode(self, x, need_sequence):
        return self.sparse.encode(x, need_sequence)


def _layer_plan(layer, engine):
    """The plan of ``layer`` under ``engine``: forced by ``"dense"`` / ``"sparse"``, else
    :func:`~latticeprune.inference.sparse.sparse_batches` (dense for a layer with no units)."""
    plan = {"dense": NEVER_SPARSE, "sparse": ALWAYS_SPARSE}.get(engine)
    if plan is None:
        plan = sparse_batches(layer) if layer.hidden_size else NEVER_SPARSE
    return plan


def _top_down_plan(layers, engine):
    """The plan of a top-down net's joint step loop from its layers' plans: CSR where it pays
    for every layer (at batch 1, and from the largest of their thresholds)."""
    plans = [_layer_plan(layer, engine) for layer in layers]
    at_one = all(plan[0] for plan in plans)
    starts = [plan[1] for plan in plans]
    from_batch = None if None in starts else max(starts)
    return ALWAYS_SPARSE if at_one and from_batch is not None else (at_one, from_batch)


def _describe(plan):
    """``layer_engines`` entry of a layer run by ``plan``."""
    if plan in (ALWAYS_SPARSE, NEVER_SPARSE):
        return "sparse" if plan == ALWAYS_SPARSE else "dense"
    return (f"{'sparse' if plan[0] else 'dense'} at batch 1, dense for batches"
            + ("" if plan[1] is None else f" below {plan[1]}, sparse from it"))


def _tensor_nbytes(module):
    return 0 if module is None else int(sum(p.numel() * p.element_size()
                                            for p in module.parameters()))


def _build_runner(weights, engine):
    """The runner for compacted ``weights``, its per-layer description and its weight bytes."""
    if weights.top_down:
        plan = _top_down_plan(weights.layers, engine)
        dense = sparse = None
        if plan != ALWAYS_SPARSE:
            dense = CompactRecurrentNet(weights)
        if plan != NEVER_SPARSE:
            sparse = SparseRecurrentNet(weights, 0.0 if engine == "sparse" else MIN_SPARSITY)
        if sparse is None:
            return _TorchRunner(dense), ["dense"] * len(weights.layers), _tensor_nbytes(
                dense.layers)
        if dense is None:
            return sparse, sparse.layer_engines(), sparse.nbytes()
        return (_TopDownChoice(plan, _TorchRunner(dense), sparse),
                [_describe(plan)] * len(weights.layers),
                _tensor_nbytes(dense.layers) + sparse.nbytes())
    layers, kinds, nbytes = [], [], 0
    for layer in weights.layers:
        single = type(weights)([layer], False, layer.input_size)
        plan = _layer_plan(layer, engine)
        dense = sparse = None
        if plan != ALWAYS_SPARSE:
            dense = CompactRecurrentNet(single).layers[0]
            nbytes += _tensor_nbytes(dense)
        if plan != NEVER_SPARSE:
            sparse = SparseRecurrentNet(single, 0.0 if engine == "sparse" else MIN_SPARSITY)
            nbytes += sparse.nbytes()
        layers.append((plan, dense, sparse))
        kinds.append(_describe(plan))
    return _LayerStack(layers), kinds, nbytes


class FastRecurrentNet(nn.Module):
    """Fast inference form of a pruned recurrent module (built by :func:`to_inference`).

    For prediction only (CPU, no gradients, no parameters): it holds compacted copies of the
    weights, as CSR or dense arrays per layer.

    Parameters
    ----------
    weights : RecurrentWeights
        The pruned net's live weights (:func:`~latticeprune.inference.compact.read_weights`).
    engine : {"auto", "sparse", "dense"}, default="auto"
        As for :func:`to_inference`.

    Attributes
    ----------
    engine : str
        The requested engine.
    layer_engines : list of str
        Per layer, ``"sparse"`` (CSR step loop), ``"dense"``, or, with ``engine="auto"``, a
        description such as ``"dense at batch 1, dense for batches below 8, sparse from it"``
        for a layer whose engine depends on the batch size.
    hidden_sizes : list of int
        Hidden units per layer after compaction (for ``forward``).
    n_features_out : int
        Units of the top layer's states that :meth:`encode` returns (every unit of the source).
    compaction : CompactionReport
        What compaction removed.
    weight_nbytes : int
        Bytes of the recurrent weights and biases as the engine holds them (both forms of a
        layer whose engine depends on the batch size; read-out excluded; so is the second,
        ``encode``-only form built when compaction for the read-out dropped top-layer units).
    dense_weight_nbytes : int
        Bytes of the same weights in the original dense net.
    """

    #: A prediction form, not a net: :class:`~latticeprune.neuron_graph.NeuronGraph` refuses it
    #: (so pruning, ``save_weights`` and ``export_onnx`` point to the source estimator).
    prediction_only = True

    def __init__(self, weights, engine="auto"):
        super().__init__()
        self.engine = engine
        self.input_size = weights.input_size
        self.batch_first = weights.batch_first
        self.sequence_output = weights.sequence_output
        self.dense_weight_nbytes = weights.nbytes()
        compacted, self.compaction = compact_weights(weights, "outputs")
        self._runner, self.layer_engines, self.weight_nbytes = _build_runner(compacted, engine)
        self.hidden_sizes = compacted.hidden_sizes
        self.n_features_out = weights.hidden_sizes[-1]  # columns of encode's last states
        self._hidden_runner = self._runner
        self._readout = None
        if weights.readout_weight is not None:
            self._readout = (torch.from_numpy(compacted.readout_weight),
                             torch.from_numpy(compacted.readout_bias))
            if self.hidden_sizes[-1] != weights.hidden_sizes[-1]:  # encode needs every unit
                self._hidden_runner = _build_runner(compact_weights(weights, "hidden")[0],
                                                    engine)[0]
        self.eval()

    def _states(self, runner, x, need_sequence, lengths=None):
        """Top-layer states of batch-first tensor ``x``, every step's or (``need_sequence``
        False) the last: torch end to end where every layer runs dense (there the fast form
        costs what the dense module costs), through numpy for the CSR loop otherwise. With
        ``lengths`` every step is computed and each sequence's states are cut at its end."""
        if lengths is not None:
            outputs, last = sequence_ends(self._states(runner, x, True), torch.as_tensor(lengths))
            return outputs if need_sequence else last
        if runner.runs_dense(x.shape[0]):
            outputs = runner.encode_tensor(x)
            return outputs if need_sequence else outputs[:, -1]
        sequence, last = runner.encode(np.ascontiguousarray(x.detach().numpy()), need_sequence)
        return torch.from_numpy(sequence if need_sequence else last)

    def _batch_first(self, x):
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.is_cpu):
            x = torch.as_tensor(x, dtype=torch.float32, device="cpu")
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"forward expects a 3-D input with {self.input_size} features per "
                             f"step; got shape {tuple(x.shape)}.")
        return x if self.batch_first else x.transpose(0, 1)

    def _source_layout(self, outputs):
        return outputs if self.batch_first or outputs.dim() != 3 else outputs.transpose(0, 1)

    def forward(self, x, lengths=None):
        """What the source module's ``forward`` returns (for a bare recurrent module, the first
        element of torch's tuple: the top layer's states at every step), as a tensor.

        ``x`` (tensor or array-like) is in the source module's layout: ``(batch, steps,
        features)``, or ``(steps, batch, features)`` for a torch module with
        ``batch_first=False``; ``lengths`` (one per sequence) for padded ``x``, as for
        :meth:`~latticeprune.nets.RecurrentNet.forward`.
        """
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.forward(x, lengths)
        states = self._states(self._runner, self._batch_first(x),
                              self.sequence_output or self._readout is None, lengths)
        if self._readout is not None:
            weight, bias = self._readout
            states = readout_linear(states, weight, bias)
        return self._source_layout(states)

    def encode(self, x, lengths=None):
        """Top-layer states of every unit (compaction for ``forward`` may drop some), as
        :meth:`~latticeprune.nets.RecurrentNet.encode`: every step's, in the layout of ``x``
        (as for :meth:`forward`), and the last ``(batch, hidden)`` (at each end, with
        ``lengths``), what ``transform`` returns.
        """
        with torch.no_grad():
            outputs = self._states(self._hidden_runner, self._batch_first(x), True)
            if lengths is None:
                return self._source_layout(outputs), outputs[:, -1]
            outputs, last = sequence_ends(outputs, torch.as_tensor(lengths))
            return self._source_layout(outputs), last

    def __getattr__(self, name):
        if name in ("predict", "predict_proba", "decision_function", "transform", "score"):
            raise AttributeError(f"{type(self).__name__} is a torch module with forward and "
                                 f"encode, not {name}: to_inference of a fitted estimator "
                                 f"gives an estimator with {name}.")
        return super().__getattr__(name)

    def extra_repr(self):
        return (f"engine={self.engine!r}, layer_engines={self.layer_engines}, "
                f"hidden_sizes={self.hidden_sizes}, weight_nbytes={self.weight_nbytes}")


class _InferenceOnly(Callback):
    """Refuses further training of a prediction copy made by :func:`to_inference`."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        refit = ("set warm_start=False and call fit" if net.warm_start else "call fit")
        raise RuntimeError(f"This {type(net).__name__} runs the fast inference form of a fitted "
                           "net (to_inference) and cannot continue training: train the source "
                           f"estimator, or {refit}, which re-fits a dense net from scratch.")


def _prediction_copy(net, module, batch_size):
    """A copy of the fitted skorch ``net`` (untouched) whose ``module_`` is ``module``.

    ``clone`` copies the parameters; the fitted attributes the clone lacks (``label_encoder_``,
    skorch's bookkeeping, the criterion, which sets ``predict_proba``'s non-linearity) and
    ``history_`` are deep-copied; the optimizer and callbacks are not (see _InferenceOnly).
    """
    fast = clone(net)
    skipped = ("module_", "optimizer_", "callbacks_")
    vars(fast).update(copy.deepcopy({key: value for key, value in vars(net).items()
                                     if key not in vars(fast) and key not in skipped}))
    fast.history_ = copy.deepcopy(net.history_)
    fast.virtual_params_ = copy.deepcopy(net.virtual_params_)
    fast.module_, fast.optimizer_ = module, None
    fast.callbacks_ = [("inference_only", _InferenceOnly())]
    fast.initialized_ = True
    if batch_size is not None:
        fast.set_params(batch_size=batch_size)
    return fast


def to_inference(obj, *, engine="auto", batch_size=None):
    """Turn a pruned recurrent net into its fast inference form.

    Parameters
    ----------
    obj : fitted sparsifier, fitted skorch net or torch module
        A (nested) :class:`~latticeprune.LatticePruner` / ``ModuliRegularizer``, an
        :class:`~latticeprune.RNNClassifier` / ``RNNRegressor``, or a ``RecurrentNet``,
        ``HierarchicalRNN``, ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (pruned or holding zeros).
    engine : {"auto", "sparse", "dense"}, default="auto"
        ``"auto"``: per layer and call, a CSR step loop where the recurrent matrix has at least
        :data:`~latticeprune.inference.sparse.MIN_SPARSITY` zeros and the layer, or the batch,
        is large enough for it to pay (:func:`~latticeprune.inference.sparse.sparse_batches`),
        torch's fused dense kernel otherwise (a layer sparse at batch 1 and for large batches
        is sparse for all); a top-down net runs all its layers one way, on the CSR loop only
        where it pays for every layer, otherwise through torch (the top-down kernel for
        LSTM layers). ``"sparse"``: CSR step loop everywhere. ``"dense"``: the compacted
        net on torch's dense kernels.
    batch_size : int or None, default=None
        Samples per chunk in the returned estimator's predictions (its ``batch_size``
        parameter); None keeps the source estimator's.

    Returns
    -------
    fast : estimator or FastRecurrentNet
        For an estimator, a copy of its fitted skorch net (same class, parameters and fitted
        attributes) whose ``module_`` is the :class:`FastRecurrentNet`: ``predict``,
        ``predict_proba``, ``decision_function``, ``transform``, ``score`` are its own. An
        inference form: ``partial_fit`` raises ``RuntimeError``; ``fit`` re-fits a dense net
        from scratch, as for any estimator. For a torch module, the :class:`FastRecurrentNet`.
        Weights are copied: ``obj`` is not changed, and later changes to it do not reach it.

    Raises
    ------
    NotFittedError
        If ``obj`` is an unfitted estimator.
    TypeError
        If ``obj`` holds no supported recurrent module.
    ValueError
        For an unknown ``engine`` or a bad ``batch_size``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune import LatticePruner, RNNClassifier
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> pruner = LatticePruner(RNNClassifier(hidden_size=16, max_epochs=2), sparsity=0.9,
    ...                        n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
    >>> fast = to_inference(pruner)
    >>> type(fast).__name__, type(fast.module_).__name__
    ('RNNClassifier', 'FastRecurrentNet')
    >>> bool(np.array_equal(fast.predict(X), pruner.predict(X)))
    True
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not valid; valid choices are {list(ENGINES)}.")
    if batch_size is not None:
        check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1)
    module = FastRecurrentNet(read_weights(find_module(obj)), engine)
    if isinstance(obj, nn.Module):
        return module
    return _prediction_copy(find_net(obj), module, batch_size)
