"""ONNX export of a fitted recurrent net, through ``torch.onnx`` (the optional extra ``onnx``).

:func:`export_onnx` writes the torch module of an estimator, a sparsifier or a module itself:
the graph computes what the estimator predicts, as sklearn-onnx exports a classifier (outputs
``label`` and ``probabilities``, equal to ``predict`` and ``predict_proba``) or a regressor
(``predictions``); for a bare module, or with ``raw_scores=True``, the module's ``forward``
(``outputs``: a classifier's logits). The input is float32 ``x`` ``(batch, n_steps,
input_size)`` (or what the module's ``example_input()`` / its traced example shows: token
ids, ...), and with
``variable_length=True`` on padded sequences and their int64 ``lengths`` ``(batch,)``, what
``forward(x, lengths)`` computes: each sequence's output at its own end (per-step outputs with
``sequence_output=True``). The batch is always dynamic; the steps are dynamic for nets whose
recurrent layers are all torch's fused ``nn.LSTM`` / ``nn.GRU`` and fixed otherwise (Elman
cells, top-down nets, nets that pack their sequences: ``torch.export`` unrolls their step
loops; :mod:`latticeprune.packing` runs ``pack_padded_sequence`` padded). A unit-pruned net
(``granularity="unit"``) is an ordinary smaller net and exports as such; a masked
(unstructured) net exports too, with its zeros stored dense: same outputs, no smaller file and
no speed-up.
"""

import contextlib
import copy
import inspect
import json
import logging
import numbers
import os
import warnings

import numpy as np
import torch
from skorch import NeuralNetClassifier
from sklearn.utils._param_validation import Interval, validate_parameter_constraints
from torch import nn

from .dependency import example_input, trace
from .neuron_graph import NeuronGraph, estimator_chain, find_module, find_net, make_permanent
from .packing import padded_packing

__all__ = ["export_onnx"]

_PARAMETER_CONSTRAINTS = {
    "n_steps": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "variable_length": ["boolean"],
    "raw_scores": ["boolean"],
}


def _rnn_while_loops():
    """torch's context managers under which ``torch.export`` traces ``nn.LSTM`` / ``nn.GRU`` as
    loops over a dynamic number of steps, or None where torch has none.

    ``torch.onnx.export`` enters them only while capturing the graph, not while it re-runs the
    decompositions afterwards, which freezes the example's step count inside the graph
    (pytorch/pytorch#191855): a stacked net's second layer or a per-step read-out then fails or
    misreads at any other length. Exporting inside them keeps the steps dynamic throughout."""
    try:
        from torch.export._patches import (register_gru_while_loop_decomposition,
                                           register_lstm_while_loop_decomposition)
    except ImportError:
        return None
    return register_lstm_while_loop_decomposition, register_gru_while_loop_decomposition


class _CheckedLengths(nn.Module):
    """``module(x, lengths)``, with NaN outputs for the sequences whose length is outside
    ``1..steps`` (a graph has no error to raise; they run clamped, so the others are untouched)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x, lengths):
        valid = (lengths >= 1) & (lengths <= x.shape[1])
        out = self.module(x, lengths.clamp(1, x.shape[1]))
        return torch.where(valid.view(-1, *[1] * (out.dim() - 1)), out, torch.nan)


class _Predictions(nn.Module):
    """What a fitted estimator predicts, from its module's outputs: a classifier's
    ``(label, probabilities)`` (its ``predict_proba`` non-linearity; the label is the class
    value for numeric classes, else the class index; -1 where the probabilities are NaN), a
    regressor's predictions."""

    def __init__(self, module, nonlinearity=None, classes=None):
        super().__init__()
        self.module, self.nonlinearity = module, nonlinearity
        numeric = classes is not None and np.asarray(classes).dtype.kind in "iub"
        self.register_buffer("classes", torch.as_tensor(np.asarray(classes, dtype=np.int64))
                             if numeric else None)

    def forward(self, x):
        return self.predictions(self.module(x))

    def predictions(self, out):
        proba = self.nonlinearity(out)
        index = proba.argmax(dim=-1)
        label = self.classes[index] if self.classes is not None else index
        label = torch.where(torch.isnan(proba).any(dim=-1), torch.full_like(label, -1), label)
        return label, proba


class _PaddedPredictions(_Predictions):
    """:class:`_Predictions` of a module called on padded sequences and their lengths."""

    def forward(self, x, lengths):
        return self.predictions(self.module(x, lengths))


def _outputs(estimator, module, raw_scores, variable_length):
    """``(module to export, output names)`` for ``estimator``."""
    if raw_scores or isinstance(estimator, nn.Module):
        return module, ["outputs"]
    net = find_net(estimator)
    if not isinstance(net, NeuralNetClassifier):
        return module, ["predictions"]
    wrapper = _PaddedPredictions if variable_length else _Predictions
    return (wrapper(module, net._get_predict_nonlinearity(),  # skorch's, as predict_proba
                    getattr(net, "classes_", None)), ["label", "probabilities"])


def _example_x(module, graph, steps):
    """Zeros shaped as ``module``'s input ``x`` for 2 samples and ``steps`` steps: the layout of
    its ``example_input()`` or of the input it was traced on (token ids, time-major layouts
    as the user's ``forward`` takes them), else float features of its first recurrent layer."""
    x = example_input(module)
    x = x[0] if isinstance(x, tuple) else x
    if x is None and graph.dependencies.example:
        x = graph.dependencies.example[0]
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        return torch.zeros(2, steps, graph.layers[0].owner.input_size)
    return torch.zeros((2, steps, *x.shape[2:]), dtype=x.dtype)


def _packs(module, graph, variable_length):
    """Whether ``module``'s ``forward`` packs its sequences: from its traced dependencies, else
    (a module never traced, with no ``example_input()``) from a trace of ``module`` on the
    export's example input."""
    if graph.dependencies.complete:
        return graph.dependencies.packed
    args = (_example_x(module, graph, 2),)
    args += (torch.tensor([2, 1]),) if variable_length else ()
    try:
        return trace(module, *args).packed
    except ValueError:  # an op the dependency rules do not know: torch.export may still run
        return False


def export_onnx(estimator, path, n_steps=None, variable_length=False, raw_scores=False):
    """Write ``estimator``'s net to ``path`` as an ONNX model; returns ``path``.

    The graph's inputs are ``x``, float32 ``(batch, steps, input_size)``, and with
    ``variable_length=True`` ``lengths``, int64 ``(batch,)``. Its outputs: for a classifier
    ``label`` (int64 ``(batch,)``: the class value for numeric classes, else its index into
    ``classes_``, which the model's metadata ``classes`` lists) and ``probabilities`` (float32
    ``(batch, n_classes)``, ``predict_proba``); for a regressor ``predictions``; for a torch
    module, or with ``raw_scores=True``, ``outputs``, the module's ``forward`` (a classifier's
    logits); per step ``(batch, steps, ...)`` for a ``sequence_output`` net. The batch is
    dynamic. The steps are dynamic for nets whose recurrent
    layers are all torch's fused ``nn.LSTM`` / ``nn.GRU`` (any padded length runs; traced
    through torch's while-loop decompositions, ``torch.export._patches``, fixed steps on a
    torch without them); for Elman cells (``rnn_tanh``, ``rnn_relu``), top-down nets and
    modules whose ``forward`` packs its sequences (``pack_padded_sequence``: the packed batch
    runs padded, :mod:`latticeprune.packing`) ``torch.export`` unrolls the step loop, so the
    steps are fixed at ``n_steps`` and shorter sequences are padded to it.

    Parameters
    ----------
    estimator : fitted estimator, sparsifier or torch module
        E.g. an :class:`~latticeprune.RNNClassifier`, a fitted
        :class:`~latticeprune.LatticePruner`, or a :class:`~latticeprune.nets.RecurrentNet`.
    path : str or path-like
        The ``.onnx`` file.
    n_steps : int >= 1 or None, default=None
        Time steps of the graph's input where they are fixed, else of the example input the
        graph is traced on. None: the ``n_steps_`` of ``fit`` (the longest sequence seen, for
        variable-length training data); a torch module has none, so a net with fixed steps
        needs ``n_steps``.
    variable_length : bool, default=False
        Whether the graph takes padded sequences of different lengths: a second input
        ``lengths`` (int64, one per sequence, ``1 <= lengths[i] <= steps``; steps after each
        end are ignored) and the module's ``forward(x, lengths)``: each sequence's output at
        its true end, the same as for the sequence alone. For a ``sequence_output`` net the
        output holds every step; the steps after a sequence's end hold the read-out of a zero
        state (its bias), to be cut at ``lengths``. A graph has no error to raise: a sequence
        whose length is outside ``1..steps`` gets NaN outputs (the others are unaffected).
        Needs a module whose ``forward`` takes ``lengths``. A sequence whose length is outside
        ``1..steps`` gets label -1.
    raw_scores : bool, default=False
        Export the module's raw outputs (``outputs``) instead of the predictions.

    Returns
    -------
    path : str or path-like

    Examples
    --------
    >>> import onnxruntime, tempfile, torch
    >>> from latticeprune.nets import RecurrentNet
    >>> net = RecurrentNet(input_size=3, output_size=2, hidden_size=4, cell="gru").eval()
    >>> path = export_onnx(net, tempfile.mktemp(suffix=".onnx"), variable_length=True)
    >>> x, lengths = torch.randn(7, 5, 3), torch.tensor([5, 2, 3, 5, 1, 4, 4])
    >>> feed = {"x": x.numpy(), "lengths": lengths.numpy()}
    >>> out = onnxruntime.InferenceSession(path).run(None, feed)[0]
    >>> bool(abs(out - net(x, lengths).detach().numpy()).max() < 1e-5)
    True
    >>> alone = onnxruntime.InferenceSession(path).run(None, {"x": x[1:2, :2].numpy(),
    ...                                                       "lengths": lengths[1:2].numpy()})[0]
    >>> bool(abs(alone - out[1]).max() < 1e-5)
    True
    """
    validate_parameter_constraints(_PARAMETER_CONSTRAINTS,
                                   {"n_steps": n_steps, "variable_length": variable_length,
                                    "raw_scores": raw_scores}, caller_name="export_onnx")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"export_onnx cannot write {os.fspath(path)!r}: the folder "
                                f"{folder!r} does not exist.")
    source = find_module(estimator)
    graph = NeuronGraph(source)
    module = make_permanent(copy.deepcopy(source)).cpu().eval()  # masked zeros, plain weights
    if variable_length and "lengths" not in inspect.signature(module.forward).parameters:
        raise ValueError(f"variable_length=True needs a module whose forward takes lengths, "
                         f"forward(x, lengths); {type(module).__name__}.forward does not.")
    packed = _packs(module, graph, variable_length)
    loops = _rnn_while_loops()
    dynamic_steps = loops is not None and not packed and all(
        isinstance(layer.owner, (nn.LSTM, nn.GRU)) for layer in graph.layers)
    n_steps = n_steps or getattr(estimator_chain(estimator)[-1], "n_steps_", None)
    if n_steps is None and not dynamic_steps:
        raise ValueError(f"n_steps is needed to export {type(module).__name__}: its graph has a "
                         "fixed number of steps (Elman cells, top-down feedback or packed "
                         "sequences), and a torch module has no n_steps_ from fit.")
    # torch.export specializes a dynamic dimension of size 1: trace on at least 2 steps.
    steps = max(int(n_steps or 2), 2) if dynamic_steps else int(n_steps)
    batch = torch.export.Dim("batch")
    x_dims = {0: batch, 1: torch.export.Dim("steps")} if dynamic_steps else {0: batch}
    args, names, dims = (_example_x(source, graph, steps),), ["x"], [x_dims]
    if variable_length:
        args += (torch.tensor([steps, 1], dtype=torch.int64),)
        names.append("lengths")
        dims.append({0: batch})
    with contextlib.ExitStack() as stack:
        for loop in loops if dynamic_steps else ():
            stack.enter_context(loop())
        # nothing a caller can act on: torch's while-loop decompositions call a check torch
        # deprecates; x and lengths share the batch axis, which torch.onnx reports
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="_check_is_size", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*The axis name: batch will not be used",
                                category=UserWarning)
        warnings.filterwarnings("ignore", message="The tensor attributes .*_flat_weights",
                                category=UserWarning)  # torch's RNNs cache their weights
        warnings.filterwarnings("ignore", message=".*LeafSpec.* is deprecated",
                                category=FutureWarning)  # inside torch.export's pytrees
        stack.enter_context(_quiet_registration())
        if packed:  # pack_padded_sequence's sizes depend on the lengths: run it padded
            stack.enter_context(padded_packing(module))
        exported = _CheckedLengths(module).eval() if variable_length else module
        exported, outputs = _outputs(estimator, exported, raw_scores, variable_length)
        torch.onnx.export(exported.eval(), args, path, input_names=names, output_names=outputs,
                          dynamic_shapes=tuple(dims), dynamo=True, verbose=False)
    if len(outputs) == 2 and exported.classes is None:
        _label_metadata(path, find_net(estimator).classes_)
    return path


@contextlib.contextmanager
def _quiet_registration():
    """torch.onnx logs a warning per torchvision operator when torchvision is not installed
    (nothing here uses them)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _label_metadata(path, classes):
    """Record the classes of a classifier whose labels are not numbers in the model's
    metadata (``classes``, JSON): its ``label`` output holds their indices."""
    import onnx
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key, entry.value = "classes", json.dumps([str(c) for c in classes])
    onnx.save(model, path)
