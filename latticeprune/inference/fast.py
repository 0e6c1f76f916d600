"""One call from a fitted sparsifier, skorch net or torch module to its fast inference form.

:func:`to_inference` reads the pruned net's effective weights, compacts it
(:mod:`~latticeprune.inference.compact`) and runs it with the engine the sparsity pays for
(:mod:`~latticeprune.inference.sparse`). The returned :class:`InferenceModel` behaves like the
estimator it came from at prediction time: same input validation and reshaping, same
``classes_``, same ``predict`` / ``predict_proba`` / ``transform``.
"""

import types

import numpy as np
import torch
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from torch import nn

from ..estimators import RNNClassifier as _SequenceNetMixin  # its _check_X, _check_finite_output
from .compact import CompactRecurrentNet, compact_weights, read_weights, run_fused_layer
from .sparse import MIN_SPARSITY, SparseRecurrentNet, runs_sparse, sparse_batches

__all__ = ["to_inference", "InferenceModel", "ENGINES"]

#: ``"auto"``: per layer and batch size, the CSR step loop where it pays (recurrent matrix at
#: least ``MIN_SPARSITY`` sparse, and the layer, or the batch that shares the loop's fixed
#: per-step cost, large enough: :func:`~latticeprune.inference.sparse.sparse_batches`),
#: torch's fused dense kernel elsewhere. A layer whose loop pays at batch 1 and for large
#: batches runs it for every batch size (no dense copy kept for the small batches in between,
#: where it can be slower); a layer that pays only for large batches keeps both forms. Top-down
#: nets run the step loop with each matrix CSR or dense by ``MIN_SPARSITY``. ``"sparse"``:
#: CSR step loop everywhere.
#: ``"dense"``: the compacted net on torch's dense kernels.
ENGINES = ("auto", "sparse", "dense")


def _net_of(obj):
    """The skorch net (or None) and torch module inside ``obj``; NotFittedError if not fitted."""
    if isinstance(obj, nn.Module):
        return None, obj
    seen = 0
    while not hasattr(obj, "module_"):
        if hasattr(obj, "estimator_"):
            obj = obj.estimator_
        elif hasattr(obj, "estimator") or hasattr(obj, "module"):
            raise NotFittedError(f"This {type(obj).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before 'to_inference'.")
        else:
            raise TypeError(f"to_inference expects a fitted sparsifier, a fitted skorch net or "
                            f"a torch module; got {type(obj).__name__}.")
        seen += 1
        if seen > 20:
            raise TypeError("Could not find a skorch net inside the given object.")
    if not getattr(obj, "initialized_", False):
        raise NotFittedError(f"This {type(obj).__name__} instance is not fitted yet.")
    return obj, obj.module_


class _LayerStack:
    """Stacked (non-top-down) layers, each run by its own engine; batch-first numpy in and out.

    A layer is ``((at_batch_1, from_batch), dense_runner, sparse_runner)``: the CSR loop runs
    it for a single sequence if ``at_batch_1`` and for batches of at least ``from_batch``
    sequences (None: never), torch's fused dense layer otherwise. Fused torch layers work
    batch-first, the CSR loop time-major; the sequence changes layout only where the engine
    changes.
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
                below = _fused_outputs(dense, below)
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
        below = x
        for _, rnn, _ in self.layers:
            below = run_fused_layer(rnn, below)
        return below


#: Plans (see :class:`_LayerStack`) of a layer run by one engine for every batch size.
_ALWAYS_SPARSE, _NEVER_SPARSE = (True, 2), (False, None)


def _describe(plan):
    """``layer_engines_`` entry of a layer run by ``plan`` (see :class:`_LayerStack`)."""
    if plan == _ALWAYS_SPARSE:
        return "sparse"
    if plan == _NEVER_SPARSE:
        return "dense"
    at_one, from_batch = plan
    batches = ("dense for batches" if from_batch is None
               else f"dense for batches below {from_batch}, sparse from it")
    return f"{'sparse' if at_one else 'dense'} at batch 1, {batches}"


def _fused_outputs(rnn, x):
    """:func:`~latticeprune.inference.compact.run_fused_layer` on numpy ``x``, batch first."""
    with torch.inference_mode():  # batch-first outputs are a transposed view: keep it so
        return run_fused_layer(rnn, torch.from_numpy(x)).numpy()


class _TorchRunner:
    """A :class:`CompactRecurrentNet` behind the numpy ``encode`` interface."""

    def __init__(self, net):
        self.net = net

    def encode(self, x, need_sequence):
        with torch.inference_mode():
            outputs, last = self.net.encode(torch.from_numpy(np.ascontiguousarray(x)))
            return (outputs.numpy() if need_sequence else None), last.numpy()

    def runs_dense(self, batch):
        return True

    def encode_tensor(self, x):
        return self.net.encode(x)[0]


def _tensor_nbytes(module):
    return int(sum(p.numel() * p.element_size() for p in module.parameters()))


def _build_runner(weights, engine):
    """The runner for compacted ``weights`` and a description of what runs where."""
    if engine == "dense":
        net = CompactRecurrentNet(weights)
        return _TorchRunner(net), ["dense"] * len(weights.layers), _tensor_nbytes(net.layers)
    if engine == "sparse" or weights.top_down:
        min_sparsity = 0.0 if engine == "sparse" else MIN_SPARSITY
        runner = SparseRecurrentNet(weights, min_sparsity)
        kinds = ["sparse" if "csr" in formats.values() else "dense"
                 for formats in runner.formats()]
        return runner, kinds, runner.nbytes()
    layers, kinds, nbytes = [], [], 0
    for layer in weights.layers:
        single = type(weights)([layer], False, layer.input_size)
        plan = sparse_batches(layer) if layer.hidden_size else _NEVER_SPARSE
        if plan[0] and plan[1] is not None:
            # Sparse at batch 1 and for large batches: CSR only, for every batch size. A dense
            # copy for the few small batch sizes in between would cost more memory than the
            # CSR form saves.
            plan = _ALWAYS_SPARSE
        dense = sparse = None
        if plan != _ALWAYS_SPARSE:
            dense = CompactRecurrentNet(single).layers[0]
            nbytes += 0 if dense is None else _tensor_nbytes(dense)
        if plan != _NEVER_SPARSE:
            sparse = SparseRecurrentNet(single, MIN_SPARSITY)
            nbytes += sparse.nbytes()
        layers.append((plan, dense, sparse))
        kinds.append(_describe(plan))
    return _LayerStack(layers), kinds, nbytes


class InferenceModel:
    """Fast inference form of a pruned recurrent net (built by :func:`to_inference`).

    Parameters
    ----------
    weights : RecurrentWeights
        The pruned net's effective weights.
    engine : {"auto", "sparse", "dense"}
        See :data:`ENGINES`.
    net : skorch net or None
        The fitted estimator the weights come from (for validation, ``classes_`` and the
        output transforms), or None for a bare torch module.
    batch_size : int, default=256
        Samples per chunk in ``predict``, ``predict_proba``, ``decision_function`` and
        ``transform`` (bounds the memory of the gate inputs).

    Attributes
    ----------
    engine_ : str
        The requested engine.
    layer_engines_ : list of str
        Per layer, ``"sparse"`` (CSR step loop), ``"dense"``, or, with ``engine="auto"``, a
        description such as ``"dense at batch 1, dense for batches below 8, sparse from it"``
        for a layer whose engine depends on the batch size (the loop's fixed per-step cost
        is shared by a batch, its element-wise passes are not).
    hidden_sizes_ : list of int
        Hidden units per layer after compaction (for ``forward`` / ``predict``).
    compaction_ : CompactionReport
        What compaction removed.
    weight_nbytes_ : int
        Bytes of the recurrent weights and biases as the engine holds them (both forms of a
        layer whose engine depends on the batch size; read-out excluded; so is the second,
        ``transform``-only form built when compaction for the read-out dropped top-layer
        units).
    dense_weight_nbytes_ : int
        Bytes of the same weights in the original dense net.
    classes_ : ndarray
        Class labels (classifiers only).
    n_features_in_, input_size_ : int
        As the estimator's.
    """

    def __init__(self, weights, engine="auto", net=None, batch_size=256):
        self.engine_ = engine
        self.batch_size = batch_size
        self._sequence_output = weights.sequence_output
        self._batch_first = weights.batch_first
        self._has_readout = weights.readout_weight is not None
        self.input_size_ = weights.input_size
        self.dense_weight_nbytes_ = _recurrent_nbytes(weights)
        compacted, self.compaction_ = compact_weights(weights, "outputs")
        self._readout = (compacted.readout_weight, compacted.readout_bias)
        if self._has_readout:
            self._readout_tensors = tuple(torch.from_numpy(np.ascontiguousarray(a))
                                          for a in self._readout)
        self._runner, self.layer_engines_, self.weight_nbytes_ = _build_runner(compacted, engine)
        self.hidden_sizes_ = compacted.hidden_sizes
        if self._has_readout and self.compaction_.compact_sizes[-1] != weights.top_size:
            hidden, _ = compact_weights(weights, "hidden")
            self._hidden_runner = _build_runner(hidden, engine)[0]
        else:
            self._hidden_runner = self._runner
        self._net_kind = None
        self._validator = types.SimpleNamespace(input_size_=weights.input_size)
        if net is not None:
            self._adopt(net)

    def _adopt(self, net):
        """Take over what ``predict`` needs from the fitted skorch ``net``."""
        self.n_features_in_ = getattr(net, "n_features_in_", None)
        self._validator.input_size_ = getattr(net, "input_size_", self.input_size_)
        if is_classifier(net):
            self._net_kind = "classifier"
            self.classes_ = np.asarray(net.classes_).copy() if hasattr(net, "classes_") else None
            self._label_predict = hasattr(net, "label_encoder_")
            nonlinearity = getattr(net, "_get_predict_nonlinearity", None)
            self._proba = nonlinearity() if nonlinearity else _softmax
        elif is_regressor(net) or hasattr(net, "predict"):
            self._net_kind = "regressor"
            self._squeeze_target = (getattr(net, "_y_ndim", None)
                                    == (2 if self._sequence_output else 1))

    # -- the core --------------------------------------------------------------------------
    def _check_X(self, X):
        return _SequenceNetMixin._check_X(self._validator, X, reset=False)

    def _encode(self, x, need_sequence, hidden=False):
        runner = self._hidden_runner if hidden else self._runner
        return runner.encode(x, need_sequence)

    def _outputs(self, x):
        """Read-out (or top-layer sequence without one) of validated batch-first ``x``."""
        need_sequence = self._sequence_output or not self._has_readout
        outputs, last = self._encode(x, need_sequence)
        if not self._has_readout:
            return outputs
        weight, bias = self._readout
        return (outputs if self._sequence_output else last) @ weight.T + bias

    def _in_chunks(self, X, compute):
        if len(X) <= self.batch_size:
            return compute(X)
        return np.concatenate([compute(X[start:start + self.batch_size])
                               for start in range(0, len(X), self.batch_size)])

    # -- the estimator interface -----------------------------------------------------------
    def forward(self, x):
        """What the source module's ``forward`` returns, computed by the fast form.

        Parameters
        ----------
        x : torch.Tensor or array-like
            In the source module's layout: ``(batch, steps, features)``, or
            ``(steps, batch, features)`` for a torch recurrent module with ``batch_first=False``.

        Returns
        -------
        out : torch.Tensor
            The read-out of a :class:`~latticeprune.nets.RecurrentNet`; for a bare recurrent
            module, the top layer's hidden states at every step (the first element of the
            tuple torch returns).
        """
        if isinstance(x, torch.Tensor) and x.dtype == torch.float32 and not x.is_cuda \
                and x.dim() == 3 and x.shape[2] == self.input_size_ \
                and self._runner.runs_dense(x.shape[0 if self._batch_first else 1]):
            return self._forward_tensor(x)
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.input_size_:
            raise ValueError(f"forward expects a 3-D input with {self.input_size_} features per "
                             f"step; got shape {x.shape}.")
        if not self._batch_first:
            x = x.transpose(1, 0, 2)
        out = self._outputs(np.ascontiguousarray(x))
        if not self._batch_first and out.ndim == 3:
            out = out.transpose(1, 0, 2)
        return torch.from_numpy(out)  # strided like torch's own outputs; no copy

    def _forward_tensor(self, x):
        """:meth:`forward` in torch end to end, where every layer runs on the dense kernel:
        where sparsity does not pay, the fast form costs what the dense module costs."""
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self._forward_tensor(x)
        x = x if self._batch_first else x.transpose(0, 1)
        outputs = self._runner.encode_tensor(x)
        if self._has_readout:
            weight, bias = self._readout_tensors
            outputs = (outputs @ weight.T + bias if self._sequence_output
                       else torch.addmm(bias, outputs[:, -1], weight.T))
        if not self._batch_first and outputs.ndim == 3:
            outputs = outputs.transpose(0, 1)
        return outputs

    def decision_function(self, X):
        """Raw outputs (logits for a classifier), as the estimator's ``decision_function``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features)
            Or ``(n_samples, n_steps * n_features)``, as the estimator accepts it.

        Returns
        -------
        out : ndarray
        """
        X = self._check_X(X)
        out = self._in_chunks(X, self._outputs)
        return _SequenceNetMixin._check_finite_output(self, out, "outputs")

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_`` (classifiers only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features)
            Or ``(n_samples, n_steps * n_features)``, as the estimator accepts it.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        if self._net_kind != "classifier":
            raise AttributeError("predict_proba is only available for a fast form built from a "
                                 "fitted classifier.")
        logits = self.decision_function(X)
        proba = self._proba(torch.from_numpy(logits)).numpy()
        return _SequenceNetMixin._check_finite_output(self, proba, "probabilities")

    def predict(self, X):
        """Predictions equal to the source estimator's ``predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features)
            Or ``(n_samples, n_steps * n_features)``, as the estimator accepts it.

        Returns
        -------
        y : ndarray
            Class labels for a classifier; targets shaped like the ``y`` seen in ``fit`` for a
            regressor.
        """
        if self._net_kind is None:
            raise AttributeError("predict is only available for a fast form built from a fitted "
                                 "estimator; use forward for a torch module.")
        if self._net_kind == "classifier":
            indices = self.predict_proba(X).argmax(axis=1)
            return self.classes_[indices] if self._label_predict else indices
        y = self.decision_function(X)
        return y[..., 0] if self._squeeze_target else y

    def transform(self, X):
        """Final hidden state of the top recurrent layer, as the estimator's ``transform``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_steps, n_features)
            Or ``(n_samples, n_steps * n_features)``, as the estimator accepts it.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_size)
        """
        X = self._check_X(X)
        hidden = self._in_chunks(X, lambda x: self._encode(x, False, hidden=True)[1])
        return _SequenceNetMixin._check_finite_output(self, hidden, "hidden states")

    def __repr__(self):
        return (f"InferenceModel(engine={self.engine_!r}, layers={self.layer_engines_}, "
                f"hidden_sizes={self.hidden_sizes_}, weight_nbytes={self.weight_nbytes_})")


def _softmax(logits):
    return torch.softmax(logits, dim=-1)


def _recurrent_nbytes(weights):
    """Dense bytes of the recurrent layers' weights and biases (what the engines hold)."""
    return int(sum(a.nbytes for layer in weights.layers
                   for a in (*layer.matrices().values(), layer.bias_ih, layer.bias_hh)))


def to_inference(obj, *, engine="auto", batch_size=256):
    """Turn a pruned recurrent net into its fast inference form.

    Parameters
    ----------
    obj : fitted sparsifier, fitted skorch net or torch module
        A :class:`~latticeprune.LatticePruner` / :class:`~latticeprune.ModuliRegularizer`
        (nested or not), an :class:`~latticeprune.RNNClassifier` / ``RNNRegressor``, or a
        :class:`~latticeprune.nets.RecurrentNet`, ``HierarchicalRNN``, ``nn.RNN``,
        ``nn.LSTM`` or ``nn.GRU`` (pruned with ``torch.nn.utils.prune`` or holding zeros).
    engine : {"auto", "sparse", "dense"}, default="auto"
        ``"auto"``: per layer, a CSR step loop where the recurrent matrix has at least
        :data:`~latticeprune.inference.sparse.MIN_SPARSITY` zeros and the layer, or the
        batch it runs, is large enough for the loop to pay
        (:func:`~latticeprune.inference.sparse.sparse_batches`, fitted to
        ``benchmarks/results/inference_speed.txt``; chosen per call by batch size), torch's
        fused dense kernel otherwise.
        ``"sparse"``: CSR step loop for every layer. ``"dense"``: the compacted net on
        torch's dense kernels.
    batch_size : int, default=256
        Samples per chunk in ``predict`` and ``transform``.

    Returns
    -------
    model : InferenceModel
        With ``forward`` and ``transform``, and ``predict`` / ``predict_proba`` /
        ``decision_function`` when built from a fitted estimator. The weights are copied:
        later changes to ``obj`` do not reach it.

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
    >>> bool(np.array_equal(fast.predict(X), pruner.predict(X)))
    True
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not valid; valid choices are {list(ENGINES)}.")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    net, module = _net_of(obj)
    return InferenceModel(read_weights(module), engine, net=net, batch_size=int(batch_size))
