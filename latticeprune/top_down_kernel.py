"""The top-down LSTM's time loop as one compiled kernel, forward and backward.

:func:`~latticeprune.nets.run_top_down` runs the steps of a top-down net of
LSTM layers (:class:`~latticeprune.nets.HierarchicalRNN`) through :func:`run_lstm_steps` where
:func:`kernel_applies` says so; elsewhere it steps through torch's eager ops. Both compute the
same function (same weights in, same outputs and gradients out, to float rounding).

Algorithm. Forward, for each step ``t`` and layer ``l`` (bottom first): one GEMM of the layer's
inputs ``[below, h, above]`` (layer ``l - 1`` at ``t``, the input for the bottom layer, itself
and layer ``l + 1`` at ``t - 1``) with its weights ``[weight_ih, weight_hh, weight_td]`` side by
side (the bottom layer's input projection inside the step GEMM: cheaper here than one GEMM
over all steps plus an addition per step); torch's vectorised sigmoid and tanh
on the gates; the cell update in one loop. The backward is back-propagation through time in the
same layout: for each step (last first) and layer (top first) one loop for the gates'
gradients and one GEMM for the gradients of the layer's inputs; the weights' gradients are one
GEMM per layer over all ``steps * batch`` rows, the biases' one sum. The float32 step GEMMs use
MKL's packed GEMM (the weight packed once per sequence) where torch has it, else ``addmm``.

Cost: the multiply-adds of autograd through ``torch.lstm_cell`` (``steps * batch * 4H * K`` per
layer forward, twice that backward), without autograd's per-step graph: about 15 calls into
torch per layer and step, forward and backward together, against about 35 nodes and ops.
Memory: per layer the inputs, gates and cell states of every step, ``steps * batch * (K + 6H)``
numbers, what autograd saves too. Higher-order gradients are not supported
(``once_differentiable``).

Build: ``torch.utils.cpp_extension.load`` compiles ``csrc/top_down_lstm.cpp`` on first use (a
C++ compiler and ``ninja`` are needed; about 25 s, once per machine and source version, cached
under ``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``). Where it cannot be
built, :func:`kernel_applies` warns once and returns False: the net runs on torch's eager ops,
with the same results, more slowly. The environment variable
``LATTICEPRUNE_TOP_DOWN_KERNEL=0`` turns the kernel off.
"""

import functools
import os
import warnings

import torch
from torch import nn

__all__ = ["kernel_applies", "load_kernel", "run_lstm_steps"]

#: The kernel's source, next to this module.
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "top_down_lstm.cpp")
#: The environment variable that turns the kernel off when set to ``0``.
SWITCH = "LATTICEPRUNE_TOP_DOWN_KERNEL"


@functools.lru_cache(maxsize=None)
def load_kernel():
    """The compiled kernel (built on the first call), or None (with a warning) where it cannot
    be built."""
    try:
        from torch.utils.cpp_extension import load
        return load("latticeprune_top_down_lstm", [SOURCE], extra_cflags=["-O3"])
    except Exception as error:  # no compiler, no ninja, a failed build: run eager
        warnings.warn(f"latticeprune could not build its top-down LSTM kernel ({error}); "
                      "top-down LSTM nets run on torch's eager ops: same results, slower "
                      f"(set {SWITCH}=0 to skip the build).", RuntimeWarning, stacklevel=3)
        return None


def _tracing():
    """Whether torch is capturing a graph (``torch.export``, ``torch.compile``, ``torch.jit``),
    which cannot enter the compiled kernel."""
    compiler = getattr(torch, "compiler", None)
    return (torch.jit.is_tracing() or torch.jit.is_scripting()
            or bool(compiler and compiler.is_compiling())
            or bool(compiler and getattr(compiler, "is_exporting", lambda: False)()))


def kernel_applies(layers, x):
    """Whether :func:`run_lstm_steps` runs ``layers`` on ``x``: LSTM layers of at least one
    unit, every layer but the top with top-down weights, a float32 or float64 CPU tensor, no
    graph capture, the kernel not turned off and built."""
    if os.environ.get(SWITCH, "1") == "0" or _tracing():
        return False
    if type(x) is not torch.Tensor:
        return False  # tensor subclasses (fake tensors of graph capture) stay on torch's ops
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    if not all(layer.cell == "lstm" and layer.hidden_size > 0 for layer in layers):
        return False
    if any(layer.weight_td is None for layer in layers[:-1]):
        return False
    return load_kernel() is not None


def _packable(dtype):
    """Whether torch offers MKL's packed GEMM for ``dtype``."""
    return dtype == torch.float32 and hasattr(torch.ops.mkl, "_mkl_linear") \
        and torch.backends.mkl.is_available()


def _packed(weights, batch):
    """MKL's packed copies of float32 ``weights`` for GEMMs of ``batch`` rows (empty tensors
    where torch has no packed GEMM: the kernel falls back to ``addmm``)."""
    if not weights or not _packable(weights[0].dtype):
        return [w.new_empty(0) for w in weights]
    return [torch.ops.mkl._mkl_reorder_linear_weight(w, batch) for w in weights]


class _TopDownLSTM(torch.autograd.Function):
    """The steps of a top-down LSTM net through the kernel, from zero states: ``apply(x,
    n_layers, save, *weights, *biases)``, ``x`` time-major ``(steps, batch, input)`` ->
    top-layer states ``(steps, batch, hidden)``; ``save``: keep what the backward needs (see
    :func:`run_lstm_steps`)."""

    @staticmethod
    def forward(ctx, x, n_layers, save, *tensors):
        weights = [w.contiguous() for w in tensors[:n_layers]]
        biases = [b.contiguous() for b in tensors[n_layers:]]
        save = save and any(ctx.needs_input_grad)
        outputs, saved = load_kernel().forward(x.contiguous(), weights,
                                               _packed(weights, x.shape[1]), biases, save)
        if save:
            ctx.saved = saved  # the kernel's own record: inputs, gates and cell states
            ctx.save_for_backward(*weights)
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        weights_t = [w.t().contiguous() for w in ctx.saved_tensors]
        grads = load_kernel().backward(grad.contiguous(), weights_t,
                                       _packed(weights_t, grad.shape[1]), ctx.saved,
                                       ctx.needs_input_grad[0])
        return (grads[0], None, None, *grads[1::2], *grads[2::2])


def run_lstm_steps(layers, x):
    """Top-layer states ``(batch, steps, hidden)`` of LSTM ``layers`` (as
    :func:`~latticeprune.nets.run_top_down` takes them, their weights current) over batch-first
    ``x``, from zero states, through the compiled kernel (see :func:`kernel_applies`).
    Gradients flow to the weights and ``x``."""
    last = len(layers) - 1
    weights = [torch.cat([layer.weight_ih, layer.weight_hh]
                         + ([layer.weight_td] if index < last else []), dim=1)
               for index, layer in enumerate(layers)]
    biases = [layer.bias_ih + layer.bias_hh for layer in layers]
    # Under no_grad autograd still reports the inputs' requires_grad to the function; only
    # the grad mode here says whether a backward can follow.
    outputs = _TopDownLSTM.apply(x.transpose(0, 1), len(layers), torch.is_grad_enabled(),
                                 *weights, *biases)
    return outputs.transpose(0, 1)
