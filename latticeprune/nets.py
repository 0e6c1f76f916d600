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
from dataclasses import dataclass

import torch
from torch import nn

from .sequences import sequence_ends

@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its gate count and the torch module that runs it fused.

    Gate blocks are stacked in torch's order in every weight matrix (LSTM ``i, f, g, o``;
    GRU ``r, z, n``).
    """

    name: str
    n_gates: int
    torch_mode: str
    torch_class: type
    torch_kwargs: tuple = ()

    def fused(self, input_size, hidden_size, num_layers=1, batch_first=True):
        """torch's fused module for this cell (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``)."""
        return self.torch_class(input_size, hidden_size, num_layers=num_layers,
                                batch_first=batch_first, **dict(self.torch_kwargs))


#: The one table of cells: ``cell`` name -> :class:`Cell`.
CELL_TABLE = {
    "rnn_tanh": Cell("rnn_tanh", 1, "RNN_TANH", nn.RNN, (("nonlinearity", "tanh"),)),
    "rnn_relu": Cell("rnn_relu", 1, "RNN_RELU", nn.RNN, (("nonlinearity", "relu"),)),
    "lstm": Cell("lstm", 4, "LSTM", nn.LSTM),
    "gru": Cell("gru", 3, "GRU", nn.GRU),
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
    for name, value in [("hidden_size", hidden_size), ("num_layers", num_layers),
                        ("input_size", input_size), ("output_size", output_size)]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


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
    ``lengths`` (padded ``x``), the states at each sequence's end, zeros after it.
    """

    def __init__(self, input_size, hidden_size, num_layers=2, cell="lstm"):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell = cell
        self.layers = nn.ModuleList(
            HierarchicalLayer(input_size if layer == 0 else hidden_size, hidden_size, cell,
                              top_down_size=hidden_size if layer < num_layers - 1 else None)
            for layer in range(num_layers))

    def forward(self, x, lengths=None):
        outputs = run_top_down(self.layers, x)
        return (outputs, outputs[:, -1]) if lengths is None else sequence_ends(outputs, lengths)


def run_top_down(layers, x):
    """Top-layer states ``(batch, steps, hidden)`` of layers stepped jointly over batch-first
    ``x``: layer ``l`` reads layer ``l - 1`` at ``t`` and layer ``l + 1`` at ``t - 1``.

    Each layer is a :class:`HierarchicalLayer` (or has its weights, ``init_state`` and
    ``update``). Step 0 calls each layer, so forward pre-hooks (``torch.nn.utils.prune``
    masks) refresh its weights; the later steps reuse them with one GEMM per layer and step
    over the concatenated inputs ``[below, h, above]`` (two for GRU, whose candidate needs
    the recurrent part apart), and the bottom layer's input projection is one GEMM over
    all steps.
    """
    batch, steps, _ = x.shape
    states = [layer.init_state(batch, x.dtype, x.device) for layer in layers]
    below, outputs = x[:, 0], []
    for index, layer in enumerate(layers):  # step 0: the above states are zero
        above = states[index + 1][0] if index + 1 < len(layers) else None
        states[index] = layer(below, states[index], above)
        below = states[index][0]
    outputs.append(below)
    plans = [_step_plan(layer, index == 0, index + 1 < len(layers), x[:, 1:])
             for index, layer in enumerate(layers)]
    for t in range(steps - 1):
        previous = [state[0] for state in states]
        below = None
        for index, (layer, plan) in enumerate(zip(layers, plans)):
            weight, bias, projected, hidden, reads_above = plan
            inputs = ([] if index == 0 else [below]) + ([] if hidden else [previous[index]])
            inputs += [previous[index + 1]] if reads_above else []
            start = projected[t] if index == 0 else bias
            gi = torch.addmm(start, torch.cat(inputs, dim=1), weight.t()) if inputs else start
            gh = None if hidden is None else torch.addmm(hidden[1], previous[index],
                                                          hidden[0].t())
            states[index] = layer.update(gi, gh, states[index])
            below = states[index][0]
        outputs.append(below)
    return torch.stack(outputs, dim=1)


def _step_plan(layer, bottom, has_above, x):
    """``(weight, bias, projected, hidden, reads_above)`` of one layer's later steps:
    ``weight`` spans ``[below (not for the bottom layer), h (not for GRU), above]``,
    ``projected`` is the bottom layer's input projection of every step (unbound: one
    backward for all steps), ``hidden`` GRU's
    ``(weight_hh, bias_hh)``."""
    gru = layer.cell == "gru"
    reads_above = has_above and layer.weight_td is not None
    parts = [] if bottom else [layer.weight_ih]
    parts += [] if gru else [layer.weight_hh]
    parts += [layer.weight_td] if reads_above else []
    bias = layer.bias_ih if gru else layer.bias_ih + layer.bias_hh
    projected = nn.functional.linear(x, layer.weight_ih, bias).unbind(1) if bottom else None
    weight = torch.cat(parts, dim=1) if parts else layer.weight_ih[:, :0]
    hidden = (layer.weight_hh, layer.bias_hh) if gru else None
    return weight, bias, projected, hidden, reads_above


class RecurrentNet(nn.Module):
    """Recurrent encoder plus linear read-out.

    Parameters
    ----------
    input_size : int
        Features per time step.
    output_size : int
        Read-out size (number of classes, or regression targets per output).
    hidden_size : int, default=64
        Units per recurrent layer.
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
        if top_down:
            self.encoder = HierarchicalRNN(input_size, hidden_size, num_layers, cell)
        else:
            self.encoder = fused_rnn(cell, input_size, hidden_size, num_layers)
        self.readout = nn.Linear(hidden_size, output_size)

    def encode(self, x, lengths=None):
        """Hidden states of the top layer: ``(outputs (batch, steps, hidden), last (batch, hidden))``;
        for padded ``x`` with ``lengths`` (tensor, one per sequence), zeros after each end and
        the state at each end (:func:`~latticeprune.sequences.sequence_ends`)."""
        outputs = self.encoder(x)[0]
        return (outputs, outputs[:, -1]) if lengths is None else sequence_ends(outputs, lengths)

    def forward(self, x, lengths=None):
        outputs, last = self.encode(x, lengths)
        return self.readout(outputs if self.sequence_output else last)
