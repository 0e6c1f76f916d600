"""Adapter between a net's recurrent layers and the neuron graph the sparsifiers analyse.

:class:`NeuronGraph` reads any torch module (or fitted skorch net) that contains ``nn.RNN`` /
``nn.LSTM`` / ``nn.GRU`` layers or a :class:`~latticeprune.nets.HierarchicalRNN`, through the
module's traced :class:`~latticeprune.dependency.Dependencies` (no wiring is guessed from
sizes):

* lists the recurrent layers (each direction's hidden units are one layer of *neurons*) and
  every weight tensor that connects them, tagged by kind: ``"recurrent"`` (W_hh),
  ``"feedforward"`` (W_ih of a layer fed by hidden units), ``"top_down"`` (layer l+1 at t-1
  into layer l), ``"input"`` (W_ih fed by the net's input) and ``"readout"`` (``nn.Linear``
  layers that read hidden units, column by column);
* turns each tensor into neuron-level connection strengths, ``s[i, j]`` for ``i -> j``, with
  gate blocks aggregated by their RMS, so tensors with different gate counts compare entry
  for entry (``docs/methods/lattice.md`` section 1);
* writes masks back through ``torch.nn.utils.prune`` (reparametrisation ``weight_orig`` times
  ``weight_mask``), so pruned weights stay exactly zero through further training;
* reports sparsity per tensor and overall, counted in weight entries equal to zero.
"""


from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from sklearn.exceptions import NotFittedError

from .dependency import dependencies_of

__all__ = ["NeuronGraph", "WeightTensor", "RecurrentLayer", "SCOPES", "HIDDEN_KINDS",
           "refresh_flat_weights", "make_permanent", "module_masks", "apply_module_masks",
           "estimator_chain", "find_net", "find_module", "live_weight", "pruned_count"]

#: Kinds of weight tensor each pruning scope covers.
SCOPES = {
    "recurrent": ("recurrent", "top_down"),
    "all": ("recurrent", "top_down", "feedforward", "input", "readout"),
}
#: Kinds whose connections join two hidden neurons (the edges of the neuron graph).
HIDDEN_KINDS = ("recurrent", "feedforward", "top_down")


# -- finding the net -------------------------------------------------------------------------
def estimator_chain(obj, fitted=True):
    """``obj`` and every estimator nested in it, outermost first, ending at the skorch net.

    Follows ``estimator_`` (the fitted chain) or, with ``fitted=False``, ``estimator`` (the
    configured chain) through nested sparsifiers until an object with a ``module`` (a skorch
    net) or nothing further. A torch module is a chain of one.
    """
    chain = [obj]
    attribute = "estimator_" if fitted else "estimator"
    while not isinstance(obj, nn.Module) and not hasattr(obj, "module") \
            and getattr(obj, attribute, None) is not None:
        obj = getattr(obj, attribute)
        chain.append(obj)
    return chain


def find_net(obj):
    """The fitted skorch net at the core of ``obj`` (a skorch net or nested sparsifiers).

    Raises
    ------
    NotFittedError
        If ``obj`` (or the net inside it) is not fitted.
    TypeError
        If there is no skorch net inside ``obj``.
    """
    net = estimator_chain(obj)[-1]
    if not hasattr(net, "module") and not hasattr(net, "estimator"):
        raise TypeError(f"Expected a fitted skorch net or a sparsifier wrapping one, got "
                        f"{type(obj).__name__}.")
    if not hasattr(net, "module") or not getattr(net, "initialized_", False):
        raise NotFittedError(f"This {type(obj).__name__} instance is not fitted yet. Call "
                             "'fit' with appropriate arguments before using it.")
    return net


def find_module(obj):
    """The torch module of ``obj``: the module itself, or the ``module_`` of :func:`find_net`."""
    return obj if isinstance(obj, nn.Module) else find_net(obj).module_


def pruned_count(sparsity, total):
    """Entries a ``sparsity`` target zeroes among ``total``: ``round(sparsity * total)``.

    The one rounding rule of the package, the one ``torch.nn.utils.prune`` applies to a float
    ``amount``; every strategy, schedule and sparsity check counts with it.
    """
    return int(round(float(sparsity) * int(total)))


def live_weight(owner, param):
    """``owner.<param>`` as training currently sees it: ``<param>_orig * <param>_mask`` if pruned.

    ``torch.nn.utils.prune`` refreshes the plain attribute only in a forward pre-hook, so after
    an optimiser step it is stale; the product is always current (and keeps autograd).
    """
    if hasattr(owner, param + "_orig") and hasattr(owner, param + "_mask"):
        return getattr(owner, param + "_orig") * getattr(owner, param + "_mask")
    return getattr(owner, param)


@dataclass
class RecurrentLayer:
    """A recurrent layer: ``size`` neurons at global indices ``offset`` to ``offset + size - 1``.

    ``owner.<params[key]>`` holds the layer's ``weight_ih``, ``weight_hh``, ``weight_td``,
    ``bias_ih`` and ``bias_hh`` (a key maps to None where the layer has no such tensor).
    """

    name: str
    size: int
    n_gates: int
    offset: int
    cell: str = ""
    owner: Optional[nn.Module] = field(default=None, repr=False)
    params: dict = field(default_factory=dict, repr=False)
    direction: int = 0  # 1 for the reverse direction of a bidirectional layer

    def arrays(self):
        """The layer's live weights and biases as float32 arrays (zeros for absent biases,
        None for an absent ``weight_td``), gate blocks in torch's order."""
        found = {}
        for key in ("weight_ih", "weight_hh", "weight_td", "bias_ih", "bias_hh"):
            param = self.params.get(key)
            if param is None:
                found[key] = (None if key == "weight_td"
                              else np.zeros(self.n_gates * self.size, dtype=np.float32))
            else:
                found[key] = (live_weight(self.owner, param).detach().cpu()
                              .to(torch.float32).numpy().copy())
        return found


@dataclass
class WeightTensor:
    """A prunable weight tensor and the neurons it connects.

    ``owner.<param>`` is the tensor; its rows are ``n_gates`` stacked blocks of ``dst`` units
    (``dst`` a layer index, or None for a read-out's outputs) and its columns are
    ``segments``, ``((layer index or None, size), ...)`` in order: the units of those layers
    (e.g. both directions of a bidirectional layer below), or features that are not hidden
    units (None: the net's input, or values concatenated beside the units).
    """

    name: str
    owner: nn.Module = field(repr=False)
    param: str
    kind: str
    segments: tuple
    dst: Optional[int]
    n_gates: int

    def sources(self):
        """``[(layer index or None, column slice), ...]``, one per segment."""
        out, start = [], 0
        for layer, size in self.segments:
            out.append((layer, slice(start, start + size)))
            start += size
        return out

    def hidden_sources(self):
        """:meth:`sources` of the segments that are hidden units."""
        return [(layer, cols) for layer, cols in self.sources() if layer is not None]

    @property
    def weight(self):
        """The effective weight (masked where pruned)."""
        return getattr(self.owner, self.param)

    def live(self):
        """The weight as training currently sees it (see :func:`live_weight`)."""
        return live_weight(self.owner, self.param)

    @property
    def is_pruned(self):
        return prune.is_pruned(self.owner) and hasattr(self.owner, self.param + "_mask")

    def strengths(self, unmasked=False):
        """Connection strengths ``(n_columns, n_dst)``: the RMS over gate blocks of
        ``W[g*n+j, i]``; ``unmasked``: of the weight before its mask (``<param>_orig``)."""
        w = (getattr(self.owner, self.param + "_orig") if unmasked and self.is_pruned
             else self.weight).detach().cpu().double()
        blocks = w.reshape(self.n_gates, w.shape[0] // self.n_gates, w.shape[1])
        return (torch.linalg.vector_norm(blocks, dim=0) / self.n_gates ** 0.5).T.numpy()

    def weight_mask(self, keep):
        """Weight-shaped float mask from a connection mask ``keep`` ``(n_src, n_dst)``, tiled over gates."""
        keep = torch.as_tensor(np.asarray(keep, dtype=bool).T)
        return keep.repeat(self.n_gates, 1).to(self.weight.dtype)


class NeuronGraph:
    """The neurons and connections of a net's recurrent layers.

    Built on the module's :class:`~latticeprune.dependency.Dependencies`
    (:func:`~latticeprune.dependency.dependencies_of`: its last trace, which the sparsifiers
    make on the training data, or one on the module's ``example_input``), the one account of
    which parameter entries produce and read each hidden unit.

    Parameters
    ----------
    net : torch.nn.Module or fitted skorch net
        Must contain at least one ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` or
        :class:`~latticeprune.nets.HierarchicalRNN` (no LSTM projections). Each direction of a
        bidirectional layer is a layer of neurons of its own.

    Attributes
    ----------
    layers : list of RecurrentLayer
        In the order the module registers them (bottom to top; forward before reverse).
    tensors : list of WeightTensor
        Every weight tensor touching a hidden neuron, inputs and read-outs included.
    dependencies : Dependencies
        What the trace found (norms reading units, units exposed as outputs, ...).
    n_neurons : int
        Hidden units over all layers.

    Examples
    --------
    >>> from latticeprune.nets import RecurrentNet
    >>> graph = NeuronGraph(RecurrentNet(input_size=3, output_size=2, hidden_size=5, cell="lstm"))
    >>> [t.kind for t in graph.tensors]
    ['input', 'recurrent', 'readout']
    >>> graph.strength_matrix().shape
    (5, 5)
    """

    def __init__(self, net):
        self.module = find_module(net)
        if getattr(self.module, "prediction_only", False):
            raise TypeError(
                f"{type(self.module).__name__} is the prediction-only form that to_inference() "
                "builds: it cannot be pruned, saved with save_weights or exported with "
                "export_onnx. Use the estimator it was built from (save() pickles this copy).")
        self.dependencies = dependencies_of(self.module)
        blocks = self.dependencies.blocks
        if not blocks:
            raise ValueError(f"{type(self.module).__name__} has no recurrent layers: expected "
                             "nn.RNN, nn.LSTM, nn.GRU or HierarchicalRNN inside the module.")
        offsets = np.concatenate([[0], np.cumsum([b.size for b in blocks])]).astype(int)
        self.layers = [RecurrentLayer(b.name, b.size, b.n_gates, int(offset), b.cell, b.owner,
                                      b.params, b.direction) for b, offset in zip(blocks, offsets)]
        self.tensors = [WeightTensor(r.path, r.owner, r.param, r.kind, r.segments, r.dst,
                                     r.n_gates) for r in self.dependencies.weights]
        self.n_neurons = int(offsets[-1])

    # -- reading -----------------------------------------------------------------------------
    def tensors_in(self, scope="recurrent"):
        """The weight tensors a pruning ``scope`` covers (``"recurrent"`` or ``"all"``)."""
        if scope not in SCOPES:
            raise ValueError(f"scope={scope!r} is not valid; valid choices are {list(SCOPES)}.")
        return [t for t in self.tensors if t.kind in SCOPES[scope]]

    def layer_slice(self, index):
        layer = self.layers[index]
        return slice(layer.offset, layer.offset + layer.size)

    def strength_matrix(self, kinds=HIDDEN_KINDS, unmasked=False):
        """Strengths between all hidden neurons ``(n_neurons, n_neurons)``, ``s[i, j]`` for ``i -> j``.

        Blocks come from the tensors of the given ``kinds`` (default: recurrent, feed-forward
        and top-down), so a stacked, bidirectional or hierarchical net is one graph;
        ``unmasked``: the weights before their pruning masks.
        """
        strength = np.zeros((self.n_neurons, self.n_neurons))
        for t in self.tensors:
            if t.kind in kinds and t.kind in HIDDEN_KINDS:
                values = t.strengths(unmasked)
                for layer, cols in t.hidden_sources():
                    strength[self.layer_slice(layer), self.layer_slice(t.dst)] = values[cols]
        return strength

    def layer_strengths(self, index):
        """Recurrent strengths of one layer ``(size, size)``."""
        sl = self.layer_slice(index)
        return self.strength_matrix(("recurrent",))[sl, sl]

    # -- masks -------------------------------------------------------------------------------
    def apply_masks(self, masks):
        """Prune with ``masks``: ``{tensor name: weight-shaped 0/1 tensor}``, through ``torch.nn.utils.prune``.

        A tensor pruned before keeps its old zeros (the masks multiply).
        """
        by_name = {t.name: t for t in self.tensors}
        unknown = set(masks) - set(by_name)
        if unknown:
            raise ValueError(f"Unknown weight tensors {sorted(unknown)}; known: {sorted(by_name)}.")
        for name, mask in masks.items():
            t = by_name[name]
            mask = torch.as_tensor(mask, dtype=t.weight.dtype, device=t.weight.device)
            if mask.shape != t.weight.shape:
                raise ValueError(f"Mask for {name} has shape {tuple(mask.shape)}, the weight "
                                 f"has {tuple(t.weight.shape)}.")
            prune.custom_from_mask(t.owner, t.param, mask)
        self.freeze()
        return self

    def masks(self):
        """Current weight masks of the pruned tensors, ``{name: bool tensor}``."""
        return {t.name: getattr(t.owner, t.param + "_mask").detach().bool().clone()
                for t in self.tensors if t.is_pruned}

    def remove_masks(self):
        """Make pruning permanent: drop the reparametrisation, keep the zeros in plain weights."""
        for t in self.tensors:
            if t.is_pruned:
                prune.remove(t.owner, t.param)
        refresh_flat_weights(self.module)
        return self

    def freeze(self):
        """Recompute the masked weights outside autograd, so the module can be copied or pickled.

        ``torch.nn.utils.prune`` leaves the masked weight as a non-leaf tensor after a training
        step, which ``copy.deepcopy`` refuses; the forward pre-hook recomputes it anyway.
        """
        with torch.no_grad():
            for t in self.tensors:
                if t.is_pruned:
                    setattr(t.owner, t.param, t.live())
        refresh_flat_weights(self.module)
        return self

    # -- reporting ---------------------------------------------------------------------------
    def sparsity(self, scope="recurrent"):
        """Zero entries / entries: ``{"overall": float, "per_tensor": {name: float}}``.

        ``per_tensor`` lists every tensor; ``overall`` counts the tensors in ``scope``.
        """
        per_tensor, zeros, total = {}, 0, 0
        scoped = {t.name for t in self.tensors_in(scope)}
        for t in self.tensors:
            w = t.weight.detach()
            n_zero = int((w == 0).sum())
            per_tensor[t.name] = n_zero / w.numel()
            if t.name in scoped:
                zeros += n_zero
                total += w.numel()
        return {"overall": zeros / total if total else 0.0, "per_tensor": per_tensor}


def module_masks(module):
    """The masks of every parameter of ``module`` pruned through ``torch.nn.utils.prune``,
    ``{qualified parameter name: bool tensor}`` (inside the neuron graph or not)."""
    return {f"{path}.{name}" if path else name: getattr(sub, name + "_mask").detach().bool().clone()
            for path, sub in module.named_modules()
            for name in [p[:-len("_orig")] for p, _ in sub.named_parameters(recurse=False)
                         if p.endswith("_orig")]
            if hasattr(sub, name + "_mask")}


def apply_module_masks(module, masks):
    """Prune the parameters of ``module`` named in ``masks`` (qualified names, as
    :func:`module_masks` gives them) through ``torch.nn.utils.prune``."""
    for qualified, mask in masks.items():
        path, _, name = qualified.rpartition(".")
        try:
            owner = module.get_submodule(path)
            weight = getattr(owner, name)
        except AttributeError:
            raise ValueError(f"{type(module).__name__} has no parameter {qualified!r} to mask."
                             ) from None
        mask = torch.as_tensor(mask, dtype=weight.dtype, device=weight.device)
        if mask.shape != weight.shape:
            raise ValueError(f"Mask for {qualified} has shape {tuple(mask.shape)}, the weight "
                             f"has {tuple(weight.shape)}.")
        prune.custom_from_mask(owner, name, mask)
    refresh_flat_weights(module)
    return module


def make_permanent(module):
    """Remove every ``torch.nn.utils.prune`` reparametrisation in ``module`` (any parameter,
    the masked zeros kept in plain parameters)."""
    for sub in module.modules():
        for name, _ in list(sub.named_parameters(recurse=False)):
            if name.endswith("_orig") and hasattr(sub, name[:-len("_orig")] + "_mask"):
                prune.remove(sub, name[:-len("_orig")])
    refresh_flat_weights(module)
    return module


def refresh_flat_weights(module):
    """Point torch RNN modules' cached flat weight list at the current (masked) tensors."""
    for sub in module.modules():
        if isinstance(sub, nn.RNNBase):
            sub._flat_weights = [getattr(sub, wn) if hasattr(sub, wn) else None
                                 for wn in sub._flat_weights_names]
