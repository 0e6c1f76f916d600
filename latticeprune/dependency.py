"""Which parameter entries produce and read each hidden unit: traced from a module's computation.

A *unit block* is one layer and direction of a recurrent module (``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU``, or a layer of :class:`~latticeprune.nets.HierarchicalRNN`); its units are
*produced* by gate rows of the layer's own ``weight_ih``, ``weight_hh`` (and ``weight_td``) and
biases, and *read* wherever their values go. Inside a recurrent module the wiring is torch's
(or ours): a layer's ``weight_hh`` columns read its own units, the next layer's ``weight_ih``
columns read ``[forward | reverse]`` units of the layer below, ``weight_td`` the layer above.
Outside, :func:`trace` follows the values: it runs the module once on an example input under a
``torch.overrides.TorchFunctionMode`` with the recurrent modules, ``nn.Linear``, the norms and
``nn.Embedding`` as leaves, and carries a *label* on every tensor holding hidden units (which
dimension lists them, and which blocks its segments belong to) through every torch op in
between: element-wise ops and dropout keep it, indexing and pooling over steps or batch move
it, ``cat`` along it concatenates, ``view`` / ``reshape`` / ``flatten`` follow it where the
dimension survives whole (or joins the rows of a final state ``h_n`` into one feature vector),
``pack_padded_sequence`` / ``pad_packed_sequence`` keep it. Where a label reaches an
``nn.Linear`` its columns are recorded as readers; an ``nn.LayerNorm`` / ``nn.BatchNorm1d``
records its entries (and a layer norm's statistics over the units, which removal changes);
another recurrent module records its input columns. An op that would mix the hidden dimension
with another, or that the rules do not know, raises ``ValueError`` naming the op, the module
it ran in and the units it saw.

Run-time tracing (not ``torch.fx``, not ``torch.export``): a module's ``forward`` is arbitrary
Python, and symbolic tracing fails on what user nets do daily (a branch on ``x.dim()``,
``pack_padded_sequence`` with ``enforce_sorted=False``), while ``torch.export`` decomposes the
recurrent modules themselves; running the code once on real tensors sees exactly the ops this
input takes. The price: a branch the example input does not take is not seen (a forward that
reads the units differently for other inputs must be traced on such an input).

Cost: one forward pass of the example (two samples suffice) plus a constant per op.
"""

import contextlib
import numbers
import weakref
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .nets import N_GATES, HierarchicalRNN, cell_of

__all__ = ["UnitBlock", "Reader", "Dependencies", "trace", "trace_net", "dependencies_of",
           "example_input", "to_json", "from_json", "READER_KINDS"]

#: The last trace of each module (weakly held: it goes with the module).
_TRACED = weakref.WeakKeyDictionary()

#: Kinds of reader: what a parameter's entries along its reading axis are.
READER_KINDS = ("input", "recurrent", "feedforward", "top_down", "readout", "norm")


@dataclass(frozen=True)
class UnitBlock:
    """One layer and direction of a recurrent module: ``size`` hidden units.

    ``owner.<params[key]>`` are the layer's ``weight_ih``, ``weight_hh``, ``weight_td``,
    ``bias_ih`` and ``bias_hh`` (keys absent where the layer has none); their rows, gate block
    after gate block, produce the units.
    """

    name: str
    path: str  # the recurrent module's qualified name
    layer: int
    direction: int
    size: int
    cell: str
    owner: nn.Module = field(repr=False, compare=False)
    params: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_gates(self):
        return N_GATES[self.cell]


@dataclass(frozen=True)
class Reader:
    """Entries of ``owner.<param>`` along ``axis`` that read units: ``segments`` are ``(block
    index or None, size)`` in order along that axis (None: features that are not hidden units,
    such as the net's input). ``dst`` is the block whose rows the weight produces (recurrent
    weights), None for a read-out or a norm; ``kind`` one of :data:`READER_KINDS`."""

    path: str
    owner: nn.Module = field(repr=False, compare=False)
    param: str
    axis: int
    segments: tuple
    kind: str
    dst: Optional[int] = None
    n_gates: int = 1

    @property
    def blocks(self):
        """The unit blocks among the segments."""
        return tuple(b for b, _ in self.segments if b is not None)


@dataclass
class Dependencies:
    """What :func:`trace` found.

    Attributes
    ----------
    blocks : list of UnitBlock
        In the order the module registers its recurrent modules (bottom to top within one).
    weights : list of Reader
        Every weight matrix that touches hidden units: each layer's ``weight_ih`` and
        ``weight_hh`` (and, for a top-down net after all layers, ``weight_td``), then the
        ``nn.Linear`` weights that read units; columns as segments, rows produce ``dst``.
    norms : list of Reader
        ``nn.LayerNorm`` / ``nn.BatchNorm1d`` reading units: their per-feature entries.
    layer_norms : dict
        ``{path: segments}`` of the ``nn.LayerNorm`` modules reading units (their statistics run
        over the units; with or without entries of their own).
    exposed : tuple of int
        Blocks whose units reach the module's output without a read-out.
    initial_state : set of str
        Paths of recurrent modules the forward passes an initial state (``hx``), whose shape it
        builds itself.
    coupled : list of tuple of int
        Blocks whose unit counts must stay equal: the layers and directions of one torch
        module (one ``hidden_size``).
    complete : bool
        Whether the module's computation was traced (False: only the recurrent modules' own
        wiring is known, see :func:`dependencies_of`).
    packed : bool
        Whether the forward packs its sequences (``pack_padded_sequence``).
    whole_state : set of str
        Paths of recurrent modules whose final state (``h_n``) the forward reads as one
        tensor (its rows joined or returned), so their layers keep one size.
    example : tuple
        The positional arguments the trace ran on (empty if not traced).
    """

    blocks: list
    weights: list
    norms: list = field(default_factory=list)
    layer_norms: dict = field(default_factory=dict)
    exposed: tuple = ()
    initial_state: set = field(default_factory=set)
    coupled: list = field(default_factory=list)
    complete: bool = True
    packed: bool = False
    whole_state: set = field(default_factory=set)
    example: tuple = field(default=(), repr=False)

    def block_names(self, indices):
        return ", ".join(self.blocks[i].name for i in indices)


# -- labels: where a tensor holds hidden units -----------------------------------------------
@dataclass(frozen=True)
class _Units:
    """Dimension ``dim`` of a tensor lists units: ``segments`` ``((block or None, size), ..)``."""

    dim: int
    segments: tuple

    @property
    def blocks(self):
        return tuple(b for b, _ in self.segments if b is not None)


@dataclass(frozen=True)
class _Rows:
    """A final state ``h_n`` / ``c_n``: dimension ``row_dim`` indexes (layer, direction) rows,
    row ``r`` holding the units of ``rows[r]`` along dimension ``dim``."""

    row_dim: int
    dim: int
    rows: tuple

    @property
    def blocks(self):
        return tuple(self.rows)


class _Untraceable(ValueError):
    pass


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


#: Modules that keep a tensor's layout, element by element (or drop entries at random).
_PASS_MODULES = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity, nn.ReLU, nn.ReLU6,
                 nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
                 nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign,
                 nn.Tanhshrink)
#: Functions and methods that keep a tensor's layout (the unary element-wise ops, copies,
#: conversions). Names as torch reports them; a trailing ``_`` (in place) is stripped.
_PASS_FUNCTIONS = {
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "tanh",
    "sigmoid", "hardtanh", "hardswish", "hardsigmoid", "softsign", "tanhshrink", "softplus",
    "logsigmoid", "dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "abs",
    "neg", "negative", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "square", "sin", "cos",
    "sign", "clamp", "clip", "clamp_min", "clamp_max", "nan_to_num", "clone", "contiguous",
    "detach", "float", "double", "half", "bfloat16", "to", "type", "type_as", "cpu", "cuda",
    "requires_grad", "__neg__", "__pos__", "__abs__", "reciprocal", "erf", "round", "floor",
    "ceil", "trunc", "frac", "pow", "__pow__", "fill", "zero", "masked_fill", "threshold",
    "hardshrink", "softshrink", "rrelu",
}
#: Element-wise ops of two operands (and ``where``'s three).
_BINARY_FUNCTIONS = {
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "maximum",
    "minimum", "fmax", "fmin", "rsub", "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__",
    "__isub__", "__mul__", "__rmul__", "__imul__", "__truediv__", "__rtruediv__",
    "__itruediv__", "where", "addcmul", "addcdiv", "lerp", "__and__", "__or__", "eq", "ne",
    "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "atan2", "hypot", "remainder", "fmod",
}
#: Reductions over given dimensions (never over the units).
_REDUCTIONS = {"mean", "sum", "nansum", "nanmean", "max", "min", "amax", "amin", "prod",
               "logsumexp", "std", "var", "median", "nanmedian", "argmax", "argmin",
               "all", "any", "cumsum", "cumprod", "softmax", "log_softmax"}
#: Ops whose result holds no tensor of values (sizes, flags): nothing to follow.
_INERT = {"size", "dim", "numel", "__len__", "__get__", "is_floating_point", "is_contiguous",
          "data_ptr", "stride", "element_size", "nelement", "ndimension", "__bool__",
          "__index__", "__int__", "__float__", "item", "tolist", "numpy", "__format__",
          "__repr__", "__setitem__", "storage_offset", "is_complex", "has_names",
          "_is_view", "get_device", "__iter__", "__hash__", "__reduce_ex__", "backward",
          "untyped_storage", "unsafe_chunk_noop"}


def _name(func):
    name = getattr(func, "__name__", str(func))
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def _tensors(obj):
    """The tensors inside nested lists / tuples / dicts (PackedSequence is a tuple)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class _Tracer(TorchFunctionMode):
    """Carries unit labels through one call of ``root`` (see the module docstring)."""

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.paths = {id(m): name for name, m in root.named_modules()}
        self.labels = {}  # id(tensor) -> label
        self.keep = []  # the labelled tensors, so that ids stay unique while tracing
        self.blocks, self.weights, self.norms = [], [], []
        self.layer_norms, self.initial_state = {}, set()
        self.block_of = {}  # (id(recurrent module), layer, direction) -> block index
        self.readers = {}  # (path, param) -> Reader, to check repeated calls agree
        self.stack = []  # paths of the modules being run
        self.leaf_depth = 0
        self.root_calls = 0
        self.packed = False
        self.whole_state = set()  # recurrent modules whose final state is read as one tensor
        self._register_blocks()

    # -- blocks ------------------------------------------------------------------------------
    def _register_blocks(self):
        for name, sub in self.root.named_modules():
            if isinstance(sub, nn.RNNBase):
                if getattr(sub, "proj_size", 0):
                    raise ValueError(f"{name or 'module'}: LSTMs with proj_size > 0 are not "
                                     f"supported (proj_size={sub.proj_size}).")
                keys = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if sub.bias else ())
                for layer in range(sub.num_layers):
                    for direction in range(2 if sub.bidirectional else 1):
                        suffix = f"l{layer}" + ("_reverse" if direction else "")
                        self._add_block(sub, name, layer, direction, sub.hidden_size,
                                        cell_of(sub), {key: f"{key}_{suffix}" for key in keys},
                                        _join(name, suffix))
            elif isinstance(sub, HierarchicalRNN):
                for k, layer in enumerate(sub.layers):
                    params = {key: key for key in ("weight_ih", "weight_hh", "weight_td",
                                                   "bias_ih", "bias_hh")
                              if getattr(layer, key) is not None}
                    self._add_block(sub, name, k, 0, layer.hidden_size, layer.cell, params,
                                    _join(name, f"layers.{k}"), owner=layer)

    def _add_block(self, module, path, layer, direction, size, cell, params, name, owner=None):
        self.block_of[(id(module), layer, direction)] = len(self.blocks)
        self.blocks.append(UnitBlock(name, path, layer, direction, size, cell,
                                     owner if owner is not None else module, params))

    # -- labels ------------------------------------------------------------------------------
    def label(self, tensor):
        return self.labels.get(id(tensor)) if isinstance(tensor, torch.Tensor) else None

    def set_label(self, tensor, label):
        if isinstance(tensor, torch.Tensor) and label is not None:
            self.labels[id(tensor)] = label
            self.keep.append(tensor)

    def where(self):
        return self.stack[-1] if self.stack and self.stack[-1] else type(self.root).__name__

    def fail(self, what, label=None, shape=None):
        units = ""
        if label is not None:
            names = ", ".join(dict.fromkeys(self.blocks[b].name for b in label.blocks))
            units = f" (the hidden units of {names}"
            units += f", dimension {label.dim} of a tensor of shape {tuple(shape)})" \
                if shape is not None else ")"
        raise _Untraceable(f"{what} in {self.where()}{units}: latticeprune cannot follow the "
                           "hidden units through it, so it cannot tell which entries read them.")

    # -- readers -----------------------------------------------------------------------------
    def add_reader(self, reader, into):
        key = (reader.path, reader.param)
        known = self.readers.get(key)
        if known is not None:
            if known.segments != reader.segments:
                self.fail(f"{reader.path}.{reader.param} is called twice on different units")
            return
        self.readers[key] = reader
        into.append(reader)

    def segments_of(self, x, size):
        """Segments of the last dimension of input ``x`` (``size`` features)."""
        label = self.label(x)
        if label is None:
            return ((None, size),)
        if isinstance(label, _Rows) or label.dim != x.dim() - 1:
            self.fail("a module reads a tensor whose last dimension is not its features", label,
                      x.shape)
        return label.segments

    # -- module hooks ------------------------------------------------------------------------
    def pre_hook(self, module, args, kwargs):
        path = self.paths.get(id(module), "")
        self.stack.append(path)
        if module is self.root:
            self.root_calls += 1
        if self.leaf_depth or self.root_calls != 1:
            if self._is_leaf(module):
                self.leaf_depth += 1
            return None
        if self._is_leaf(module):
            self._enter_leaf(module, path, args, kwargs)
            self.leaf_depth += 1
        return None

    def post_hook(self, module, args, kwargs, output):
        path = self.stack.pop()
        if self._is_leaf(module):
            self.leaf_depth -= 1
            if not self.leaf_depth and self.root_calls == 1:
                self._leave_leaf(module, path, args, kwargs, output)
        return None

    @staticmethod
    def _is_leaf(module):
        return isinstance(module, (nn.RNNBase, HierarchicalRNN, nn.Linear, nn.LayerNorm,
                                   nn.BatchNorm1d, nn.Embedding, *_PASS_MODULES))

    def _enter_leaf(self, module, path, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(module, nn.RNNBase):
            data = x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x
            segments = self.segments_of(data, module.input_size)
            if (len(args) > 1 and args[1] is not None) or kwargs.get("hx") is not None:
                self.initial_state.add(path)
            for direction in range(2 if module.bidirectional else 1):
                dst = self.block_of[(id(module), 0, direction)]
                self._rnn_weights(module, path, dst, segments)
        elif isinstance(module, HierarchicalRNN):
            self._hierarchical_weights(module, path, self.segments_of(x, module.input_size))
        elif isinstance(module, nn.Linear):
            label = self.label(x)
            if label is not None and label.dim == x.dim() - 1 and isinstance(label, _Units):
                self.add_reader(Reader(_join(path, "weight"), module, "weight", 1,
                                       label.segments, "readout"), self.weights)
            elif label is not None and isinstance(label, _Rows):
                self.fail(f"{type(module).__name__} reads a stacked final state as it is", label,
                          x.shape)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            label = self.label(x)
            if label is None:
                return
            axis = x.dim() - 1 if isinstance(module, nn.LayerNorm) else 1
            if isinstance(label, _Rows) or label.dim != axis or (
                    isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1):
                self.fail(f"{type(module).__name__} normalises over more than the units", label,
                          x.shape)
            names = [n for n in ("weight", "bias", "running_mean", "running_var")
                     if getattr(module, n, None) is not None]
            for name in names:
                self.add_reader(Reader(_join(path, name), module, name, 0, label.segments,
                                       "norm"), self.norms)
            if isinstance(module, nn.LayerNorm):
                self.layer_norms[path] = label.segments
        elif isinstance(module, nn.Embedding):
            if self.label(x) is not None:
                self.fail("nn.Embedding reads hidden units as token ids", self.label(x), x.shape)

    def _rnn_weights(self, module, path, dst, input_segments):
        """The weights of torch module ``module`` producing block ``dst`` and those of every
        layer above it (their inputs are the layer below, both directions)."""
        block = self.blocks[dst]
        suffix = block.params["weight_ih"].split("weight_ih_")[1]
        directions = 2 if module.bidirectional else 1
        below = input_segments if block.layer == 0 else tuple(
            (self.block_of[(id(module), block.layer - 1, d)], module.hidden_size)
            for d in range(directions))
        self.add_reader(Reader(_join(path, f"weight_ih_{suffix}"), module,
                               f"weight_ih_{suffix}", 1, below,
                               "input" if all(b is None for b, _ in below)
                               else "feedforward", dst, block.n_gates), self.weights)
        self.add_reader(Reader(_join(path, f"weight_hh_{suffix}"), module, f"weight_hh_{suffix}",
                               1, ((dst, block.size),), "recurrent", dst, block.n_gates),
                        self.weights)
        if block.layer + 1 < module.num_layers:
            self._rnn_weights(module, path,
                              self.block_of[(id(module), block.layer + 1, block.direction)], ())

    def _hierarchical_weights(self, module, path, input_segments):
        first = self.block_of[(id(module), 0, 0)]
        for k, layer in enumerate(module.layers):
            dst, prefix = first + k, _join(path, f"layers.{k}")
            below = input_segments if k == 0 else ((dst - 1, module.layers[k - 1].hidden_size),)
            kind = ("input" if all(b is None for b, _ in below) else "feedforward")
            self.add_reader(Reader(_join(prefix, "weight_ih"), layer, "weight_ih", 1, below,
                                   kind, dst, layer.n_gates), self.weights)
            self.add_reader(Reader(_join(prefix, "weight_hh"), layer, "weight_hh", 1,
                                   ((dst, layer.hidden_size),), "recurrent", dst, layer.n_gates),
                            self.weights)
        for k, layer in enumerate(module.layers):
            if layer.weight_td is not None:
                dst, prefix = first + k, _join(path, f"layers.{k}")
                self.add_reader(Reader(_join(prefix, "weight_td"), layer, "weight_td", 1,
                                       ((dst + 1, module.layers[k + 1].hidden_size),),
                                       "top_down", dst, layer.n_gates), self.weights)

    def _leave_leaf(self, module, path, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(module, nn.RNNBase):
            top, directions = module.num_layers - 1, 2 if module.bidirectional else 1
            segments = tuple((self.block_of[(id(module), top, d)], module.hidden_size)
                             for d in range(directions))
            out, state = output
            data = out.data if isinstance(out, nn.utils.rnn.PackedSequence) else out
            self.set_label(data, _Units(data.dim() - 1, segments))
            rows = tuple(self.block_of[(id(module), layer, d)]
                         for layer in range(module.num_layers) for d in range(directions))
            for s in (state if isinstance(state, tuple) else (state,)):
                self.set_label(s, _Rows(0, s.dim() - 1, rows))
        elif isinstance(module, HierarchicalRNN):
            top = self.block_of[(id(module), 0, 0)] + len(module.layers) - 1
            segments = ((top, module.layers[-1].hidden_size),)
            for o in output:
                if isinstance(o, torch.Tensor):
                    self.set_label(o, _Units(o.dim() - 1, segments))
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, *_PASS_MODULES)):
            self.set_label(output, self.label(x))
        elif isinstance(module, nn.Linear):
            label = self.label(x)
            if label is not None and label.dim != x.dim() - 1:  # it maps another dimension
                self.set_label(output, label)

    # -- torch functions ---------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.leaf_depth or self.root_calls != 1 or not self.stack:
            return result
        if _name(func) == "_pack_padded_sequence":
            self.packed = True
        labelled = [t for t in _tensors((args, kwargs)) if self.label(t) is not None]
        if not labelled:
            return result
        name = _name(func)
        if name in _INERT or not any(True for _ in _tensors(result)):
            return result
        self._follow(name, args, kwargs, result, labelled)
        return result

    def _follow(self, name, args, kwargs, result, labelled):
        first = labelled[0]
        label = self.label(first)
        if name in _PASS_FUNCTIONS:
            if self.label(args[0] if args else None) is not label:
                self.fail(f"{name} with the units in an argument other than the first", label,
                          first.shape)
            self.set_label(result, label)
        elif name in _BINARY_FUNCTIONS:
            self.set_label(result, self._broadcast(name, args, result, labelled))
        elif name in _REDUCTIONS:
            self._reduce(name, args, kwargs, result, label, first)
        elif name == "__getitem__":
            self.set_label(result, self._index(args[0], args[1], result, label))
        elif name in ("cat", "concat", "concatenate"):
            self.set_label(result, self._cat(args, kwargs, result))
        elif name == "stack":
            self._stack(args, kwargs, result)
        elif name in ("transpose", "swapaxes", "swapdims", "permute", "t", "movedim",
                      "moveaxis", "unsqueeze", "squeeze", "view", "reshape", "flatten",
                      "unflatten", "view_as", "reshape_as", "expand", "expand_as",
                      "broadcast_to", "flip", "roll", "narrow", "select", "index_select",
                      "gather", "repeat", "tile", "repeat_interleave"):
            self.set_label(result, self._reshape(name, args, result, label, first))
        elif name in ("unbind", "split", "chunk", "tensor_split"):
            self._split(name, args, kwargs, result, label, first)
        elif name == "_pack_padded_sequence":
            self._require_last(name, label, first)
            self.set_label(result[0], _Units(result[0].dim() - 1, label.segments))
        elif name == "_pad_packed_sequence":
            self._require_last(name, label, first)
            self.set_label(result[0], _Units(result[0].dim() - 1, label.segments))
        elif name == "linear":
            self.fail("nn.functional.linear on a tensor that is not a module's parameter",
                      label, first.shape)
        else:
            self.fail(f"torch op '{name}'", label, first.shape)

    def _require_last(self, name, label, tensor):
        if not isinstance(label, _Units) or label.dim != tensor.dim() - 1:
            self.fail(f"{name} of a tensor whose last dimension is not the units", label,
                      tensor.shape)

    def _broadcast(self, name, args, result, labelled):
        """The label of an element-wise result: every labelled operand aligned (from the
        right) with the result the same way; unlabelled tensor operands of size 1 there."""
        out = None
        for t in labelled:
            label = self.label(t)
            shifted = _shift(label, result.dim() - t.dim())
            if out is not None and shifted != out:
                self.fail(f"'{name}' of tensors holding different units", label, t.shape)
            out = shifted
        for t in _tensors(args):
            if self.label(t) is None and t.dim() > 0:
                dims = [out.dim] if isinstance(out, _Units) else [out.dim, out.row_dim]
                for dim in dims:
                    at = dim - (result.dim() - t.dim())
                    if at >= 0 and t.shape[at] != 1:
                        self.fail(f"'{name}' with a tensor that has one value per unit "
                                  "(its entries would need removing too)", out, result.shape)
        return out

    def _reduce(self, name, args, kwargs, result, label, tensor):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if isinstance(dim, (list, tuple)):
            dims = [d % tensor.dim() for d in dim]
        elif isinstance(dim, numbers.Integral):
            dims = [dim % tensor.dim()]
        else:
            self.fail(f"'{name}' over every dimension", label, tensor.shape)
        unit_dims = [label.dim] + ([label.row_dim] if isinstance(label, _Rows) else [])
        if any(d in unit_dims for d in dims):
            self.fail(f"'{name}' over the units", label, tensor.shape)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 and isinstance(
            args[2], bool) else False)
        out = label if keepdim or name in ("cumsum", "cumprod", "softmax", "log_softmax") \
            else _drop(label, dims)
        for t in _tensors(result):
            self.set_label(t, out)

    def _index(self, tensor, index, result, label):
        items = list(index) if isinstance(index, tuple) else [index]
        real = sum(1 for i in items if i is not None and i is not Ellipsis)
        at = next((k for k, i in enumerate(items) if i is Ellipsis), None)
        if at is not None:
            items[at:at + 1] = [slice(None)] * (tensor.dim() - real)
        items += [slice(None)] * (tensor.dim() - sum(1 for i in items if i is not None))
        plan, kept, advanced, out = {}, {}, [], 0
        dim = 0
        for item in items:
            if item is None:
                out += 1
                continue
            if isinstance(item, slice):
                plan[dim], kept[dim] = item, out
                out += 1
            elif isinstance(item, numbers.Integral) or (
                    isinstance(item, torch.Tensor) and item.dim() == 0
                    and not item.dtype.is_floating_point and item.dtype != torch.bool):
                plan[dim] = int(item)
            else:
                plan[dim] = "advanced"
                advanced.append((dim, torch.as_tensor(item).shape))
            dim += 1
        if advanced:  # torch's rule: in place if consecutive, else first
            shape = torch.broadcast_shapes(*[s for _, s in advanced])
            dims = [d for d, _ in advanced]
            consecutive = dims == list(range(dims[0], dims[-1] + 1))
            kept = {d: o + len(shape) if not consecutive or d > dims[-1] else o
                    for d, o in kept.items()}
        units = plan[label.dim]
        if units == "advanced" or isinstance(units, int):
            self.fail("indexing single units", label, tensor.shape)
        if slice(*units.indices(tensor.shape[label.dim])) != slice(0, tensor.shape[label.dim], 1):
            self.fail("indexing a subset of the units", label, tensor.shape)
        if isinstance(label, _Units):
            return _Units(kept[label.dim], label.segments)
        rows = plan[label.row_dim]
        size = tensor.shape[label.dim]
        if isinstance(rows, int):
            return _Units(kept[label.dim], ((label.rows[rows], size),))
        if isinstance(rows, slice):
            picked = tuple(label.rows[k] for k in range(*rows.indices(len(label.rows))))
            return _Rows(kept[label.row_dim], kept[label.dim], picked)
        self.fail("indexing the rows of a final state with an index tensor", label,
                  tensor.shape)

    def _cat(self, args, kwargs, result):
        tensors = list(args[0])
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % result.dim()
        labels = [self.label(t) for t in tensors]
        if any(isinstance(lab, _Rows) for lab in labels):
            self.fail("cat of stacked final states", next(lab for lab in labels if lab),
                      result.shape)
        if all(lab is None or lab.dim != dim for lab in labels):
            known = [lab for lab in labels if lab is not None]
            if len(known) != len(labels) or len(set(known)) != 1:
                self.fail("cat of tensors holding different units (or units and other "
                          "values) along another dimension", known[0], result.shape)
            return known[0]
        segments = []
        for t, lab in zip(tensors, labels):
            if lab is None:
                segments.append((None, t.shape[dim]))
            elif lab.dim != dim:
                self.fail("cat along the units of one tensor and another dimension of the "
                          "next", lab, t.shape)
            else:
                segments.extend(lab.segments)
        return _Units(dim, tuple(segments))

    def _stack(self, args, kwargs, result):
        tensors = list(args[0])
        labels = [self.label(t) for t in tensors]
        if len(set(labels)) != 1 or labels[0] is None:
            self.fail("stack of tensors holding different units", next(
                lab for lab in labels if lab), result.shape)
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % result.dim()
        self.set_label(result, _insert(labels[0], dim))

    def _split(self, name, args, kwargs, result, label, tensor):
        if name == "unbind":
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % tensor.dim()
        else:
            dim = kwargs.get("dim", args[2] if len(args) > 2 else 0) % tensor.dim()
        if isinstance(label, _Rows) and dim == label.row_dim and name == "unbind":
            size = tensor.shape[label.dim]  # one state per row: its block's units
            for row, part in zip(label.rows, result):
                self.set_label(part, _Units(_drop(label, [dim]).dim, ((row, size),)))
            return
        if dim == label.dim or (isinstance(label, _Rows) and dim == label.row_dim):
            self.fail(f"'{name}' along the units", label, tensor.shape)
        for part in result:
            self.set_label(part, _drop(label, [dim]) if name == "unbind" else label)

    def _reshape(self, name, args, result, label, tensor):
        if name in ("narrow", "select", "index_select", "gather", "flip", "roll", "repeat",
                    "tile", "repeat_interleave"):
            dims = _op_dims(name, args, tensor)
            unit_dims = [label.dim] + ([label.row_dim] if isinstance(label, _Rows) else [])
            if any(d in unit_dims for d in dims) or dims is None:
                self.fail(f"'{name}' along the units", label, tensor.shape)
            return _drop(label, dims) if name == "select" else label
        return _follow_shape(self, name, label, tensor.shape, result.shape, args)


def _shift(label, by):
    if isinstance(label, _Units):
        return replace(label, dim=label.dim + by)
    return replace(label, dim=label.dim + by, row_dim=label.row_dim + by)


def _drop(label, dims):
    """The label after dimensions ``dims`` (none of the units') are removed."""
    def move(d):
        return d - sum(1 for x in dims if x < d)
    if isinstance(label, _Units):
        return _Units(move(label.dim), label.segments)
    return _Rows(move(label.row_dim), move(label.dim), label.rows)


def _insert(label, dim):
    def move(d):
        return d + 1 if d >= dim else d
    if isinstance(label, _Units):
        return _Units(move(label.dim), label.segments)
    return _Rows(move(label.row_dim), move(label.dim), label.rows)


def _op_dims(name, args, tensor):
    """The dimension(s) an indexing-like op acts on, or None if unknown."""
    if name in ("flip",):
        return [d % tensor.dim() for d in args[1]]
    if name in ("roll",):
        return None if len(args) < 3 else [d % tensor.dim() for d in (
            args[2] if isinstance(args[2], (list, tuple)) else [args[2]])]
    if name in ("repeat", "tile"):
        reps = args[1:] if not isinstance(args[1], (list, tuple)) else args[1]
        offset = len(reps) - tensor.dim()
        return [d - offset for d, r in enumerate(reps) if r != 1]
    if name == "repeat_interleave":
        return None if len(args) < 3 else [args[2] % tensor.dim()]
    return [args[1] % tensor.dim()]


def _follow_shape(tracer, name, label, shape_in, shape_out, args):
    """The label after a transposition or a view from ``shape_in`` to ``shape_out``."""
    ndim_in, ndim_out = len(shape_in), len(shape_out)
    if name in ("transpose", "swapaxes", "swapdims", "t", "permute", "movedim", "moveaxis"):
        if name == "t":
            order = list(range(ndim_in))[::-1]
        elif name == "permute":
            dims = args[1:] if not isinstance(args[1], (list, tuple)) else args[1]
            order = [d % ndim_in for d in dims]
        elif name in ("movedim", "moveaxis"):
            src = [s % ndim_in for s in (args[1] if isinstance(args[1], (list, tuple))
                                         else [args[1]])]
            dst = [d % ndim_in for d in (args[2] if isinstance(args[2], (list, tuple))
                                         else [args[2]])]
            rest = [d for d in range(ndim_in) if d not in src]
            order = [None] * ndim_in
            for s, d in zip(src, dst):
                order[d] = s
            fill = iter(rest)
            order = [o if o is not None else next(fill) for o in order]
        else:
            a, b = args[1] % ndim_in, args[2] % ndim_in
            order = list(range(ndim_in))
            order[a], order[b] = order[b], order[a]
        where = {src: dst for dst, src in enumerate(order)}
        if isinstance(label, _Units):
            return _Units(where[label.dim], label.segments)
        return _Rows(where[label.row_dim], where[label.dim], label.rows)
    if name in ("expand", "expand_as", "broadcast_to"):
        return _shift(label, ndim_out - ndim_in)
    groups = _view_groups(list(shape_in), list(shape_out))
    if groups is None:
        tracer.fail(f"'{name}' from {tuple(shape_in)} to {tuple(shape_out)}", label, shape_in)

    def group(dim):
        return next(g for g in groups if dim in g[0])

    def sole(dims, shape):
        big = [d for d in dims if shape[d] != 1]
        return big[0] if len(big) == 1 else None

    ins, outs = group(label.dim)
    out = sole(outs, shape_out)
    if isinstance(label, _Units):
        if sole(ins, shape_in) == label.dim and out is not None:
            return _Units(out, label.segments)
    elif group(label.row_dim) is not (ins, outs) and sole(ins, shape_in) == label.dim \
            and out is not None:
        row_ins, row_outs = group(label.row_dim)
        if len(label.rows) == 1:  # one row: the state of one layer and direction
            return _Units(out, ((label.rows[0], shape_in[label.dim]),))
        row_out = sole(row_outs, shape_out)
        if sole(row_ins, shape_in) == label.row_dim and row_out is not None:
            return _Rows(row_out, out, label.rows)
    elif ([d for d in ins if shape_in[d] != 1] == [label.row_dim, label.dim]
          and out is not None):
        # h_n's rows joined into one feature vector: the rows' units, in row order; the
        # state is read as one tensor, so its rows keep one size
        tracer.whole_state.update(tracer.blocks[b].path for b in label.rows)
        return _Units(out, tuple((block, shape_in[label.dim]) for block in label.rows))
    tracer.fail(f"'{name}' from {tuple(shape_in)} to {tuple(shape_out)} mixes the units' "
                "dimension with another", label, shape_in)


def _view_groups(shape_in, shape_out):
    """Matching groups of dimensions ``[(in dims, out dims), ...]`` of a view (equal products),
    or None if the element counts differ."""
    groups, i, j = [], 0, 0
    while i < len(shape_in) or j < len(shape_out):
        ins, outs = [], []
        pin = pout = 1
        if i < len(shape_in):
            ins.append(i)
            pin *= shape_in[i]
            i += 1
        if j < len(shape_out):
            outs.append(j)
            pout *= shape_out[j]
            j += 1
        while pin != pout:
            if pin < pout and i < len(shape_in):
                ins.append(i)
                pin *= shape_in[i]
                i += 1
            elif pout < pin and j < len(shape_out):
                outs.append(j)
                pout *= shape_out[j]
                j += 1
            else:
                return None
        groups.append((ins, outs))
    return groups


# -- entry points ----------------------------------------------------------------------------
def trace(module, *args, **kwargs):
    """The :class:`Dependencies` of ``module``, traced from one call ``module(*args,
    **kwargs)`` (an example input: two samples suffice; they are run in evaluation mode without
    gradients; the module's training flags and torch's random generator are restored).

    Raises ``ValueError`` naming the op and module path where the hidden units cannot be
    followed, and for LSTMs with projections.
    """
    tracer = _Tracer(module)
    handles, modes = [], {m: m.training for m in module.modules()}
    for sub in module.modules():
        handles.append(sub.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
        handles.append(sub.register_forward_hook(tracer.post_hook, with_kwargs=True))
    try:
        module.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), tracer:
            output = module(*args, **kwargs)
    except _Untraceable as error:
        raise ValueError(str(error)) from None
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    exposed = tuple(dict.fromkeys(b for t in _tensors(output) if tracer.label(t) is not None
                                  for b in tracer.label(t).blocks))
    result = _result(tracer, exposed, complete=True)
    result.packed = tracer.packed
    result.whole_state = tracer.whole_state | {tracer.blocks[b].path for b in exposed}
    result.example = tuple(a.detach().clone() if isinstance(a, torch.Tensor) else a
                           for a in args)
    _TRACED[module] = result
    return result


def _result(tracer, exposed, complete):
    coupled = {}
    for index, block in enumerate(tracer.blocks):
        if isinstance(block.owner, nn.RNNBase):
            coupled.setdefault(block.path, []).append(index)
    weights = sorted(tracer.weights, key=lambda r: _weight_order(tracer.blocks, r))
    return Dependencies(tracer.blocks, weights, tracer.norms, tracer.layer_norms, exposed,
                        tracer.initial_state,
                        [tuple(group) for group in coupled.values() if len(group) > 1],
                        complete)


def _weight_order(blocks, reader):
    """Each layer's ``weight_ih``, ``weight_hh`` (blocks in order), then ``weight_td``, then
    read-outs in the order they were met."""
    if reader.kind == "readout":
        return (2, 0, 0)
    if reader.kind == "top_down":
        return (1, reader.dst, 0)
    return (0, reader.dst, 0 if reader.param.startswith("weight_ih") else 1)


def to_json(deps):
    """``deps`` as JSON data (module paths, parameter names, segments): what
    :func:`from_json` reads back for a module of the same structure, whatever its sizes."""
    def reader(r):
        return {"path": r.path, "param": r.param, "axis": r.axis, "kind": r.kind,
                "dst": r.dst, "n_gates": r.n_gates, "segments": [list(s) for s in r.segments]}
    return {"blocks": [[b.path, b.layer, b.direction] for b in deps.blocks],
            "weights": [reader(r) for r in deps.weights],
            "norms": [reader(r) for r in deps.norms],
            "layer_norms": {path: [list(s) for s in segments]
                            for path, segments in deps.layer_norms.items()},
            "exposed": list(deps.exposed), "initial_state": sorted(deps.initial_state),
            "packed": deps.packed, "whole_state": sorted(deps.whole_state)}


def from_json(module, data):
    """The :class:`Dependencies` that :func:`to_json` wrote, for ``module`` (the blocks' sizes
    its own), remembered as its trace. ``ValueError`` if its recurrent layers differ."""
    tracer = _Tracer(module)
    found = [[b.path, b.layer, b.direction] for b in tracer.blocks]
    if found != data["blocks"]:
        raise ValueError(f"The saved wiring lists the recurrent layers {data['blocks']}; "
                         f"{type(module).__name__} has {found}.")

    def segments(saved):
        return tuple((b, tracer.blocks[b].size if b is not None else size) for b, size in saved)

    def reader(r):
        owner = module.get_submodule(r["path"][:-len(r["param"])].rstrip("."))
        return Reader(r["path"], owner, r["param"], r["axis"], segments(r["segments"]),
                      r["kind"], r["dst"], r["n_gates"])
    tracer.weights = [reader(r) for r in data["weights"]]
    tracer.norms = [reader(r) for r in data["norms"]]
    tracer.layer_norms = {path: segments(s) for path, s in data["layer_norms"].items()}
    tracer.initial_state = set(data["initial_state"])
    result = _result(tracer, tuple(data["exposed"]), complete=True)
    result.packed, result.whole_state = data["packed"], set(data.get("whole_state", ()))
    _TRACED[module] = result
    return result


def example_input(module):
    """A tiny input ``module`` can be called on, or None: ``module.example_input()`` where the
    module defines it (latticeprune's nets do; a user's module may), zeros of one sample and
    two steps for a bare recurrent module."""
    if callable(getattr(module, "example_input", None)):
        return module.example_input()
    if isinstance(module, (nn.RNNBase, HierarchicalRNN)):
        shape = (1, 2, module.input_size) if getattr(module, "batch_first", True) else (
            2, 1, module.input_size)
        param = next(module.parameters(), None)
        return torch.zeros(shape, dtype=param.dtype if param is not None else None)
    return None


def dependencies_of(module):
    """The :class:`Dependencies` of ``module``: its last :func:`trace` in this process, else a
    trace on :func:`example_input`, else (with ``complete=False``) only what the recurrent
    modules themselves wire (their first layers' inputs taken as the net's input, no
    read-outs)."""
    known = _TRACED.get(module)
    if known is not None:
        return known
    x = example_input(module)
    if x is not None:
        return trace(module, *(x if isinstance(x, tuple) else (x,)))
    tracer = _Tracer(module)
    for name, sub in module.named_modules():
        if isinstance(sub, nn.RNNBase):
            for direction in range(2 if sub.bidirectional else 1):
                tracer._rnn_weights(sub, name, tracer.block_of[(id(sub), 0, direction)],
                                    ((None, sub.input_size),))
        elif isinstance(sub, HierarchicalRNN):
            tracer._hierarchical_weights(sub, name, ((None, sub.input_size),))
    return _result(tracer, (), complete=False)


def trace_net(net, X):
    """The :class:`Dependencies` of a fitted skorch ``net``'s ``module_``, traced on the
    module call that ``net.infer`` makes for the first two samples of ``X`` (in the layout
    ``net`` hands its dataset: for latticeprune's estimators, ``net.check_sequences(X)``; a
    torch ``Dataset`` as it is)."""
    dataset = X if isinstance(X, torch.utils.data.Dataset) else net.get_dataset(X)
    subset = torch.utils.data.Subset(dataset, range(min(2, len(dataset))))
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws its seed from torch's RNG
        batch = next(iter(net.get_iterator(subset, training=False)))[0]
    calls = []

    def capture(module, args, kwargs):
        calls.append((args, kwargs))
        raise _Captured
    handle = net.module_.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad(), contextlib.suppress(_Captured):
            net.infer(batch)
    finally:
        handle.remove()
    if not calls:
        raise ValueError(f"{type(net).__name__}.infer did not call its module_.")
    args, kwargs = calls[0]
    return trace(net.module_, *args, **kwargs)


class _Captured(Exception):
    pass
