"""The sequence estimators' automatic batch size and epoch count (``batch_size="auto"``,
``max_epochs="auto"``), one rule each, for any skorch net.

A recurrent net on a small training set (tens to hundreds of sequences) underfits at a fixed
batch of 64 and 20 epochs: an epoch is one to four optimiser steps. The rules below keep the
optimiser's work roughly constant instead: batches of 16 to 64 samples, and as many epochs
(20 to 150) as give about :data:`AUTO_STEPS` steps. On a large set they give what a fixed
batch of 64 and about 20 epochs gave; on a small one, batch 16 and 150 epochs. The study
behind them is ``benchmarks/uea.py`` (docs/experiments.md). Cost: O(1).
"""

__all__ = ["AUTO_STEPS", "auto_batch_size", "auto_epochs", "training_epochs"]

#: Optimiser steps that ``max_epochs="auto"`` aims for (within 20 to 150 epochs).
AUTO_STEPS = 3000


def auto_batch_size(n_samples):
    """``batch_size="auto"``: a sixteenth of the samples, at least 16 and at most 64 (64 from
    1,024 samples on, 16 below 512), so a small training set still gives several optimiser
    steps per epoch.

    >>> auto_batch_size(67), auto_batch_size(898), auto_batch_size(8000)
    (16, 56, 64)
    """
    return int(min(64, max(16, n_samples // 16)))


def auto_epochs(n_samples, batch_size="auto"):
    """``max_epochs="auto"``: the epochs that give about :data:`AUTO_STEPS` optimiser steps at
    ``batch_size`` (``"auto"``: :func:`auto_batch_size`; -1: one batch), at least 20 and at
    most 150: 150 on a set of a few hundred samples, 24 on 8,000 at batch 64, 20 from
    9,600 on.

    >>> auto_epochs(67), auto_epochs(1347), auto_epochs(8000)
    (150, 137, 24)
    """
    batch = auto_batch_size(n_samples) if batch_size == "auto" else batch_size
    batch = n_samples if batch == -1 else batch
    steps = -(-n_samples // batch)
    return int(min(150, max(20, -(-AUTO_STEPS // steps))))


def training_epochs(net, n_samples):
    """The epochs ``net.fit`` trains on ``n_samples`` samples: ``net.max_epochs``, resolved by
    :func:`auto_epochs` when it is ``"auto"`` (any skorch net)."""
    if net.max_epochs == "auto":
        return auto_epochs(n_samples, net.batch_size)
    return net.max_epochs
