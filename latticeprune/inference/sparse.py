"""Sparse execution: a step loop whose multiply-adds are proportional to the non-zero weights.

:class:`SparseRecurrentNet` runs a (compacted) recurrent net with every weight matrix held as
a ``scipy.sparse`` CSR array when its sparsity reaches ``min_sparsity``, and as a dense array
otherwise. Sequences are time-major, ``(steps, units, batch)``, and the state ``(units,
batch)``, so that ``W @ h`` is a CSR matrix-vector (batch 1) or matrix-matrix product whose
inner loop runs over the non-zeros of a row (and, for a batch, along contiguous memory).

Work per sequence:

* the bottom-up input projection of a stacked layer is one product over many steps at once
  (``W_ih @ X``; a dense GEMM through torch, CSR from :data:`MIN_SPARSITY` on), biases
  folded in, in chunks of :data:`PROJECTION_CHUNK` entries so that it stays in cache;
* each step does one product with ``W_hh`` (and ``W_td`` and, in a top-down net, ``W_ih`` of
  the layers above the first) and a handful of in-place numpy element-wise operations. The
  logistic gates use ``sigmoid(a) = (1 + tanh(a / 2)) / 2``, with the ``1/2`` folded into the
  gate rows of the weights, so one ``tanh`` call covers every gate of an LSTM layer.

How the engine was picked (``python benchmarks/inference_speed.py``, sections 3 and 4 of
``benchmarks/results/inference_speed.txt``): a step loop of numpy element-wise operations
beat the same loop written with torch ops over torch's sparse CSR tensors, plain or compiled
with TorchScript, at batch 1 (per-call overhead); for the product itself MKL's sparse BLAS
(reached through ``torch.sparse`` on scipy's buffers, no copy) beat scipy's kernels for
batches and large matrix-vector products, scipy's kernel small matrix-vector products. So
weights are stored once as scipy CSR and each product picks its kernel (``_Product``).
:data:`MIN_SPARSITY` is the crossover below which a dense product is faster and
:func:`sparse_batches` the per-layer, per-batch-size choice of ``to_inference(engine="auto")``
(section 5 of the benchmark checks it on small nets, batch 1 to 256).
"""

import warnings

import numpy as np
import scipy.sparse
import torch

try:  # scipy's compiled CSR kernels, called directly in the step loop (see _Product)
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover
    _sparsetools = None

__all__ = ["SparseRecurrentNet", "MIN_SPARSITY", "prefers_sparse", "sparse_batches",
           "runs_sparse", "as_operator", "sparsity_of", "operator_nbytes"]

#: Sparsity from which a matrix is held as CSR (below it, dense is faster). Measured with
#: ``python benchmarks/inference_speed.py`` (sections 1 and 2 of
#: ``benchmarks/results/inference_speed.txt``, hidden 1024): the CSR step loop overtakes
#: torch's fused dense layer between sparsity 0.7 and 0.8 at batch 1 (Elman, LSTM, GRU) and
#: at batch 256 between 0.7 and 0.8 (Elman) or 0.8 and 0.85 (LSTM); 0.9 is the first measured
#: level with a clear margin everywhere (1.3x to 2.3x faster).
MIN_SPARSITY = 0.9

#: Cost model of one recurrent step per sequence, in units of one dense weight of torch's
#: fused kernel at the same batch size (single thread), fitted to the crossovers measured with
#: ``python benchmarks/inference_speed.py`` (hidden 64 to 1024, batch 1 to 256):
#:
#: * one CSR non-zero costs ``NONZERO_COST`` dense weights (batch 1; 3 to 6 measured at hidden
#:   1024, more for small, cache-resident matrices) or ``BATCH_NONZERO_COST`` for a batch;
#: * the loop's fixed per-step cost, its Python and numpy calls, is worth
#:   ``STEP_OVERHEAD[cell]`` dense weights at batch 1 (an Elman step is two calls; an LSTM or
#:   GRU step about ten) and ``BATCH_STEP_OVERHEAD[cell]`` for a batch, which shares it (more
#:   dense weights, since a dense weight costs less in a batched product: an LSTM-128 at
#:   sparsity 0.98 still loses at batch 8 and wins from batch 32);
#: * for a batch, each gate row of the step's element-wise numpy passes costs
#:   ``BATCH_ROW_COST`` dense weights per sequence, work that torch's fused kernel does in one
#:   pass: it is what keeps small LSTMs (hidden 64-128) dense even for large batches.
NONZERO_COST = 8.0
BATCH_NONZERO_COST = 6.0
STEP_OVERHEAD = {"rnn_tanh": 5_000, "rnn_relu": 5_000, "lstm": 100_000, "gru": 100_000}
BATCH_STEP_OVERHEAD = {"rnn_tanh": 20_000, "rnn_relu": 20_000, "lstm": 300_000, "gru": 300_000}
BATCH_ROW_COST = 70.0
#: Smallest batch that may run the CSR loop at all: below it MKL's sparse-times-dense products
#: with a few columns lose to torch's small dense products whatever the sparsity (measured:
#: LSTM-256 at sparsity 0.95 is 0.65x at batch 8 and 1.53x at batch 16; LSTM-1024 at 0.9 is
#: 0.83x at batch 2 and 1.53x at batch 8; Elman-256 at 0.95 is 0.89x at batch 2 and 1.18x at 4).
BATCH_FLOOR = {"rnn_tanh": 4, "rnn_relu": 4, "lstm": 16, "gru": 16}
#: The CSR loop is chosen only if the model predicts it at least this much faster.
SAFETY_FACTOR = 1.1


def _stepped_counts(layer, min_sparsity):
    """Dense weights and non-zeros of the step's matrices, or None below ``min_sparsity``."""
    stepped = [layer.weight_hh] + ([layer.weight_td] if layer.weight_td is not None else [])
    weights = sum(w.size for w in stepped)
    nonzeros = sum(np.count_nonzero(w) for w in stepped)
    if not weights or not reaches(weights - nonzeros, weights, min_sparsity):
        return None
    return weights, nonzeros


def sparse_batches(layer, min_sparsity=MIN_SPARSITY):
    """Where the CSR step loop should run ``layer``: ``(at_batch_1, from_batch)``.

    ``at_batch_1`` says whether it pays for a single sequence; ``from_batch`` is the smallest
    batch size (at least :data:`BATCH_FLOOR`) from which it pays for batches (None: never).
    Both need the step's matrices (recurrent and top-down) at least ``min_sparsity`` sparse and
    the model's cost (see :data:`NONZERO_COST`) :data:`SAFETY_FACTOR` times below the dense
    weight count:
    ``STEP_OVERHEAD + NONZERO_COST * non-zeros`` at batch 1, and ``BATCH_STEP_OVERHEAD / batch
    + BATCH_NONZERO_COST * non-zeros + BATCH_ROW_COST * gate rows`` per sequence for a batch.
    """
    counts = _stepped_counts(layer, min_sparsity)
    if counts is None:
        return False, None
    weights, nonzeros = counts
    at_one = (STEP_OVERHEAD[layer.cell] + NONZERO_COST * nonzeros) * SAFETY_FACTOR <= weights
    margin = (weights / SAFETY_FACTOR - BATCH_NONZERO_COST * nonzeros
              - BATCH_ROW_COST * layer.n_gates * layer.hidden_size)
    from_batch = None if margin <= 0 else max(
        BATCH_FLOOR[layer.cell], int(np.ceil(BATCH_STEP_OVERHEAD[layer.cell] / margin - 1e-9)))
    return bool(at_one), from_batch


def prefers_sparse(layer, min_sparsity=MIN_SPARSITY, batch=1):
    """Whether the CSR step loop, not torch's dense kernel, should run ``layer`` (LayerWeights)
    for ``batch`` sequences at a time (see :func:`sparse_batches`).

    Small layers stay dense, since there the loop's fixed per-step cost and its element-wise
    passes outweigh the product; for a batch the fixed cost is shared.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.inference.compact import LayerWeights
    >>> def elman(hidden, sparsity):
    ...     rng = np.random.default_rng(0)
    ...     w = (rng.random((hidden, hidden)) >= sparsity).astype(np.float32)
    ...     return LayerWeights("rnn_tanh", w[:, :4], w, None, w[:, 0], w[:, 0],
    ...                         np.arange(hidden))
    >>> prefers_sparse(elman(1024, 0.95)), prefers_sparse(elman(1024, 0.5))
    (True, False)
    >>> prefers_sparse(elman(64, 0.99))  # too small: the loop's overhead dominates
    False
    >>> prefers_sparse(elman(256, 0.95), batch=256)
    True
    """
    return runs_sparse(sparse_batches(layer, min_sparsity), batch)


def runs_sparse(plan, batch):
    """Whether a layer with plan ``(at_batch_1, from_batch)`` (:func:`sparse_batches`) runs the
    CSR loop for ``batch`` sequences."""
    at_one, from_batch = plan
    return at_one if batch == 1 else from_batch is not None and batch >= from_batch


def reaches(zeros, size, level):
    """Whether ``zeros`` of ``size`` entries reach the sparsity ``level``.

    Pruning "0.9" of n entries zeroes ``round(0.9 n)`` of them, which may be a fraction of an
    entry short of ``0.9 n``: half an entry of slack counts it as 0.9 sparse.

    >>> reaches(58982, 65536, 0.9), reaches(58981, 65536, 0.9)
    (True, False)
    """
    return zeros + 0.5 >= level * size


def sparsity_of(weight):
    """Fraction of zero entries (1.0 for an empty matrix)."""
    return 1.0 - np.count_nonzero(weight) / weight.size if weight.size else 1.0


def as_operator(weight, min_sparsity=MIN_SPARSITY):
    """``weight`` as CSR if at least ``min_sparsity`` of it is zero, else as a dense array."""
    if reaches(weight.size - np.count_nonzero(weight), weight.size, min_sparsity):
        return scipy.sparse.csr_array(weight)
    return np.ascontiguousarray(weight)


def operator_nbytes(operator):
    """Bytes held by a dense array or a CSR array (values, column indices, row pointers)."""
    if scipy.sparse.issparse(operator):
        return int(operator.data.nbytes + operator.indices.nbytes + operator.indptr.nbytes)
    return int(operator.nbytes)


def _gate_layout(layer):
    """Row permutation and per-row scale that put the logistic gates first, halved.

    LSTM rows go from ``i, f, g, o`` to ``i, f, o, g`` with ``i, f, o`` scaled by 1/2; GRU rows
    keep ``r, z, n`` with ``r, z`` scaled by 1/2; Elman rows are untouched.
    """
    n = layer.hidden_size
    rows = np.arange(layer.n_gates * n)
    scale = np.ones(layer.n_gates * n, dtype=np.float32)
    if layer.cell == "lstm":
        rows = np.concatenate([rows[:2 * n], rows[3 * n:], rows[2 * n:3 * n]])
        scale[:3 * n] = 0.5
    elif layer.cell == "gru":
        scale[:2 * n] = 0.5
    return rows, scale


#: Gate inputs projected ahead of the step loop at a time (float32 entries; 16 MiB): all steps
#: of a streaming sequence in one product, a few steps of a large batch so that they are still
#: in cache when the loop reads them.
PROJECTION_CHUNK = 1 << 22


def _step_chunks(steps, entries_per_step):
    """``(start, stop)`` ranges of steps whose gate inputs fit in :data:`PROJECTION_CHUNK`."""
    size = max(1, PROJECTION_CHUNK // max(1, entries_per_step))
    return [(start, min(start + size, steps)) for start in range(0, steps, size)]


#: Non-zeros from which a matrix-vector product (batch 1) goes to MKL through torch rather than
#: to scipy's kernel, which has the lower call overhead (section 4 of the benchmark).
MKL_MIN_NONZEROS = 20_000


def _torch_csr(matrix):
    """A torch CSR tensor on the buffers of a scipy CSR array (no copy; MKL does its products)."""
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr),
                                       torch.from_numpy(matrix.indices),
                                       torch.from_numpy(matrix.data), size=matrix.shape)


class _Product:
    """``out += W @ x`` for a weight held as CSR or dense; ``x`` and ``out`` are ``(rows, batch)``.

    The weight is stored once, as a scipy CSR array (or dense below ``min_sparsity``). Products
    go to the fastest kernel measured (section 4 of ``benchmarks/results/inference_speed.txt``):
    for a batch, and for a matrix-vector product with at least :data:`MKL_MIN_NONZEROS`
    non-zeros, MKL's sparse BLAS through ``torch.addmm`` / ``torch.addmv`` on a torch view of
    the same buffers (``torch.sparse``); for a small matrix-vector product, scipy's compiled
    ``csr_matvec``, called directly because the Python dispatch of ``csr_array @ x`` costs as
    much as the product. Both add into ``out`` in place.
    """

    def __init__(self, weight, min_sparsity):
        self.matrix = as_operator(weight, min_sparsity)
        self.is_sparse = scipy.sparse.issparse(self.matrix)
        self.shape = self.matrix.shape
        self.tensor = None
        if self.is_sparse and self.matrix.indices.dtype == self.matrix.indptr.dtype:
            self.tensor = _torch_csr(self.matrix)
        self.mkl_vector = self.tensor is not None and self.matrix.nnz >= MKL_MIN_NONZEROS

    def uses_torch(self, batch):
        """Whether products with ``batch`` columns go to MKL through torch (see the class)."""
        return self.tensor is not None and (batch > 1 or self.mkl_vector)

    def accumulate(self, x, out, x_view=None, out_view=None):
        """Add ``W @ x`` to ``out`` (both C-contiguous float32 ``(rows, batch)`` arrays).

        ``x_view`` and ``out_view``, torch tensors on the same memory, spare the step loop the
        cost of making them at every step when :meth:`uses_torch`.
        """
        if not (self.is_sparse and x.flags.c_contiguous and out.flags.c_contiguous):
            out += self.matrix @ x  # dense weight (or a strided array: never in the loop)
        elif x.shape[1] > 1 and self.tensor is not None:
            result = torch.from_numpy(out) if out_view is None else out_view
            torch.addmm(result, self.tensor,
                        torch.from_numpy(x) if x_view is None else x_view, out=result)
        elif x.shape[1] == 1 and self.mkl_vector:
            result = torch.from_numpy(out.reshape(-1)) if out_view is None else out_view
            vector = torch.from_numpy(x.reshape(-1)) if x_view is None else x_view
            torch.addmv(result, self.tensor, vector, out=result)
        elif _sparsetools is not None and x.shape[1] == 1:
            _sparsetools.csr_matvec(self.shape[0], self.shape[1], self.matrix.indptr,
                                    self.matrix.indices, self.matrix.data, x.reshape(-1),
                                    out.reshape(-1))
        elif _sparsetools is not None:
            _sparsetools.csr_matvecs(self.shape[0], self.shape[1], x.shape[1],
                                     self.matrix.indptr, self.matrix.indices, self.matrix.data,
                                     x.reshape(-1), out.reshape(-1))
        else:  # pragma: no cover - scipy ships its kernels
            out += self.matrix @ x

    def kernel(self, batch):
        """``f(out_view, x_view)``: ``out += W @ x`` on torch views, when :meth:`uses_torch`."""
        tensor = self.tensor
        if batch == 1:
            return lambda out, x: torch.addmv(out, tensor, x, out=out)
        return lambda out, x: torch.addmm(out, tensor, x, out=out)

    def view(self, array):
        """The torch tensor :meth:`accumulate` wants for ``array`` ``(rows, batch)``."""
        return torch.from_numpy(array.reshape(-1) if array.shape[1] == 1 else array)

    @staticmethod
    def views(stack):
        """:meth:`view` of each ``(rows, batch)`` slice of ``stack`` ``(steps, rows, batch)``, in
        one call (``unbind``) rather than one per step."""
        if stack.shape[2] == 1:
            stack = stack.reshape(stack.shape[0], -1)
        return torch.from_numpy(stack).unbind(0)

    def nbytes(self):
        return operator_nbytes(self.matrix)


def _relu(a, out):
    return np.maximum(a, 0, out=out)


class _SparseLayer:
    """One layer's operators in the engine's gate layout, and its step."""

    def __init__(self, layer, min_sparsity, input_min_sparsity):
        self.cell = layer.cell
        self.hidden_size = n = layer.hidden_size
        rows, scale = _gate_layout(layer)
        prepare = lambda w, threshold: _Product(  # noqa: E731
            (w[rows] * scale[:, None]).astype(np.float32), threshold)
        self.w_ih = prepare(layer.weight_ih, input_min_sparsity)
        self.w_hh = prepare(layer.weight_hh, min_sparsity)
        self.w_td = None if layer.weight_td is None else prepare(layer.weight_td, min_sparsity)
        bias_hh = layer.bias_hh[rows] * scale
        # What W_hh h starts from: b_hn for GRU, whose candidate is tanh(.. + r * (W_hn h + b_hn)).
        self.recurrent_start = np.zeros((len(rows), 1), dtype=np.float32)
        if layer.cell == "gru":
            self.recurrent_start[2 * n:, 0] = bias_hh[2 * n:]
            bias_hh[2 * n:] = 0
        self.bias = ((layer.bias_ih[rows] * scale + bias_hh)[:, None]).astype(np.float32)

    def products(self):
        return [op for op in (self.w_ih, self.w_hh, self.w_td) if op is not None]

    def nbytes(self):
        return sum(op.nbytes() for op in self.products()) + self.bias.nbytes + (
            self.recurrent_start.nbytes if self.cell == "gru" else 0)

    def initial_state(self, batch):
        """Zero ``h`` (and LSTM ``c``), plus the step's scratch buffers, reused every step."""
        h = np.zeros((self.hidden_size, batch), dtype=np.float32)
        if self.cell == "lstm":
            return (h, np.zeros_like(h), np.empty_like(h))
        if self.cell == "gru":  # the recurrent gates' buffer, and its torch view
            gates = np.empty((len(self.bias), batch), dtype=np.float32)
            return (h, gates, self.w_hh.view(gates))
        return (h,)

    def project_inputs(self, x):
        """Bottom-up gate inputs of all steps with biases, ``(steps, gates, batch)``.

        ``x`` is time-major, ``(steps, input units, batch)``, C-contiguous float32.
        """
        steps, _, batch = x.shape
        if self.w_ih.is_sparse:
            gates = np.empty((steps, len(self.bias), batch), dtype=np.float32)
            gates[:] = self.bias[None]
            for t in range(steps):
                self.w_ih.accumulate(x[t], gates[t])
            return gates
        weight = torch.from_numpy(self.w_ih.matrix)
        if batch == 1:  # one GEMM; torch.matmul would run one small product per step
            gates = np.empty((steps, len(self.bias), 1), dtype=np.float32)
            torch.matmul(torch.from_numpy(x.reshape(steps, -1)), weight.T,
                         out=torch.from_numpy(gates.reshape(steps, -1)))
        else:
            gates = torch.matmul(weight, torch.from_numpy(x)).numpy()
        gates += self.bias[None]
        return gates

    def project_step(self, below):
        """Bottom-up gate inputs of one step from ``below`` ``(input units, batch)``."""
        gates = np.repeat(self.bias, below.shape[1], axis=1)
        self.w_ih.accumulate(below, gates)
        return gates

    def step(self, gate_input, state, out, views=(None, None)):
        """Advance one step; the new ``h`` goes to ``out`` ``(units, batch)``, not aliasing ``h``.

        ``gate_input`` ``(gates, batch)``, the bottom-up (and top-down) gate inputs of this step,
        is used as scratch space. Nothing is allocated: at batch 256 a fresh array per step
        costs page faults comparable to the product. ``views`` are torch views of ``h`` and
        ``gate_input`` when the recurrent product goes through torch (or None).
        """
        n = self.hidden_size
        h = state[0]
        h_view, gate_view = views
        if self.cell == "gru":
            gates = state[1]
            np.copyto(gates, self.recurrent_start)
            self.w_hh.accumulate(h, gates, h_view, state[2] if h_view is not None else None)
            rz = gates[:2 * n]
            rz += gate_input[:2 * n]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            candidate = gates[2 * n:]
            candidate *= rz[:n]
            candidate += gate_input[2 * n:]
            np.tanh(candidate, out=candidate)
            np.subtract(h, candidate, out=out)  # h' = n + z (h - n)
            out *= rz[n:]
            out += candidate
            return (out,) + state[1:]
        gates = gate_input
        self.w_hh.accumulate(h, gates, h_view, gate_view)
        if self.cell == "rnn_tanh":
            np.tanh(gates, out=out)
            return (out,)
        if self.cell == "rnn_relu":
            np.maximum(gates, 0, out=out)
            return (out,)
        np.tanh(gates, out=gates)  # LSTM, rows i, f, o (halved), g
        logistic = gates[:3 * n]
        logistic *= 0.5
        logistic += 0.5
        c, scratch = state[1], state[2]
        c *= gates[n:2 * n]
        np.multiply(gates[:n], gates[3 * n:], out=scratch)
        c += scratch
        np.tanh(c, out=out)
        out *= gates[2 * n:3 * n]
        return (out, c, scratch)


class SparseRecurrentNet:
    """Run a recurrent net's layers with CSR (or, below ``min_sparsity``, dense) weight matrices.

    Parameters
    ----------
    weights : RecurrentWeights
        From :func:`~latticeprune.inference.compact.read_weights` or
        :func:`~latticeprune.inference.compact.compact_weights`; the read-out is not used.
    min_sparsity : float, default=MIN_SPARSITY
        A matrix used at every step with at least this fraction of zeros is held as CSR
        (``0.0``: all of them). The input projection of a whole sequence (first layer, and
        every layer of a stacked net) is CSR from ``max(min_sparsity, MIN_SPARSITY)`` on.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from latticeprune.inference.compact import read_weights
    >>> rnn = torch.nn.RNN(3, 16, batch_first=True)
    >>> engine = SparseRecurrentNet(read_weights(rnn), min_sparsity=0.0)
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    >>> outputs, last = engine.encode(x)
    >>> bool(np.allclose(outputs, rnn(torch.from_numpy(x))[0].detach().numpy(), atol=1e-5))
    True
    """

    def __init__(self, weights, min_sparsity=MIN_SPARSITY):
        self.top_down = weights.top_down
        self.min_sparsity = min_sparsity
        # A stacked layer's (and the first layer's) input projection is one product over the
        # whole sequence, where dense GEMM is efficient: CSR only from MIN_SPARSITY on.
        self.layers = [
            _SparseLayer(layer, min_sparsity,
                         min_sparsity if self.top_down and index > 0
                         else max(min_sparsity, MIN_SPARSITY))
            for index, layer in enumerate(weights.layers)]

    def runs_dense(self, batch):
        """False: this engine never hands a batch to torch's fused kernels (see
        :meth:`~latticeprune.inference.fast.InferenceModel.forward`)."""
        return False

    def nbytes(self):
        """Bytes of the weights and biases as held (CSR or dense)."""
        return int(sum(layer.nbytes() for layer in self.layers))

    def formats(self):
        """Per layer, ``{"ih": "csr" | "dense", "hh": ..., "td": ...}``."""
        name = lambda op: "csr" if op.is_sparse else "dense"  # noqa: E731
        return [{key: name(op) for key, op in
                 [("ih", layer.w_ih), ("hh", layer.w_hh), ("td", layer.w_td)] if op is not None}
                for layer in self.layers]

    def encode(self, x, need_sequence=True):
        """Top-layer hidden states of batch-first float32 ``x`` ``(batch, steps, features)``.

        Returns
        -------
        outputs : ndarray of shape (batch, steps, hidden) or None
            None when ``need_sequence`` is False.
        last : ndarray of shape (batch, hidden)
        """
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(1, 2, 0))
        outputs, last = self.encode_time_major(x, "batch" if need_sequence else None)
        return outputs, np.ascontiguousarray(last.T)

    def encode_time_major(self, x, sequence_layout="time"):
        """:meth:`encode` on time-major ``x`` ``(steps, features, batch)``.

        Parameters
        ----------
        x : ndarray of shape (steps, features, batch)
            C-contiguous float32.
        sequence_layout : {"time", "batch"} or None, default="time"
            Return the top layer's states time-major ``(steps, hidden, batch)``, batch-first
            ``(batch, steps, hidden)`` (copied step by step while they are in cache), or not
            at all.

        Returns
        -------
        sequence : ndarray or None
        last : ndarray of shape (hidden, batch)
        """
        if self.top_down:
            return self._step_all(x, sequence_layout)
        below = x
        for index, layer in enumerate(self.layers):
            layout = sequence_layout if index == len(self.layers) - 1 else "time"
            below, last = self._run_layer(layer, below, layout)
        return below, last

    @staticmethod
    def _sequence_buffer(layout, steps, units, batch):
        shape = {"time": (steps, units, batch), "batch": (batch, steps, units)}.get(layout)
        return None if shape is None else np.empty(shape, dtype=np.float32)

    @staticmethod
    def _step_output(sequence, layout, t, spare):
        """Where step ``t`` writes its state: a slice of a time-major sequence, or one of two
        ``spare`` buffers in turn (the other still holds the previous state)."""
        if layout == "time":
            return sequence[t]
        return spare[t % 2]

    @staticmethod
    def _spare(units, batch):
        return [np.empty((units, batch), dtype=np.float32) for _ in range(2)]

    def _run_layer(self, layer, x, layout):
        """One stacked layer over the sequence: its states in ``layout`` (or None), last state."""
        steps, _, batch = x.shape
        n = layer.hidden_size
        state = layer.initial_state(batch)
        # At batch 1 the batch-first (1, steps, n) and time-major (steps, n, 1) layouts coincide:
        # the steps write there directly.
        store = "time" if layout == "batch" and batch == 1 else layout
        sequence = self._sequence_buffer(store, steps, n, batch)
        spare = self._spare(n, batch)
        # Torch views of every buffer the recurrent product reads or writes, made once per call
        # rather than once per step (their cost is a tenth of a sparse product at batch 1).
        product = layer.w_hh
        torch_views = product.uses_torch(batch)
        if torch_views:
            spare_views = [product.view(buffer) for buffer in spare]
            sequence_views = None if store != "time" else product.views(sequence)
            h_view = product.view(state[0])
        # Elman through MKL: the lean loop, one product and one numpy call per step.
        elman = layer.cell in ("rnn_tanh", "rnn_relu") and torch_views
        if elman:
            accumulate = product.kernel(batch)
            activation = np.tanh if layer.cell == "rnn_tanh" else _relu
        for start, stop in _step_chunks(steps, layer.bias.shape[0] * batch):
            gate_inputs = layer.project_inputs(x[start:stop])
            gate_views = product.views(gate_inputs) if torch_views else None
            if elman:
                for t in range(start, stop):
                    out = self._step_output(sequence, store, t, spare)
                    accumulate(gate_views[t - start], h_view)
                    activation(gate_inputs[t - start], out=out)
                    h_view = sequence_views[t] if store == "time" else spare_views[t % 2]
                    if store == "batch":
                        sequence[:, t] = out.T
                state = (out,)
                continue
            for t in range(start, stop):
                out = self._step_output(sequence, store, t, spare)
                if gate_views is None:
                    state = layer.step(gate_inputs[t - start], state, out)
                else:
                    state = layer.step(gate_inputs[t - start], state, out,
                                       (h_view, gate_views[t - start]))
                    h_view = sequence_views[t] if store == "time" else spare_views[t % 2]
                if store == "batch":
                    sequence[:, t] = state[0].T
        if store != layout:
            sequence = sequence.reshape(1, steps, n)
        return sequence, state[0]

    def _step_all(self, x, layout):
        """All layers jointly, step by step (top-down feedback from ``l + 1`` at ``t - 1``)."""
        steps, _, batch = x.shape
        chunks = iter(_step_chunks(steps, self.layers[0].bias.shape[0] * batch))
        states = [layer.initial_state(batch) for layer in self.layers]
        spares = [self._spare(layer.hidden_size, batch) for layer in self.layers]
        top = self.layers[-1]
        sequence = self._sequence_buffer(layout, steps, top.hidden_size, batch)
        start = stop = 0
        for t in range(steps):
            if t == stop:
                start, stop = next(chunks)
                first = self.layers[0].project_inputs(x[start:stop])
            previous = [state[0] for state in states]
            below = None
            for index, layer in enumerate(self.layers):
                gate_input = first[t - start] if index == 0 else layer.project_step(below)
                if layer.w_td is not None:
                    layer.w_td.accumulate(previous[index + 1], gate_input)
                out = self._step_output(sequence if layer is top else None,
                                        layout if layer is top else None, t, spares[index])
                states[index] = layer.step(gate_input, states[index], out)
                below = states[index][0]
            if layout == "batch":
                sequence[:, t] = below.T
        return sequence, states[-1][0]
