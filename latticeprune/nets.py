"""Recurrent torch modules: stacked Elman/LSTM/GRU nets and a hierarchical net with top-down feedback.

``RecurrentNet`` is the module behind :class:`~latticeprune.RNNClassifier` and
:class:`~latticeprune.RNNRegressor`: a recurrent encoder followed by a linear read-out.
Without top-down feedback the encoder is torch's own ``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU`` (fast fused kernels). With ``top_down=True`` it is a :class:`HierarchicalRNN`
whose layer ``l + 1`` feeds back into layer ``l`` at the next time step; bottom-up
(``weight_ih``), recurrent (``weight_hh``) and top-down (``weight_td``) weights are separate
tensors so that each can be analysed and pruned on its own.
"""

import math
import numbers
from dataclasses import dataclass

import torch
from torch import nn

from .sequences import sequence_ends
from .top_down_kernel import kernel_applies, run_lstm_steps

@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its gate count, the torch module that runs it fused over a sequence
    and torch's one-step kernel (``torch_step``, what ``nn.RNNCell`` / ``nn.LSTMCell`` /
    ``nn.GRUCell`` call: ``torch_step(input, hx, w_ih, w_hh, b_ih, b_hh)``).

    Gate blocks are stacked in torch's order in every weight matrix (LSTM ``i, f, g, o``;
    GRU ``r, z, n``).
    """

    name: str
    n_gates: int
    torch_mode: str
    torch_class: type
    torch_step: object
    torch_kwargs: tuple = ()

    def fused(self, input_size, hidden_size, num_layers=1, batch_first=True):
        """torch's fused module for this cell (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``)."""
        return self.torch_class(input_size, hidden_size, num_layers=num_layers,
                                batch_first=batch_first, **dict(self.torch_kwargs))


#: The one table of cells: ``cell`` name -> :class:`Cell`.
CELL_TABLE = {
    "rnn_tanh": Cell("rnn_tanh", 1, "RNN_TANH", nn.RNN, torch.rnn_tanh_cell,
                     (("nonlinearity", "tanh"),)),
    "rnn_relu": Cell("rnn_relu", 1, "RNN_RELU", nn.RNN, torch.rnn_relu_cell,
                     (("nonlinearity", "relu"),)),
    "lstm": Cell("lstm", 4, "LSTM", nn.LSTM, torch.lstm_cell),
    "gru": Cell("gru", 3, "GRU", nn.GRU, torch.gru_cell),
}
#: Valid ``cell`` names.
CELLS = tuple(CELL_TABLE)
#: Gate blocks per cell (derived from :data:`CELL_TABLE`).
N_GATES = {name: cell.n_gates for name, cell in CELL_TABLE.items()}


def check_cell(cell, name="cell"):
    """The :class:`Cell` called ``cell``; ``ValueError`` naming ``name`` and the valid choices."""
    if cell not in CELL_TABLE:
        raise ValueError(f"{name}={cell!r} is not a valid cell; valid choices are {list(CELLS)}.")
    return CELL_TABLE[cell]


def cell_of(rnn):
    """The cell name of a torch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` module."""
    for name, cell in CELL_TABLE.items():
        if cell.torch_mode == rnn.mode:
            return name
    raise ValueError(f"Unknown recurrent mode {rnn.mode!r}.")


def fused_rnn(cell, input_size, hidden_size, num_layers=1, batch_first=True):
    """torch's fused recurrent module for ``cell`` (see :meth:`Cell.fused`)."""
    return check_cell(cell).fused(input_size, hidden_size, num_layers, batch_first)


def _check_module_args(cell, hidden_size, num_layers, input_size, output_size):
    check_cell(cell)
    for name, value in [("num_layers", num_layers), ("input_size", input_size),
                        ("output_size", output_size), *(("hidden_size", size) for size
                                                        in layer_sizes(hidden_size, num_layers))]:
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def layer_sizes(hidden_size, num_layers):
    """Units per layer: ``hidden_size`` repeated, or the sequence itself (one size per layer)."""
    if isinstance(hidden_size, numbers.Integral):
        return [hidden_size] * num_layers
    sizes = list(hidden_size)
    if len(sizes) != num_layers:
        raise ValueError(f"hidden_size has {len(sizes)} sizes for num_layers={num_layers}.")
    return sizes


class StackedRNN(nn.ModuleList):
    """torch's fused one-layer modules of different sizes, stacked bottom to top.

    ``forward(x)`` on batch-first ``x`` returns ``(outputs, None)`` like a fused module.
    """

    def __init__(self, cell, input_size, hidden_sizes):
        super().__init__(fused_rnn(cell, below, size) for below, size
                         in zip([input_size, *hidden_sizes[:-1]], hidden_sizes))
        self.input_size = input_size

    def forward(self, x):
        for rnn in self:
            x = rnn(x)[0]
        return x, None


class LayerStack(nn.Module):
    """A multi-layer ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` as one-layer modules of their own
    sizes (what unit removal makes of a module whose layers keep different numbers of units).

    ``forward(input, hx=None)`` takes what the fused module takes (a tensor in its layout or
    a ``PackedSequence``; no initial state) and returns what it returns, ``(output, h_n)`` or
    ``(output, (h_n, c_n))``, except that ``h_n`` / ``c_n`` are tuples of one state per layer
    and direction (layer-major, as the fused module's rows): ``h_n[-1]``, ``h_n[k]`` and
    slices read as before. Dropout between layers as the fused module's ``dropout``.

    Parameters
    ----------
    layers : list of nn.RNNBase
        One-layer modules, bottom first, of one cell, direction count and layout.
    dropout : float, default=0.0
    """

    def __init__(self, layers, dropout=0.0):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        first = layers[0]
        self.mode, self.batch_first = first.mode, first.batch_first
        self.bidirectional, self.dropout = first.bidirectional, dropout
        self.input_size, self.num_layers = first.input_size, len(layers)

    @property
    def hidden_sizes(self):
        return [layer.hidden_size for layer in self.layers]

    def forward(self, input, hx=None):
        if hx is not None:
            raise ValueError("LayerStack runs from zero states (its layers have different "
                             "sizes); pass no initial state.")
        states, x = [], input
        for k, layer in enumerate(self.layers):
            if k and self.dropout and self.training:
                x = (x._replace(data=nn.functional.dropout(x.data, self.dropout))
                     if isinstance(x, nn.utils.rnn.PackedSequence)
                     else nn.functional.dropout(x, self.dropout))
            x, state = layer(x)
            states.append(state)
        if self.mode == "LSTM":
            return x, (tuple(row for h, _ in states for row in h),
                       tuple(row for _, c in states for row in c))
        return x, tuple(row for h in states for row in h)


class HierarchicalLayer(nn.Module):
    """One layer of a :class:`HierarchicalRNN`.

    Parameters
    ----------
    input_size : int
        Size of the bottom-up input (features, or the hidden size of the layer below).
    hidden_size : int
        Number of hidden units.
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}
        Cell type (gate blocks in torch's order, see :class:`Cell`).
    top_down_size : int or None
        Hidden size of the layer above, or None for the top layer (no ``weight_td``).
    """

    def __init__(self, input_size, hidden_size, cell="lstm", top_down_size=None):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.cell = cell
        self.n_gates = N_GATES[cell]
        rows = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.weight_td = (nn.Parameter(torch.empty(rows, top_down_size))
                          if top_down_size is not None else None)
        self.bias_ih = nn.Parameter(torch.empty(rows))
        self.bias_hh = nn.Parameter(torch.empty(rows))
        self.reset_parameters()

    def reset_parameters(self):
        """Uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch's recurrent layers."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def init_state(self, batch_size, dtype, device):
        """Zero state: ``h`` (and ``c`` for LSTM)."""
        h = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else (h,)

    def forward(self, x, state, above=None):
        """Advance one step from ``state`` given bottom-up ``x`` and the layer above's previous ``h``."""
        gi = nn.functional.linear(x, self.weight_ih, self.bias_ih)
        if above is not None and self.weight_td is not None:
            gi = gi + nn.functional.linear(above, self.weight_td)
        return self.update(gi, nn.functional.linear(state[0], self.weight_hh, self.bias_hh), state)

    def update(self, gi, gh, state):
        """The new state from the input-side gates ``gi`` (bottom-up and top-down) and the
        recurrent gates ``gh``; for all cells but GRU ``gh`` may be None (summed into ``gi``)."""
        gates = gi if gh is None else gi + gh
        if self.cell == "rnn_tanh":
            return (torch.tanh(gates),)
        if self.cell == "rnn_relu":
            return (torch.relu(gates),)
        if self.cell == "lstm":
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            return (torch.sigmoid(o) * torch.tanh(c), c)
        # GRU, torch's formulation: the reset gate scales the recurrent part of the candidate.
        ir, iz, in_ = gi.chunk(3, dim=1)
        hr, hz, hn = gh.chunk(3, dim=1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return ((1 - z) * n + z * state[0],)


class HierarchicalRNN(nn.Module):
    """Stacked recurrent layers with top-down feedback from layer ``l + 1`` at ``t - 1`` into layer ``l`` at ``t``.

    Input and output are batch-first: ``forward(x)`` with ``x`` of shape
    ``(batch, steps, input_size)`` returns ``(outputs, h_last)``: the top layer's hidden states
    ``(batch, steps, hidden_size)`` and its final state ``(batch, hidden_size)``; with
    ``lengths`` (padded ``x``), the states at each sequence's end, zeros after it. LSTM layers
    run through a compiled kernel (:func:`run_top_down`); to predict over many batches without
    gradients, call the module inside :func:`~latticeprune.top_down_kernel.frozen_weights`
    (as the estimators do), so that its weights are prepared once.
    """

    def __init__(self, input_size, hidden_size, num_layers=2, cell="lstm"):
        super().__init__()
        sizes = layer_sizes(hidden_size, num_layers)
        self.input_size = input_size
        self.hidden_size = sizes[-1]
        self.num_layers = num_layers
        self.cell = cell
        self.layers = nn.ModuleList(
            HierarchicalLayer(below, size, cell, top_down_size=above) for below, size, above
            in zip([input_size, *sizes[:-1]], sizes, [*sizes[1:], None]))

    def forward(self, x, lengths=None):
        outputs = run_top_down(self.layers, x)
        return (outputs, outputs[:, -1]) if lengths is None else sequence_ends(outputs, lengths)


def run_top_down(layers, x):
    """Top-layer states ``(batch, steps, hidden)`` of layers stepped jointly over batch-first
    ``x``: layer ``l`` reads layer ``l - 1`` at ``t`` and layer ``l + 1`` at ``t - 1``.

    Each layer is a :class:`HierarchicalLayer` (or has its weights, ``cell``, ``init_state``
    and ``update``). Step 0 calls each layer, so forward pre-hooks (``torch.nn.utils.prune``
    masks) refresh its weights; the later steps reuse them. LSTM layers run all steps through
    the compiled kernel of :mod:`latticeprune.top_down_kernel` where it applies (its
    :func:`~latticeprune.top_down_kernel.kernel_applies`), after a call of each layer on an
    empty batch for the hooks. Otherwise a gated layer (LSTM, GRU) steps
    through torch's one-step kernel (:attr:`Cell.torch_step`, the gate arithmetic in one
    call) over ``[below, above]`` with ``weight_ih`` and ``weight_td`` side by side. An
    Elman layer steps by one GEMM over the concatenated inputs ``[below, h, above]`` and
    its non-linearity, with the bottom layer's input projection one GEMM over all steps; on
    a float32 CPU tensor its step GEMMs of at least :data:`ONEDNN_MIN_MACS` multiply-adds,
    forward and backward, run on oneDNN (``nn.functional.linear`` of ``to_mkldnn``
    tensors, the library behind torch's fused ``nn.LSTM``), each weight converted once per
    call; the others are ``torch.addmm``. (Measured per cell and size: docs/experiments.md.)
    """
    batch, steps, _ = x.shape
    if steps and kernel_applies(layers, x):
        empty = [layer.init_state(0, x.dtype, x.device) for layer in layers]
        for index, layer in enumerate(layers):  # an empty batch: the forward pre-hooks run
            below = empty[index - 1][0] if index else x[:0, 0]
            above = empty[index + 1][0] if index + 1 < len(layers) else None
            layer(below, empty[index], above)
        return run_lstm_steps(layers, x)
    states = [layer.init_state(batch, x.dtype, x.device) for layer in layers]
    below, outputs = x[:, 0], []
    for index, layer in enumerate(layers):  # step 0: the above states are zero
        above = states[index + 1][0] if index + 1 < len(layers) else None
        states[index] = layer(below, states[index], above)
        below = states[index][0]
    outputs.append(below)
    onednn = _onednn_steps(x)
    steppers = [_gated_step(layer, index == 0, index + 1 < len(layers), x[:, 1:])
                if N_GATES[layer.cell] > 1 else
                _elman_step(layer, index == 0, index + 1 < len(layers), x[:, 1:], onednn)
                for index, layer in enumerate(layers)]
    for t in range(steps - 1):
        previous = [state[0] for state in states]
        below = None
        for index, step in enumerate(steppers):
            above = previous[index + 1] if index + 1 < len(layers) else None
            states[index] = step(t, below, states[index], above)
            below = states[index][0]
        outputs.append(below)
    return torch.stack(outputs, dim=1)


def _gated_step(layer, bottom, has_above, x):
    """One later step of an LSTM/GRU layer of :func:`run_top_down`, as a function
    ``(t, below, state, above) -> state``: torch's one-step kernel over ``[below, above]``
    (the bottom layer's ``below`` is ``x[:, t]``)."""
    kernel = CELL_TABLE[layer.cell].torch_step
    reads_above = has_above and layer.weight_td is not None
    weight = torch.cat([layer.weight_ih, layer.weight_td], dim=1) if reads_above \
        else layer.weight_ih
    lstm = layer.cell == "lstm"

    def step(t, below, state, above):
        inputs = x[:, t] if bottom else below
        inputs = torch.cat([inputs, above], dim=1) if reads_above else inputs
        new = kernel(inputs, state if lstm else state[0], weight, layer.weight_hh,
                     layer.bias_ih, layer.bias_hh)
        return new if lstm else (new,)
    return step


def _elman_step(layer, bottom, has_above, x, onednn):
    """One later step of an Elman layer of :func:`run_top_down`, as a function
    ``(t, below, state, above) -> state``: one GEMM over ``[below (not for the bottom
    layer, whose input projection of every step is one GEMM), h, above]``."""
    reads_above = has_above and layer.weight_td is not None
    parts = ([] if bottom else [layer.weight_ih]) + [layer.weight_hh]
    parts += [layer.weight_td] if reads_above else []
    bias = layer.bias_ih + layer.bias_hh
    # Unbound: one backward for all steps.
    projected = nn.functional.linear(x, layer.weight_ih, bias).unbind(1) if bottom else None
    weight = torch.cat(parts, dim=1)
    weight = _onednn(weight, x.shape[0]) if onednn else weight

    def step(t, below, state, above):
        inputs = ([] if bottom else [below]) + [state[0]] + ([above] if reads_above else [])
        start = projected[t] if bottom else bias
        return layer.update(_linear(start, torch.cat(inputs, dim=1), weight), None, state)
    return step


def _onednn_steps(x):
    """Whether :func:`run_top_down` runs its step GEMMs on oneDNN: float32 CPU input, oneDNN
    available and enabled. There oneDNN's GEMM beats ``torch.addmm`` (MKL) at the step's
    shapes, forward and backward (measured: see docs/experiments.md)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


#: Multiply-adds of a step GEMM (batch x weight size) from which it runs on oneDNN: below, its
#: fixed cost per call (about 30 us, converting to and from oneDNN tensors) loses to
#: ``torch.addmm`` (measured: see docs/experiments.md).
ONEDNN_MIN_MACS = 4_000_000


def _onednn(weight, batch):
    """``weight`` as a :class:`_OneDNNWeight` if its step GEMM pays on oneDNN, else itself."""
    pays = weight.numel() and batch * weight.numel() >= ONEDNN_MIN_MACS
    return _OneDNNWeight(weight) if pays else weight


class _OneDNNWeight:
    """A step weight, and itself and its transpose as oneDNN tensors (converted once per
    sequence; the transpose only if a gradient may flow back through the inputs)."""

    def __init__(self, weight):
        self.weight = weight
        self.packed = weight.detach().to_mkldnn()
        self.packed_t = (weight.detach().t().contiguous().to_mkldnn()
                         if torch.is_grad_enabled() else None)


def _linear(start, inputs, weight):
    """``start + inputs @ weight.T``: ``torch.addmm``, or oneDNN for a :class:`_OneDNNWeight`."""
    if isinstance(weight, _OneDNNWeight):
        return _OneDNNLinear.apply(start, inputs, weight.weight, weight)
    return torch.addmm(start, inputs, weight.t())


class _OneDNNLinear(torch.autograd.Function):
    """``start + inputs @ weight.T`` with all three GEMMs (forward, input and weight
    gradients) on oneDNN, through ``nn.functional.linear`` of ``to_mkldnn`` tensors."""

    @staticmethod
    def forward(ctx, start, inputs, weight, onednn):
        ctx.save_for_backward(inputs)
        ctx.onednn, ctx.start_dim = onednn, start.dim()
        bias = start if start.dim() == 1 else None
        out = nn.functional.linear(inputs.to_mkldnn(), onednn.packed, bias).to_dense()
        return out if bias is not None else out.add_(start)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (inputs,) = ctx.saved_tensors
        grad = grad.contiguous()
        grad_start = grad.sum(0) if ctx.start_dim == 1 else grad
        grad_inputs = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_inputs = nn.functional.linear(grad.to_mkldnn(), ctx.onednn.packed_t).to_dense()
        if ctx.needs_input_grad[2]:
            grad_weight = nn.functional.linear(grad.t().contiguous().to_mkldnn(),
                                               inputs.t().contiguous().to_mkldnn()).to_dense()
        return grad_start, grad_inputs, grad_weight, None


def readout_linear(x, weight, bias=None):
    """``x @ weight.T + bias`` accumulated in float64 and returned in ``x``'s dtype, so that
    a sample's output does not depend on the batch around it: torch's float32 CPU GEMM (MKL)
    takes other code paths for other batch sizes, which round the last bit differently
    (sklearn's ``check_methods_subset_invariance``). The read-out is small next to the
    recurrent layers; the double-precision product costs nothing measurable there."""
    out = nn.functional.linear(x.double(), weight.double(),
                               None if bias is None else bias.double())
    return out.to(x.dtype)


class Readout(nn.Linear):
    """The linear read-out of a recurrent net: an ``nn.Linear`` (same parameters, state dict
    and pruning) whose product is :func:`readout_linear`."""

    def forward(self, x):
        return readout_linear(x, self.weight, self.bias)


class RecurrentNet(nn.Module):
    """Recurrent encoder plus linear read-out.

    Parameters
    ----------
    input_size : int
        Features per time step.
    output_size : int
        Read-out size (number of classes, or regression targets per output).
    hidden_size : int or sequence of int, default=64
        Units per recurrent layer, or one size per layer (layers of different sizes run as
        one fused torch module each, :class:`StackedRNN`).
    num_layers : int, default=1
        Stacked recurrent layers.
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="lstm"
        Recurrent cell.
    top_down : bool, default=False
        Use a :class:`HierarchicalRNN` with top-down feedback (needs ``num_layers >= 2``).
    sequence_output : bool, default=False
        Read out every time step, ``(batch, steps, output_size)``, instead of the last one.

    Examples
    --------
    >>> import torch
    >>> net = RecurrentNet(input_size=8, output_size=10, hidden_size=16, cell="gru")
    >>> net(torch.zeros(4, 8, 8)).shape
    torch.Size([4, 10])
    """

    def __init__(self, input_size, output_size, hidden_size=64, num_layers=1, cell="lstm",
                 top_down=False, sequence_output=False):
        super().__init__()
        _check_module_args(cell, hidden_size, num_layers, input_size, output_size)
        if top_down and num_layers < 2:
            raise ValueError("top_down=True needs num_layers >= 2: a single layer has no layer "
                             f"above it to feed back; got num_layers={num_layers}.")
        self.sequence_output = sequence_output
        sizes = layer_sizes(hidden_size, num_layers)
        if top_down:
            self.encoder = HierarchicalRNN(input_size, sizes, num_layers, cell)
        elif len(set(sizes)) == 1:
            self.encoder = fused_rnn(cell, input_size, sizes[0], num_layers)
        else:
            self.encoder = StackedRNN(cell, input_size, sizes)
        self.readout = Readout(sizes[-1], output_size)

    def example_input(self):
        """A one-sample, two-step input (zeros): what the dependency trace runs."""
        param = self.readout.weight
        return torch.zeros(1, 2, self.encoder.input_size, dtype=param.dtype, device=param.device)

    def encode(self, x, lengths=None):
        """Hidden states of the top layer: ``(outputs (batch, steps, hidden), last (batch, hidden))``;
        for padded ``x`` with ``lengths`` (tensor, one per sequence), zeros after each end and
        the state at each end (:func:`~latticeprune.sequences.sequence_ends`)."""
        outputs = self.encoder(x)[0]
        return (outputs, outputs[:, -1]) if lengths is None else sequence_ends(outputs, lengths)

    def forward(self, x, lengths=None):
        outputs, last = self.encode(x, lengths)
        return self.readout(outputs if self.sequence_output else last)
