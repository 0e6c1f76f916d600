"""Sparse execution: a step loop whose multiply-adds are proportional to the non-zero weights.

:class:`SparseRecurrentNet` runs a (compacted) recurrent net with every weight matrix held as
a torch sparse CSR tensor when its sparsity reaches ``min_sparsity``, and as a dense tensor
otherwise; every product ``out += W @ x`` is ``Tensor.addmv_`` / ``Tensor.addmm_`` on torch views
of numpy buffers (MKL's sparse BLAS for CSR). Sequences are time-major, ``(steps, units,
batch)``, and the state ``(units, batch)``, so that ``W @ h`` is a matrix-vector (batch 1) or
matrix-matrix product whose inner loop runs over the non-zeros of a row.

Work per sequence: the bottom-up input projection of a stacked layer is one product over
many steps at once (``W_ih @ X``; dense GEMM, CSR from :data:`MIN_SPARSITY` on), biases folded
in, in chunks of :data:`PROJECTION_CHUNK` entries that stay in cache; each step does one
product with ``W_hh`` (and ``W_td`` and, in a top-down net, ``W_ih`` above the first layer) and
a few in-place numpy element-wise operations; at batch 1 and hidden 1024 the CSR product
takes most of a step, near the non-zeros per second that MKL's kernel sustains, so the step's
other work can win little (measured: see docs/experiments.md). Logistic gates use ``sigmoid(a) = (1 + tanh(a /
2)) / 2`` with the ``1/2`` folded into the weights, so one ``tanh`` covers an LSTM's gates.

The engine, :data:`MIN_SPARSITY` and :func:`sparse_batches` (the per-layer, per-batch-size
choice of ``to_inference(engine="auto")``) come from ``benchmarks/inference_speed.py``
(measured: see docs/experiments.md).
"""

import warnings

import numpy as np
import torch

from ..neuron_graph import pruned_count

__all__ = ["SparseRecurrentNet", "MIN_SPARSITY", "sparse_batches", "runs_sparse"]

#: Sparsity from which a matrix is held as CSR (below it, dense is faster; measured: see
#: docs/experiments.md). A matrix counts as that sparse when it has at least
#: ``pruned_count(MIN_SPARSITY, size)`` zeros, exactly what pruning by that amount leaves.
MIN_SPARSITY = 0.9

#: Cost model of one recurrent step per sequence, in dense weights of torch's fused kernel at
#: the same batch size (single thread): a CSR non-zero costs
#: ``NONZERO_COST`` (batch 1) or ``BATCH_NONZERO_COST``; the loop's fixed per-step Python and
#: numpy calls ``STEP_OVERHEAD[cell]`` or ``BATCH_STEP_OVERHEAD[cell]`` (shared by a batch);
#: for a batch, each gate row of the element-wise passes ``BATCH_ROW_COST`` per sequence.
#: Fitted to the crossovers of ``benchmarks/results/inference_speed.txt``: auto must pick the
#: engine measured faster wherever one is more than 20% faster (a test checks every such row;
#: the fit: see docs/experiments.md). Refit them when a rerun moves a crossover.
NONZERO_COST = 2.5
BATCH_NONZERO_COST = 6.0
STEP_OVERHEAD = {"rnn_tanh": 5_000, "rnn_relu": 5_000, "lstm": 220_000, "gru": 110_000}
BATCH_STEP_OVERHEAD = {"rnn_tanh": 20_000, "rnn_relu": 20_000, "lstm": 300_000, "gru": 300_000}
BATCH_ROW_COST = 70.0
#: Smallest batch that may run the CSR loop at all: below it sparse-times-dense products with a
#: few columns lose to torch's small dense products whatever the sparsity.
BATCH_FLOOR = {"rnn_tanh": 4, "rnn_relu": 4, "lstm": 16, "gru": 16}
#: The CSR loop is chosen only if the model predicts it at least this much faster.
SAFETY_FACTOR = 1.1


def _stepped_counts(layer, min_sparsity):
    """Dense weights and non-zeros of the step's matrices, or None below ``min_sparsity``."""
    stepped = [layer.weight_hh] + ([layer.weight_td] if layer.weight_td is not None else [])
    weights = sum(w.size for w in stepped)
    nonzeros = sum(np.count_nonzero(w) for w in stepped)
    if not weights or weights - nonzeros < pruned_count(min_sparsity, weights):
        return None
    return weights, nonzeros


#: Plans ``(sparse at batch 1, sparse from this batch size or None)`` (:func:`sparse_batches`)
#: of a layer run by one engine for every batch size.
ALWAYS_SPARSE, NEVER_SPARSE = (True, 2), (False, None)


def sparse_batches(layer, min_sparsity=MIN_SPARSITY):
    """Where the CSR step loop should run ``layer``: ``(at_batch_1, from_batch)``.

    ``at_batch_1`` says whether it pays for a single sequence; ``from_batch`` is the smallest
    batch size (at least :data:`BATCH_FLOOR`) from which it pays for batches (None: never),
    or 2 if it pays at batch 1 too: then the layer runs sparse for every batch size
    (:data:`ALWAYS_SPARSE`).
    Both need the step's matrices (recurrent and top-down) at least ``min_sparsity`` sparse and
    the model's cost (see :data:`NONZERO_COST`) :data:`SAFETY_FACTOR` times below the dense
    weight count: ``STEP_OVERHEAD + NONZERO_COST * non-zeros`` at batch 1, and
    ``BATCH_STEP_OVERHEAD / batch + BATCH_NONZERO_COST * non-zeros + BATCH_ROW_COST * gate
    rows`` per sequence for a batch.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.inference.compact import LayerWeights
    >>> def elman(hidden, sparsity):
    ...     w = (np.random.default_rng(0).random((hidden, hidden)) >= sparsity).astype(np.float32)
    ...     return LayerWeights("rnn_tanh", w[:, :4], w, None, w[:, 0], w[:, 0], np.arange(hidden))
    >>> sparse_batches(elman(1024, 0.95)), sparse_batches(elman(1024, 0.5))
    ((True, 2), (False, None))
    """
    counts = _stepped_counts(layer, min_sparsity)
    if counts is None:
        return NEVER_SPARSE
    weights, nonzeros = counts
    at_one = (STEP_OVERHEAD[layer.cell] + NONZERO_COST * nonzeros) * SAFETY_FACTOR <= weights
    margin = (weights / SAFETY_FACTOR - BATCH_NONZERO_COST * nonzeros
              - BATCH_ROW_COST * layer.n_gates * layer.hidden_size)
    from_batch = None if margin <= 0 else max(
        BATCH_FLOOR[layer.cell], int(np.ceil(BATCH_STEP_OVERHEAD[layer.cell] / margin - 1e-9)))
    if at_one and from_batch is not None:
        # Sparse at batch 1 and for large batches: sparse for every batch size. A dense copy
        # for the few small batch sizes in between would cost more memory than CSR saves.
        return ALWAYS_SPARSE
    return bool(at_one), from_batch


def runs_sparse(plan, batch):
    """Whether a layer with plan ``(at_batch_1, from_batch)`` (:func:`sparse_batches`) runs the
    CSR loop for ``batch`` sequences."""
    at_one, from_batch = plan
    return at_one if batch == 1 else from_batch is not None and batch >= from_batch


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


def _view(array):
    """Torch view of a C-contiguous ``(rows, batch)`` array (a vector for one column)."""
    return torch.from_numpy(array.reshape(-1) if array.shape[1] == 1 else array)


def _views(stack):
    """:func:`_view` of each ``(rows, batch)`` slice of ``stack`` ``(steps, rows, batch)``, in
    one call (``unbind``) rather than one per step."""
    if stack.shape[2] == 1:
        stack = stack.reshape(stack.shape[:2])
    return torch.from_numpy(stack).unbind(0)


class _Product:
    """``out += W @ x`` (``(rows, batch)`` float32 arrays or their :func:`_view`), ``W`` held as a
    torch CSR tensor from ``min_sparsity`` on (int32 indices: less memory and time than int64
    in MKL's sparse BLAS), dense below."""

    def __init__(self, weight, min_sparsity):
        zeros = weight.size - np.count_nonzero(weight)
        self.is_sparse = zeros >= pruned_count(min_sparsity, weight.size)
        self.tensor = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        self.nbytes = self.tensor.numel() * 4
        if self.is_sparse:
            with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                csr = self.tensor.to_sparse_csr()
                parts = (csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32),
                         csr.values())
                self.tensor = torch.sparse_csr_tensor(*parts, size=csr.shape)
            self.nbytes = sum(part.numel() * part.element_size() for part in parts)

    def kernel(self, batch):
        """``f(out_view, x_view)``: ``out += W @ x`` in place, for ``batch`` columns."""
        tensor = self.tensor
        if batch == 1:
            return lambda out, x: out.addmv_(tensor, x)
        return lambda out, x: out.addmm_(tensor, x)

    def accumulate(self, x, out):
        """Add ``W @ x`` to ``out`` (C-contiguous float32 arrays ``(rows, batch)``)."""
        self.kernel(x.shape[1])(_view(out), _view(np.ascontiguousarray(x)))


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

    def nbytes(self):
        products = [op for op in (self.w_ih, self.w_hh, self.w_td) if op is not None]
        return sum(op.nbytes for op in products) + self.bias.nbytes + (
            self.recurrent_start.nbytes if self.cell == "gru" else 0)

    def initial_state(self, batch):
        """Zero ``h`` (and LSTM ``c``), plus the step's scratch buffers, reused every step."""
        h = np.zeros((self.hidden_size, batch), dtype=np.float32)
        if self.cell == "lstm":
            return (h, np.zeros_like(h), np.empty_like(h))
        if self.cell == "gru":  # the recurrent gates' buffer, and its torch view
            gates = np.empty((len(self.bias), batch), dtype=np.float32)
            return (h, gates, _view(gates))
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
        weight = self.w_ih.tensor.numpy()
        if batch == 1:  # one GEMM; a broadcast matmul would run one small product per step
            gates = np.empty((steps, len(self.bias), 1), dtype=np.float32)
            np.matmul(x.reshape(steps, -1), weight.T, out=gates.reshape(steps, -1))
        else:  # numpy's BLAS: torch.matmul's broadcast over steps is 2-3x slower here
            gates = np.matmul(weight, x)
        gates += self.bias[None]
        return gates

    def step(self, gate_input, state, out, h_view, gate_view):
        """Advance one step; the new ``h`` goes to ``out`` ``(units, batch)``, not aliasing ``h``.

        ``gate_input`` ``(gates, batch)``, this step's bottom-up (and top-down) gate inputs, is
        scratch space; ``h_view`` and ``gate_view`` are torch views of ``h`` and ``gate_input``.
        Nothing is allocated (at batch 256 a fresh array costs as much as the product).
        """
        n = self.hidden_size
        h = state[0]
        product = self.w_hh.kernel(h.shape[1])
        if self.cell == "gru":
            gates = state[1]
            np.copyto(gates, self.recurrent_start)
            product(state[2], h_view)
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
        product(gate_view, h_view)
        if self.cell == "rnn_tanh":
            np.tanh(gates, out=out)
            return (out,)
        if self.cell == "rnn_relu":
            _relu(gates, out=out)
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
        Read or compacted (:mod:`~latticeprune.inference.compact`); the read-out is not used.
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
        # A stacked layer's (and the first layer's) input projection is one product over the
        # whole sequence, where dense GEMM is efficient: CSR only from MIN_SPARSITY on.
        self.layers = [
            _SparseLayer(layer, min_sparsity,
                         min_sparsity if self.top_down and index > 0
                         else max(min_sparsity, MIN_SPARSITY))
            for index, layer in enumerate(weights.layers)]

    def runs_dense(self, batch):
        """False: this engine never hands a batch to torch's fused kernels."""
        return False

    def nbytes(self):
        """Bytes of the weights and biases as held (CSR or dense)."""
        return int(sum(layer.nbytes() for layer in self.layers))

    def layer_engines(self):
        """Per layer, ``"sparse"`` if any of its matrices is held as CSR, else ``"dense"``."""
        return ["sparse" if any(op is not None and op.is_sparse
                                for op in (layer.w_ih, layer.w_hh, layer.w_td)) else "dense"
                for layer in self.layers]

    def encode(self, x, need_sequence=True):
        """Top-layer states of batch-first float32 ``x`` ``(batch, steps, features)``: all steps'
        ``(batch, steps, hidden)`` (None unless ``need_sequence``) and the last ``(batch, hidden)``.
        """
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(1, 2, 0))
        outputs, last = self.encode_time_major(x, "batch" if need_sequence else None)
        return outputs, np.ascontiguousarray(last.T)

    def encode_time_major(self, x, sequence_layout="time"):
        """:meth:`encode` on time-major, C-contiguous float32 ``x`` ``(steps, features, batch)``.

        Returns the top layer's states time-major ``(steps, hidden, batch)`` if
        ``sequence_layout="time"``, batch-first ``(batch, steps, hidden)`` (copied step by step
        while in cache) if ``"batch"``, None if None; and the last state ``(hidden, batch)``.
        """
        if self.top_down:
            return self._step_all(x, sequence_layout)
        below = x
        for index, layer in enumerate(self.layers):
            layout = sequence_layout if index == len(self.layers) - 1 else "time"
            below, last = self._run_layer(layer, below, layout)
        return below, last

    @staticmethod
    def _buffers(layout, steps, units, batch):
        """The sequence buffer for ``layout`` (or None) and two spare state buffers; step ``t``
        writes to ``sequence[t]`` (time-major) or to ``spare[t % 2]`` (the other one still holds
        the previous state)."""
        shape = {"time": (steps, units, batch), "batch": (batch, steps, units)}.get(layout)
        sequence = None if shape is None else np.empty(shape, dtype=np.float32)
        return sequence, [np.empty((units, batch), dtype=np.float32) for _ in range(2)]

    def _run_layer(self, layer, x, layout):
        """One stacked layer over the sequence: its states in ``layout`` (or None), last state."""
        steps, _, batch = x.shape
        n = layer.hidden_size
        state = layer.initial_state(batch)
        # At batch 1 the batch-first (1, steps, n) and time-major (steps, n, 1) layouts coincide:
        # the steps write there directly.
        store = "time" if layout == "batch" and batch == 1 else layout
        sequence, spare = self._buffers(store, steps, n, batch)
        # Torch views of every buffer the recurrent product reads or writes, made once per call
        # rather than once per step (their cost is a tenth of a sparse product at batch 1).
        out_views = _views(sequence) if store == "time" else [_view(buffer) for buffer in spare]
        h_view = _view(state[0])
        product = layer.w_hh.kernel(batch)
        elman = layer.cell in ("rnn_tanh", "rnn_relu")  # the lean loop: one product, one call
        activation = np.tanh if layer.cell == "rnn_tanh" else _relu
        for start, stop in _step_chunks(steps, layer.bias.shape[0] * batch):
            gate_inputs = layer.project_inputs(x[start:stop])
            gate_views = _views(gate_inputs)
            for t in range(start, stop):
                out = sequence[t] if store == "time" else spare[t % 2]
                if elman:
                    product(gate_views[t - start], h_view)
                    activation(gate_inputs[t - start], out=out)
                    state = (out,)
                else:
                    state = layer.step(gate_inputs[t - start], state, out, h_view,
                                       gate_views[t - start])
                h_view = out_views[t if store == "time" else t % 2]
                if store == "batch":
                    sequence[:, t] = out.T
        if store != layout:
            sequence = sequence.reshape(1, steps, n)
        return sequence, state[0]

    def _step_all(self, x, layout):
        """All layers jointly, step by step (top-down feedback from ``l + 1`` at ``t - 1``)."""
        steps, _, batch = x.shape
        chunks = iter(_step_chunks(steps, self.layers[0].bias.shape[0] * batch))
        states = [layer.initial_state(batch) for layer in self.layers]
        spares = [self._buffers(None, steps, layer.hidden_size, batch)[1]
                  for layer in self.layers]
        top = len(self.layers) - 1
        sequence = self._buffers(layout, steps, self.layers[top].hidden_size, batch)[0]
        start = stop = 0
        for t in range(steps):
            if t == stop:
                start, stop = next(chunks)
                first = self.layers[0].project_inputs(x[start:stop])
            previous = [state[0] for state in states]
            below = None
            for index, layer in enumerate(self.layers):
                if index == 0:
                    gate_input = first[t - start]
                else:  # bottom-up gate inputs of this step
                    gate_input = np.repeat(layer.bias, batch, axis=1)
                    layer.w_ih.accumulate(below, gate_input)
                if layer.w_td is not None:
                    layer.w_td.accumulate(previous[index + 1], gate_input)
                out = sequence[t] if index == top and layout == "time" else spares[index][t % 2]
                states[index] = layer.step(gate_input, states[index], out,
                                           _view(states[index][0]), _view(gate_input))
                below = states[index][0]
            if layout == "batch":
                sequence[:, t] = below.T
        return sequence, states[-1][0]
