"""Stop a fit whose loss is no longer finite."""

import math

from skorch.callbacks import Callback


class FitDivergedError(ValueError, FloatingPointError):
    """Raised when the training loss becomes NaN or infinite.

    A ``ValueError`` (the data or the parameters made the fit diverge), so sklearn's model
    selection records it like any other failed fit.
    """


class DivergenceGuard(Callback):
    """Raise :class:`FitDivergedError` as soon as a training batch's loss is not finite.

    Without it a diverging net keeps training on NaN weights and then predicts garbage.

    Examples
    --------
    >>> from latticeprune import RNNClassifier
    >>> from latticeprune.callbacks import DivergenceGuard
    >>> net = RNNClassifier(callbacks=[DivergenceGuard()])  # every SequenceNet adds one anyway
    """

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if not training:
            return
        loss = net.history[-1, "batches", -1].get("train_loss")
        if loss is not None and not math.isfinite(loss):
            epoch = len(net.history)
            batch_index = len(net.history[-1, "batches"])
            raise FitDivergedError(
                f"Training diverged: the loss is {loss} at epoch {epoch}, batch {batch_index}. "
                f"Lower the learning rate (lr={getattr(net, 'lr', '?')}), scale the inputs, or "
                "clip gradients (skorch.callbacks.GradientNormClipping).")
