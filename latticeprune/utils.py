"""Process-wide helpers every layer shares: torch's seed and thread count, plain-text tables.

``torch_seed`` and ``torch_threads`` are context managers that change a process-wide torch
setting for one block and restore it after; ``format_table`` renders rows for the demo and
the benchmark scripts.
"""

import contextlib
import numbers

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["torch_seed", "torch_threads", "format_table"]


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


def format_table(rows, columns):
    """Plain-text table of ``rows`` (dicts) with the given ``columns``."""
    cells = [[str(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(w) for col, w in zip(columns, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) for cell in cells]
    return "\n".join([line, rule, *body])
