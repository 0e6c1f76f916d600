"""The top-down LSTM's time loop as one compiled kernel, forward and backward.

:func:`~latticeprune.nets.run_top_down` runs the steps of a top-down net of
LSTM layers (:class:`~latticeprune.nets.HierarchicalRNN`) through :func:`run_lstm_steps` where
:func:`kernel_applies` says so; elsewhere it steps through torch's eager ops. Both compute the
same function (same weights in, same outputs and gradients out, to float rounding).

Algorithm. Forward, for each step ``t`` and layer ``l`` (bottom first): one GEMM of the layer's
inputs ``[below, h, above]`` (layer ``l - 1`` at ``t``, the input for the bottom layer, itself
and layer ``l + 1`` at ``t - 1``) with its weights ``[weight_ih, weight_hh, weight_td]`` side by
side (the bottom layer's input projection inside the step GEMM: cheaper here than one GEMM
over all steps plus an addition per step); then the gates' non-linearities and the cell
update in one pass over each row, on ATen's vector types (``sigmoid(x) = 1 / (1 + exp(-x))``
with ATen's ``exp_u20``, ``tanh(x) = 2 sigmoid(2x) - 1``) where the kernel is built for AVX2 or
AVX-512 (:data:`CAPABILITY_FLAGS`), else torch's sigmoid and tanh and a loop. The new state
is written straight into the inputs that read it at the next step (so no step concatenates).
The backward is back-propagation through time in the same layout: for each step (last
first) and layer (top first) one loop for the gates' gradients (adding them to the bias's)
and one GEMM for the gradients of the layer's inputs; the weights' gradients are one GEMM per
layer over all ``steps * batch`` rows. The float32 step GEMMs use MKL's packed GEMM where
torch has it, else ``addmm``; the weights are concatenated and packed once per call, or once
per batch size inside :func:`frozen_weights` (the estimators' predictions).

Cost: the multiply-adds of autograd through ``torch.lstm_cell`` (``steps * batch * 4H * K`` per
layer forward, twice that backward), without autograd's per-step graph: per layer and step
one GEMM forward and one backward, a few tensor views (and, built without vector flags, four
calls of torch's sigmoid and tanh), against about 35 autograd nodes and ops. Memory: per
layer the inputs, gates and cell states of every step, ``steps * batch * (K + 6H)`` numbers,
what autograd saves too. Higher-order gradients are not supported
(``once_differentiable``).

Build: :mod:`~latticeprune.kernel_build` compiles ``csrc/top_down_lstm.cpp`` on first use
(:func:`kernel_extension`; a C++ compiler and ``ninja`` are needed; about 30 s, once per
machine, source version and vector capability, kept under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``; ``python -m latticeprune build-kernel`` builds it ahead of
time). Where it cannot be built, :func:`kernel_applies` warns once and returns False: the net
runs on torch's eager ops, with the same results, more slowly. The environment variable
``LATTICEPRUNE_TOP_DOWN_KERNEL=0`` turns the kernel off.
"""

import contextlib
import functools
import os
import threading
import warnings

import torch

from .kernel_build import Extension, KernelBuildError, build, import_library

__all__ = ["frozen_weights", "kernel_applies", "kernel_extension", "load_kernel",
           "run_lstm_steps"]

#: The kernel's source, next to this module.
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc", "top_down_lstm.cpp")
#: The environment variable that turns the kernel off when set to ``0``.
SWITCH = "LATTICEPRUNE_TOP_DOWN_KERNEL"


#: Compiler flags per vector capability of torch on this CPU
#: (``torch.backends.cpu.get_cpu_capability()``, as torch builds its own kernels for it): with
#: them the kernel runs the gates' non-linearities and the cell update in one pass on ATen's
#: vector types; under any other capability it runs them on torch's ops.
CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}


def kernel_extension(capability=None):
    """The kernel as a :class:`~latticeprune.kernel_build.Extension` for a torch CPU
    ``capability`` (default: this CPU's, ``torch.backends.cpu.get_cpu_capability()``)."""
    capability = (capability or torch.backends.cpu.get_cpu_capability()).upper()
    return Extension(f"latticeprune_top_down_lstm_{capability.lower()}", SOURCE,
                     ("-O3", *CAPABILITY_FLAGS.get(capability, [])),
                     description="the top-down LSTM kernel")


@functools.lru_cache(maxsize=None)
def load_kernel():
    """The compiled kernel (built on the first call, for this CPU's vector capability: one
    build per capability, so a cache shared by different machines never runs instructions a
    CPU lacks), or None, with one short warning, where it cannot be built. An interrupted
    build (``KeyboardInterrupt``) is not remembered: the next call builds again."""
    try:
        return import_library(build(kernel_extension()))
    except (KernelBuildError, OSError, ImportError) as error:
        warnings.warn(f"latticeprune: {error}. Top-down LSTM nets run on torch's eager ops "
                      f"(same results, slower); {SWITCH}=0 silences this.", RuntimeWarning,
                      stacklevel=3)
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
    packed, save, *weights, *biases)``, ``x`` time-major ``(steps, batch, input)`` ->
    top-layer states ``(steps, batch, hidden)``; ``packed``: the weights' packed copies for
    this batch size (:func:`_packed`); ``save``: keep what the backward needs (see
    :func:`run_lstm_steps`)."""

    @staticmethod
    def forward(ctx, x, packed, save, *tensors):
        weights = [w.contiguous() for w in tensors[:len(packed)]]
        biases = [b.contiguous() for b in tensors[len(packed):]]
        save = save and any(ctx.needs_input_grad)
        outputs, saved = load_kernel().forward(x.contiguous(), weights, packed, biases, save)
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


def _prepared(layers, batch):
    """The kernel's weights of ``layers`` (per layer ``[weight_ih, weight_hh, weight_td]`` side
    by side), biases (``bias_ih + bias_hh``) and packed weights for ``batch`` rows."""
    last = len(layers) - 1
    weights = [torch.cat([layer.weight_ih, layer.weight_hh]
                         + ([layer.weight_td] if index < last else []), dim=1)
               for index, layer in enumerate(layers)]
    biases = [layer.bias_ih + layer.bias_hh for layer in layers]
    return weights, biases, _packed([w.detach() for w in weights], batch)


_frozen = threading.local()  # .cache: the prepared weights of the innermost frozen_weights


@contextlib.contextmanager
def frozen_weights():
    """Within, the weights of the nets this thread runs without gradients do not change:
    :func:`run_lstm_steps` concatenates and packs each net's weights once per batch size and
    reuses them until the outermost ``with`` ends. For inference over many batches (the
    estimators' predictions, scores and ``transform`` run in it); calls with gradients, and
    calls outside it, prepare the weights every time."""
    outermost = getattr(_frozen, "cache", None) is None
    if outermost:
        _frozen.cache = {}
    try:
        yield
    finally:
        if outermost:
            _frozen.cache = None


def run_lstm_steps(layers, x):
    """Top-layer states ``(batch, steps, hidden)`` of LSTM ``layers`` (as
    :func:`~latticeprune.nets.run_top_down` takes them, their weights current) over batch-first
    ``x``, from zero states, through the compiled kernel (see :func:`kernel_applies`).
    Gradients flow to the weights and ``x``. Inside :func:`frozen_weights`, without gradients,
    the weights prepared by an earlier call on the same layers and batch size are reused."""
    # Under no_grad autograd still reports the inputs' requires_grad to the function; only
    # the grad mode here says whether a backward can follow.
    save = torch.is_grad_enabled()
    cache = None if save else getattr(_frozen, "cache", None)
    key = (tuple(map(id, layers)), x.dtype, x.shape[0])
    if cache is None or key not in cache:
        prepared = (layers, *_prepared(layers, x.shape[0]))  # holds the layers: ids stay unique
        if cache is not None:
            cache[key] = prepared
    else:
        prepared = cache[key]
    _, weights, biases, packed = prepared
    outputs = _TopDownLSTM.apply(x.transpose(0, 1), packed, save, *weights, *biases)
    return outputs.transpose(0, 1)
