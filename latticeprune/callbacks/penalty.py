"""What the penalty callbacks share: a term added to the training loss.

skorch callbacks cannot change the loss a net back-propagates, so a :class:`TrainingPenalty`
back-propagates its :meth:`~TrainingPenalty.loss_term` itself in ``on_grad_computed``, after
the task loss's backward pass and before the optimiser steps: the two gradients add up as if
the term were part of the loss. The value is recorded per training batch under the
subclass's ``history_key``, with its epoch mean. Cost: the term's.
"""

import numpy as np
from skorch.callbacks import Callback

__all__ = ["TrainingPenalty"]


class TrainingPenalty(Callback):
    """Base of :class:`~latticeprune.callbacks.ModuliPenalty` and
    :class:`~latticeprune.callbacks.GroupLassoPenalty`: subclasses give ``history_key`` and
    ``loss_term()``, a differentiable scalar tensor over the net's live weights."""

    history_key = None

    def loss_term(self):
        raise NotImplementedError

    def on_grad_computed(self, net, named_parameters, X=None, y=None, training=None,
                         **kwargs):
        if not training:
            return
        total = self.loss_term()
        if total.requires_grad:
            total.backward()
        net.history.record_batch(self.history_key, float(total.detach()))

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        values = [batch[self.history_key] for batch in net.history[-1]["batches"]
                  if self.history_key in batch]
        if values:
            net.history.record(self.history_key, float(np.mean(values)))
