"""Structural compaction: the smaller dense net that computes what a pruned recurrent net computes.

Pruning leaves zeros in weight matrices of the original shape; the net still carries every
hidden unit. This module reads a net's live (masked) weights through
:class:`~latticeprune.neuron_graph.NeuronGraph` into :class:`RecurrentWeights` (plain arrays,
which :mod:`latticeprune.inference.sparse` also builds from) and removes the hidden units that
cannot influence what the net exposes:

* a unit is **observed** when a path of non-zero connections (any gate block of an input,
  layer-to-layer, recurrent or top-down matrix) leads from it to an exposed value: a non-zero
  read-out column (``observe="outputs"``), or any top-layer unit (``observe="hidden"``, what
  ``transform`` and a bare recurrent module return). Every unit that is not observed goes,
  with its rows and columns in every matrix.
* a unit is **driven** when a path leads to it from the input features. An observed unit that
  is not driven (every incoming connection pruned, biases left) is input-independent but not
  constant: an LSTM unit's cell integrates its biases (``c_t = f c_{t-1} + i g``), a GRU unit
  moves towards its candidate, an Elman unit with a self-connection iterates ``tanh(w h + b)``,
  and all start from a zero state: a time-varying trajectory. Such units are **kept**
  (:attr:`CompactionReport.undriven`): outputs stay identical and the sparse engine spends
  no multiply-adds on their empty rows.

Both searches are breadth-first over the unit graph (``scipy.sparse.csgraph``), O(non-zeros).
:class:`CompactRecurrentNet` is the result as a torch module: one fused ``nn.RNN`` /
``nn.LSTM`` / ``nn.GRU`` per layer (sizes may now differ) or, for top-down nets, a step loop.
"""

import warnings
from dataclasses import dataclass, field, replace
from typing import List, Optional

import numpy as np
import torch
from scipy.sparse import coo_array
from scipy.sparse.csgraph import breadth_first_order
from torch import nn

from ..nets import (N_GATES, HierarchicalLayer, HierarchicalRNN, Readout, RecurrentNet, StackedRNN,
                    fused_rnn, run_top_down)
from ..neuron_graph import NeuronGraph, live_weight
from ..sequences import sequence_ends

__all__ = ["LayerWeights", "RecurrentWeights", "CompactionReport", "CompactRecurrentNet",
           "read_weights", "compact_weights", "compact", "OBSERVE"]

#: What the compacted net must reproduce: the read-out, or every top-layer hidden state.
OBSERVE = ("outputs", "hidden")
_KEYS = ("weight_ih", "weight_hh", "weight_td", "bias_ih", "bias_hh")


@dataclass
class LayerWeights:
    """Live weights of one recurrent layer, float32, gate blocks in torch's order (LSTM ifgo,
    GRU rzn): ``weight_ih`` ``(n_gates * hidden_size, input_size)`` from the inputs or the layer
    below, ``weight_hh`` ``(.., hidden_size)``, ``weight_td`` ``(.., size of the layer above)``
    from the layer above at the previous step (None without), ``bias_ih`` and ``bias_hh``
    ``(n_gates * hidden_size,)``. ``cell`` is a name of :data:`~latticeprune.nets.CELL_TABLE`;
    ``units`` are the indices of these units in the original layer."""

    cell: str
    weight_ih: np.ndarray
    weight_hh: np.ndarray
    weight_td: Optional[np.ndarray]
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    units: np.ndarray

    @property
    def n_gates(self):
        return N_GATES[self.cell]

    @property
    def hidden_size(self):
        return self.weight_hh.shape[1]

    @property
    def input_size(self):
        return self.weight_ih.shape[1]

    def select(self, keep, keep_below, keep_above):
        """The layer restricted to units ``keep`` (and its inputs to ``keep_below``/``keep_above``).

        ``keep_below`` is None for the first layer (input features are never removed).
        """
        rows = (np.arange(self.n_gates)[:, None] * self.hidden_size + keep[None, :]).ravel()
        weight_ih = self.weight_ih[rows]
        if keep_below is not None:
            weight_ih = weight_ih[:, keep_below]
        weight_td = None if self.weight_td is None else self.weight_td[rows][:, keep_above]
        return LayerWeights(self.cell, np.ascontiguousarray(weight_ih),
                            np.ascontiguousarray(self.weight_hh[rows][:, keep]),
                            None if weight_td is None else np.ascontiguousarray(weight_td),
                            self.bias_ih[rows].copy(), self.bias_hh[rows].copy(),
                            self.units[keep].copy())


@dataclass
class RecurrentWeights:
    """Plain-array description of a recurrent net: ``layers`` (:class:`LayerWeights`, bottom to
    top); ``top_down``: layer ``l + 1`` feeds back into layer ``l`` at the next step;
    ``input_size``: features per step; an optional linear read-out, ``readout_weight``
    ``(n_outputs, top hidden size)`` and ``readout_bias``, applied to every step if
    ``sequence_output``, else to the last; ``batch_first``: the layout of the source module's
    ``forward`` input."""

    layers: List[LayerWeights]
    top_down: bool
    input_size: int
    readout_weight: Optional[np.ndarray] = None
    readout_bias: Optional[np.ndarray] = None
    sequence_output: bool = False
    batch_first: bool = True

    @property
    def hidden_sizes(self):
        return [layer.hidden_size for layer in self.layers]

    def nbytes(self):
        """Bytes of the recurrent layers' weight and bias arrays (dense; read-out excluded)."""
        return int(sum(getattr(layer, key).nbytes for layer in self.layers for key in _KEYS
                       if getattr(layer, key) is not None))


@dataclass
class CompactionReport:
    """What compaction removed, per layer: hidden units before and after
    (``original_sizes``, ``compact_sizes``), original indices of the removed (unobserved) units
    (``removed``) and of kept units no input reaches (``undriven``)."""

    original_sizes: list
    compact_sizes: list
    removed: list = field(default_factory=list)
    undriven: list = field(default_factory=list)


def _array(tensor):
    return tensor.detach().cpu().to(torch.float32).numpy().copy()


def read_weights(module):
    """The live (masked) weights of ``module`` as :class:`RecurrentWeights`, read through its
    :class:`~latticeprune.neuron_graph.NeuronGraph`.

    ``module`` is a RecurrentNet, HierarchicalRNN, nn.RNN, nn.LSTM or nn.GRU, pruned through
    ``torch.nn.utils.prune`` or not. ``TypeError`` for any other module (its ``forward`` could
    use the recurrent layers in any way); ``ValueError`` for bidirectional layers or LSTMs with
    projections.
    """
    encoder = module.encoder if isinstance(module, RecurrentNet) else module
    if not isinstance(encoder, (HierarchicalRNN, nn.RNNBase, StackedRNN)):
        raise TypeError(
            f"Cannot build an inference form of {type(module).__name__}: to_inference compiles "
            "a latticeprune RecurrentNet, a HierarchicalRNN or a bare nn.RNN / nn.LSTM / nn.GRU "
            "(whose forward it knows). For another module, prune with granularity='unit': the "
            f"result is a smaller {type(module).__name__} that runs on torch's own kernels and "
            "exports with export_onnx.")
    graph = NeuronGraph(encoder)
    if any(layer.direction for layer in graph.layers):
        raise ValueError(f"{type(module).__name__} has bidirectional recurrent layers, which "
                         "have no fast inference form (its step loop runs forward in time); "
                         "granularity='unit' gives a smaller net that runs on torch's kernels.")
    layers = [LayerWeights(layer.cell, **layer.arrays(), units=np.arange(layer.size))
              for layer in graph.layers]
    weights = RecurrentWeights(layers, isinstance(encoder, HierarchicalRNN), encoder.input_size,
                               batch_first=bool(getattr(encoder, "batch_first", True)))
    if encoder is module:
        return weights
    readout = module.readout
    bias = (_array(live_weight(readout, "bias")) if readout.bias is not None
            else np.zeros(readout.out_features, dtype=np.float32))
    return replace(weights, readout_weight=_array(live_weight(readout, "weight")),
                   readout_bias=bias, sequence_output=bool(module.sequence_output))


# -- compaction ------------------------------------------------------------------------------
def _connections(weight, n_gates):
    """``(dst, src)`` index pairs joined by a non-zero entry in any gate block of ``weight``."""
    n_dst = weight.shape[0] // n_gates
    joined = (weight.reshape(n_gates, n_dst, weight.shape[1]) != 0).any(axis=0)
    return np.nonzero(joined)


def _unit_roles(weights, observe):
    """Boolean ``(observed, driven)`` per layer, from reachability in the unit graph."""
    sizes = weights.hidden_sizes
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n_units = int(offsets[-1])
    source, sink = n_units, n_units + 1  # the input features and the exposed values
    src_all, dst_all = [], []

    def connect(dst, src):
        src_all.append(np.asarray(src, dtype=np.int64))
        dst_all.append(np.asarray(dst, dtype=np.int64))

    for index, layer in enumerate(weights.layers):
        base = offsets[index]
        dst, src = _connections(layer.weight_ih, layer.n_gates)
        if index == 0:
            connect(base + np.unique(dst), np.full(len(np.unique(dst)), source))
        else:
            connect(base + dst, offsets[index - 1] + src)
        dst, src = _connections(layer.weight_hh, layer.n_gates)
        connect(base + dst, base + src)
        if layer.weight_td is not None:
            dst, src = _connections(layer.weight_td, layer.n_gates)
            connect(base + dst, offsets[index + 1] + src)
    top = offsets[-2]
    if observe == "outputs" and weights.readout_weight is not None:
        exposed = np.flatnonzero((weights.readout_weight != 0).any(axis=0))
    else:
        exposed = np.arange(sizes[-1])
    connect(np.full(len(exposed), sink), top + exposed)
    src, dst = np.concatenate(src_all), np.concatenate(dst_all)
    graph = coo_array((np.ones(len(src)), (src, dst)), shape=(n_units + 2, n_units + 2)).tocsr()
    driven = np.zeros(n_units + 2, dtype=bool)
    driven[breadth_first_order(graph, source, directed=True, return_predecessors=False)] = True
    observed = np.zeros(n_units + 2, dtype=bool)
    observed[breadth_first_order(graph.T.tocsr(), sink, directed=True,
                                 return_predecessors=False)] = True
    return np.split(observed[:n_units], offsets[1:-1]), np.split(driven[:n_units], offsets[1:-1])


def compact_weights(weights, observe="outputs"):
    """Remove the units that cannot influence the exposed values.

    Parameters
    ----------
    weights : RecurrentWeights
    observe : {"outputs", "hidden"}, default="outputs"
        ``"outputs"``: keep what the read-out needs (``forward``, ``predict``). ``"hidden"``:
        keep every top-layer unit too, in size and order (``transform``). Without a read-out
        both mean ``"hidden"``.

    Returns
    -------
    compacted : RecurrentWeights
    report : CompactionReport
    """
    if observe not in OBSERVE:
        raise ValueError(f"observe={observe!r} is not valid; valid choices are {list(OBSERVE)}.")
    observed, driven = _unit_roles(weights, observe)
    keep = [np.flatnonzero(flags) for flags in observed]
    layers = []
    for index, layer in enumerate(weights.layers):
        below = keep[index - 1] if index > 0 else None
        above = keep[index + 1] if layer.weight_td is not None else None
        layers.append(layer.select(keep[index], below, above))
    readout_weight = (None if weights.readout_weight is None
                      else np.ascontiguousarray(weights.readout_weight[:, keep[-1]]))
    compacted = replace(weights, layers=layers, readout_weight=readout_weight)
    report = CompactionReport(
        original_sizes=weights.hidden_sizes, compact_sizes=compacted.hidden_sizes,
        removed=[layer.units[~flags] for layer, flags in zip(weights.layers, observed)],
        undriven=[layer.units[flags & ~reached] for layer, flags, reached
                  in zip(weights.layers, observed, driven)])
    return compacted, report


# -- the compact torch module ----------------------------------------------------------------
def _fused_layer(layer):
    """A one-layer ``nn.RNN``/``nn.LSTM``/``nn.GRU`` with ``layer``'s weights (None without units).

    torch needs ``input_size >= 1``: a layer whose inputs were all removed gets one zero column
    and is fed zeros.
    """
    if layer.hidden_size == 0:
        return None
    weight_ih = layer.weight_ih
    if weight_ih.shape[1] == 0:
        weight_ih = np.zeros((weight_ih.shape[0], 1), dtype=np.float32)
    rnn = fused_rnn(layer.cell, weight_ih.shape[1], layer.hidden_size)
    rnn.load_state_dict({f"{key}_l0": torch.from_numpy(np.ascontiguousarray(value)) for key, value
                         in [("weight_ih", weight_ih), ("weight_hh", layer.weight_hh),
                             ("bias_ih", layer.bias_ih), ("bias_hh", layer.bias_hh)]})
    return rnn.eval()


def run_fused_layer(rnn, x):
    """Batch-first outputs of a layer from :func:`_fused_layer` on tensor ``x``.

    None (a layer without units) gives ``(batch, steps, 0)`` zeros; a layer whose inputs were
    all removed (``rnn.input_size`` unlike ``x``'s width) is fed zeros.
    """
    if rnn is None:
        return x.new_zeros(x.shape[0], x.shape[1], 0)
    if rnn.input_size != x.shape[2]:
        x = x.new_zeros(x.shape[0], x.shape[1], rnn.input_size)
    return rnn(x)[0]


class _StepLayer(HierarchicalLayer):
    """A :class:`~latticeprune.nets.HierarchicalLayer` built from arrays (any size, even 0)."""

    def __init__(self, layer):
        nn.Module.__init__(self)
        self.input_size = layer.input_size
        self.hidden_size = layer.hidden_size
        self.cell = layer.cell
        self.n_gates = layer.n_gates
        as_param = lambda a: nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)),  # noqa: E731
                                          requires_grad=False)
        for key in _KEYS:
            value = getattr(layer, key)
            setattr(self, key, None if value is None else as_param(value))


class CompactRecurrentNet(nn.Module):
    """The compacted net as a dense torch module.

    Built from ``weights`` (:class:`RecurrentWeights`, usually from :func:`compact_weights`).
    ``layers`` holds one fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` per layer (None for a layer
    left with no units) or, with top-down feedback, step layers run jointly as
    :class:`~latticeprune.nets.HierarchicalRNN` does; ``readout`` is a
    :class:`~latticeprune.nets.Readout` or None.
    """

    def __init__(self, weights):
        super().__init__()
        self.top_down = weights.top_down
        self.input_size = weights.input_size
        self.sequence_output = weights.sequence_output
        self.hidden_sizes = weights.hidden_sizes
        make = _StepLayer if self.top_down else _fused_layer
        self.layers = nn.ModuleList([make(layer) for layer in weights.layers])
        self.readout = None
        if weights.readout_weight is not None:
            with warnings.catch_warnings():  # a read-out left with no inputs has 0 weights
                warnings.filterwarnings("ignore", "Initializing zero-element", UserWarning)
                self.readout = Readout(*weights.readout_weight.shape[::-1])
            self.readout.load_state_dict({"weight": torch.from_numpy(weights.readout_weight),
                                          "bias": torch.from_numpy(weights.readout_bias)})
        self.eval()

    def encode(self, x, lengths=None):
        """Top-layer states of batch-first ``x``: ``(outputs (batch, steps, hidden), last)``;
        with ``lengths``, zeros after each end and the state at each end."""
        if self.top_down:
            x = run_top_down(self.layers, x)
        else:
            for rnn in self.layers:
                x = run_fused_layer(rnn, x)
        return (x, x[:, -1]) if lengths is None else sequence_ends(x, lengths)

    def forward(self, x, lengths=None):
        """Read-out of batch-first ``x`` (the top layer's states if there is no read-out)."""
        outputs, last = self.encode(x, lengths)
        if self.readout is None:
            return outputs
        return self.readout(outputs if self.sequence_output else last)


def compact(module, observe="outputs"):
    """The smaller dense net (batch-first tensors in and out) with the same outputs as a pruned
    recurrent ``module`` (any :func:`read_weights` reads), and its :class:`CompactionReport`;
    ``observe`` as in :func:`compact_weights`.

    Examples
    --------
    >>> import torch
    >>> from latticeprune.nets import RecurrentNet
    >>> net = RecurrentNet(input_size=3, output_size=2, hidden_size=8, cell="gru")
    >>> with torch.no_grad():
    ...     net.readout.weight[:, 5:] = 0  # units 5..7 reach nothing but themselves
    ...     net.encoder.weight_hh_l0[:, 5:] = 0
    >>> small, report = compact(net)
    >>> report.compact_sizes
    [5]
    >>> x = torch.randn(4, 6, 3)
    >>> bool(torch.allclose(small(x), net(x), atol=1e-6))
    True
    """
    compacted, report = compact_weights(read_weights(module), observe)
    return CompactRecurrentNet(compacted), report
