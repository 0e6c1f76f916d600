"""Process-wide helpers every layer shares: torch's seed, thread count and denormal mode,
plain-text tables.

``torch_seed``, ``torch_threads`` and ``flush_denormals`` (both together: ``torch_compute``,
what the estimators compute under) are context managers that change a
process-wide (or thread-wide) torch setting for one block and restore it after;
``format_table`` renders rows for the demo and the benchmark scripts.
"""

import contextlib
import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["torch_seed", "torch_threads", "flush_denormals", "torch_compute", "format_table"]


@contextlib.contextmanager
def torch_seed(random_state):
    """Run the block with torch's global generator seeded from ``random_state`` and restore it after.

    ``None`` leaves torch's generator alone. An int seeds it; a ``RandomState`` draws a seed.
    """
    if random_state is None:
        yield
        return
    if isinstance(random_state, numbers.Integral):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``torch.set_num_threads(n_threads)`` and restore the previous count after.

    ``None`` leaves torch's setting alone. The count is process-wide: torch has one intra-op
    thread pool per process.
    """
    previous = torch.get_num_threads()
    if n_threads is None or n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _flushing_denormals():
    """Whether the calling thread flushes denormal floats (a denormal times one gives zero)."""
    return bool((torch.tensor([1e-40]) * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormals():
    """Run the block with denormal floats flushed to zero (``torch.set_flush_denormal``) and
    restore the previous mode after.

    Values below about 1e-38 then count as zero, as inside oneDNN's kernels (torch's fused
    ``nn.LSTM``) and by default in TensorFlow. Products and gate arithmetic on denormals are
    one to two orders of magnitude slower on x86 CPUs; vanishing gradients of saturated gates
    produce them. The mode belongs to the calling thread (torch's intra-op threads keep
    theirs); where the CPU cannot flush, the block runs unchanged.
    """
    if _flushing_denormals() or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def torch_compute(n_threads):
    """The settings an estimator computes under: ``torch_threads(n_threads)`` and
    ``flush_denormals()``."""
    with torch_threads(n_threads), flush_denormals():
        yield


def format_table(rows, columns):
    """Plain-text table of ``rows`` (dicts) with the given ``columns``."""
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(w) for col, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join([line, rule, *body])
