"""Packed sequences run as padded ones, so that ``torch.export`` can trace a forward that packs.

``torch.export`` (and so ``torch.onnx``) cannot trace ``pack_padded_sequence``: a packed
batch holds the sum of the lengths in its first dimension, a size that depends on the data.
Inside :func:`padded_packing` a packed batch keeps the padded layout instead:

* ``pack_padded_sequence`` (any import of it: torch's function is unchanged, the private
  ``_VF`` kernels it calls are replaced) sorts the batch by length as torch does and keeps
  it padded and time-major, ``(steps, batch, features)``, with torch's own ``batch_sizes``
  (how many sequences are still running at each step, ``(steps,)``);
* the recurrent modules (``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``) of the module handed in run
  such a batch step by step with torch's cell functions (``torch.lstm_cell``, ...): a
  sequence's state is held after its end (the reverse direction of a bidirectional layer
  starts at each sequence's own end), its outputs after the end are zeros, and ``h_n`` (and
  ``c_n``) are each sequence's state at its end, in the caller's order, as torch returns them;
* ``pad_packed_sequence`` gives the padded output (``padding_value`` after each end,
  ``total_length`` honoured) and the lengths.

The values are those of torch's packed path, on shapes that do not depend on the lengths; the
only difference is the padded length of ``pad_packed_sequence``'s output, the input's steps
rather than the longest length (the entries in between are ``padding_value``). The step loop
is unrolled when traced, so the steps of an exported graph are fixed. A packed batch whose
data is transformed outside the recurrent modules is not supported. Cost: every sequence runs
for the batch's steps, O(steps x layers x directions) cell calls.
"""

import contextlib
import functools

import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils
from torch.nn.utils.rnn import PackedSequence

__all__ = ["padded_packing"]

def _one_state(cell):
    """``cell`` of a one-tensor state (GRU, Elman) taking and returning the state as a tuple,
    as ``torch.lstm_cell`` does ``(h, c)``."""
    return lambda x, state, *weights: (cell(x, state[0], *weights),)


#: Torch's cell function of each ``RNNBase.mode``, the state a tuple (``h`` first).
_CELLS = {"LSTM": torch.lstm_cell, "GRU": _one_state(torch.gru_cell),
          "RNN_TANH": _one_state(torch.rnn_tanh_cell),
          "RNN_RELU": _one_state(torch.rnn_relu_cell)}


def _running(batch_sizes, batch):
    """``(steps, batch)``: whether each sorted sequence is still running at each step."""
    return torch.arange(batch).unsqueeze(0) < batch_sizes.unsqueeze(1)


class _PaddedKernels:
    """torch's ``_VF`` with the packing kernels replaced by their padded forms."""

    def __init__(self, kernels):
        self._kernels = kernels

    def __getattr__(self, name):
        return getattr(self._kernels, name)

    @staticmethod
    def _pack_padded_sequence(padded, lengths, batch_first):
        data = padded.transpose(0, 1) if batch_first else padded
        steps = torch.arange(data.shape[0]).unsqueeze(1)
        return data, (steps < lengths.unsqueeze(0)).sum(dim=1)

    @staticmethod
    def _pad_packed_sequence(data, batch_sizes, batch_first, padding_value, total_length):
        running = _running(batch_sizes, data.shape[1])
        padded = torch.where(running.unsqueeze(-1), data,
                             torch.full_like(data, padding_value))
        if total_length > padded.shape[0]:
            tail = padded.new_full((total_length - padded.shape[0], *padded.shape[1:]),
                                   padding_value)
            padded = torch.cat([padded, tail])
        lengths = running.sum(dim=0)
        return (padded.transpose(0, 1) if batch_first else padded), lengths


def _direction(module, cell, x, running, state, suffix, reverse):
    """One layer and direction over ``x`` ``(steps, batch, features)`` from ``state`` (a
    tuple, ``h`` first): its outputs (zeros after each end) and its state at each end."""
    weights = [getattr(module, f"{name}{suffix}", None)
               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    outputs = [None] * x.shape[0]
    for t in (reversed(range(x.shape[0])) if reverse else range(x.shape[0])):
        new = cell(x[t], state, *weights)
        keep = running[t].unsqueeze(1)
        state = tuple(torch.where(keep, n, s) for n, s in zip(new, state))
        outputs[t] = torch.where(keep, new[0], torch.zeros_like(new[0]))
    return torch.stack(outputs), state


def _packed_forward(module, forward, input, hx=None):
    """``module.forward`` that runs a padded packed batch (see the module docstring), and
    everything else as ``forward``."""
    if not isinstance(input, PackedSequence):
        return forward(input, hx)
    if getattr(module, "proj_size", 0):
        raise ValueError(f"{type(module).__name__} with proj_size > 0 runs packed sequences "
                         "only through torch's packed kernel, which torch.export cannot trace.")
    x, batch_sizes = input.data, input.batch_sizes
    running = _running(batch_sizes, x.shape[1])
    directions = 2 if module.bidirectional else 1
    lstm = module.mode == "LSTM"
    if hx is None:
        zeros = x.new_zeros(module.num_layers * directions, x.shape[1], module.hidden_size)
        hx = (zeros, zeros) if lstm else zeros
    else:
        hx = module.permute_hidden(hx, input.sorted_indices)
    states = hx if lstm else (hx,)
    cell = _CELLS[module.mode]
    ends = []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            k = layer * directions + direction
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            out, end = _direction(module, cell, x, running, tuple(s[k] for s in states),
                                  suffix, reverse=direction)
            outputs.append(out)
            ends.append(end)
        x = torch.cat(outputs, dim=-1)
    final = tuple(torch.stack(parts) for parts in zip(*ends))
    output = PackedSequence(x, batch_sizes, input.sorted_indices, input.unsorted_indices)
    final = module.permute_hidden(final if lstm else final[0], input.unsorted_indices)
    return output, final


@contextlib.contextmanager
def padded_packing(module):
    """A context in which ``module`` runs packed sequences as padded ones.

    Inside it, torch's packing kernels and the ``forward`` of ``module``'s recurrent
    submodules are replaced (see the module docstring); both are restored on exit.

    Examples
    --------
    >>> import torch
    >>> from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    >>> lstm = torch.nn.LSTM(3, 4, bidirectional=True, batch_first=True)
    >>> x, lengths = torch.randn(5, 6, 3), torch.tensor([6, 2, 4, 1, 3])
    >>> def run():
    ...     out, (h, c) = lstm(pack_padded_sequence(x, lengths, batch_first=True,
    ...                                             enforce_sorted=False))
    ...     return pad_packed_sequence(out, batch_first=True, total_length=6)[0], h, c
    >>> with torch.no_grad():
    ...     packed = run()
    ...     with padded_packing(lstm):
    ...         padded = run()
    >>> all(torch.allclose(a, b, atol=1e-6) for a, b in zip(packed, padded))
    True
    """
    recurrent = [m for m in module.modules() if isinstance(m, nn.RNNBase)]
    kernels = rnn_utils._VF
    try:
        rnn_utils._VF = _PaddedKernels(kernels)
        for m in recurrent:
            m.forward = functools.partial(_packed_forward, m, m.forward)
        yield module
    finally:
        rnn_utils._VF = kernels
        for m in recurrent:
            vars(m).pop("forward", None)
