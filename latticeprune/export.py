"""ONNX export of a fitted recurrent net, through ``torch.onnx`` (the optional extra ``onnx``).

:func:`export_onnx` writes the torch module of an estimator, a sparsifier or a module itself:
the graph computes the module's ``forward`` (logits of a classifier, predictions of a
regressor) on float32 input ``(batch, n_steps, input_size)``, the batch dynamic and the steps
fixed (a top-down net's step loop is unrolled). A unit-pruned net (``granularity="unit"``) is
an ordinary smaller net and exports as such; a masked (unstructured) net exports too, with its
zeros stored dense: same outputs, no smaller file and no speed-up.
"""

import copy

import torch

from .neuron_graph import NeuronGraph, estimator_chain, find_module

__all__ = ["export_onnx"]


def export_onnx(estimator, path, n_steps=None):
    """Write ``estimator``'s net to ``path`` as an ONNX model; returns ``path``.

    Parameters
    ----------
    estimator : fitted estimator, sparsifier or torch module
        E.g. an :class:`~latticeprune.RNNClassifier`, a fitted
        :class:`~latticeprune.LatticePruner`, or a :class:`~latticeprune.nets.RecurrentNet`.
    path : str or path-like
        The ``.onnx`` file.
    n_steps : int or None, default=None
        Time steps of the input; None: the ``n_steps_`` seen in ``fit`` (needed for a module).

    Returns
    -------
    path : str or path-like

    Examples
    --------
    >>> import onnxruntime, tempfile, torch
    >>> from latticeprune.nets import RecurrentNet
    >>> net = RecurrentNet(input_size=3, output_size=2, hidden_size=4, cell="gru").eval()
    >>> path = export_onnx(net, tempfile.mktemp(suffix=".onnx"), n_steps=5)
    >>> x = torch.randn(7, 5, 3)
    >>> out = onnxruntime.InferenceSession(path).run(None, {"x": x.numpy()})[0]
    >>> bool(abs(out - net(x).detach().numpy()).max() < 1e-5)
    True
    """
    n_steps = n_steps or getattr(estimator_chain(estimator)[-1], "n_steps_", None)
    if n_steps is None:
        raise ValueError("n_steps is needed to export a torch module (no n_steps_ from fit).")
    module = copy.deepcopy(find_module(estimator)).cpu().eval()
    NeuronGraph(module).remove_masks()  # the masked zeros become plain dense weights
    input_size = NeuronGraph(module).layers[0].owner.input_size
    example = torch.zeros(2, int(n_steps), input_size)
    torch.onnx.export(module, (example,), path, input_names=["x"], output_names=["outputs"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                      verbose=False)
    return path
