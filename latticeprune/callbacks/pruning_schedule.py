"""Entry-level pruning rules, and gradual magnitude pruning during training.

:func:`global_magnitude_masks` and :func:`random_masks` zero ``pruned_count(sparsity, total)``
entries of a set of tensors. :class:`GradualMagnitudePruning` applies the first at the end of
each pruning epoch, the sparsity following :func:`scheduled_sparsity` up to ``target_sparsity``
(docs/methods/moduli.md section 5; Zhu & Gupta 2017, "To prune, or not to prune"). Masks go
through :meth:`NeuronGraph.apply_masks` (``torch.nn.utils.prune``), so a pruned weight stays
exactly zero through every later optimiser step.
"""

import numbers

import numpy as np
import torch
from skorch.callbacks import Callback
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ..dependency import trace_net
from ..neuron_graph import SCOPES, NeuronGraph, pruned_count
from .connectivity import check_input_reaches_readout

__all__ = ["GradualMagnitudePruning", "SCHEDULES", "scheduled_sparsity", "global_magnitude_masks",
           "random_masks"]

#: Valid ``schedule`` names.
SCHEDULES = ("linear", "cubic")


def scheduled_sparsity(step, n_steps, target_sparsity, schedule="linear"):
    """Sparsity after pruning step ``step`` (1 = first) of ``n_steps`` towards ``target_sparsity``.

    ``linear``: ``target * step / n_steps``. ``cubic`` (Zhu & Gupta 2017, initial sparsity 0):
    ``target * (1 - (1 - step / n_steps) ** 3)``, fast at first and slow near the end.
    Steps below 1 (or ``n_steps < 1``) give 0; steps from ``n_steps`` on give the target.

    Examples
    --------
    >>> [scheduled_sparsity(k, 4, 0.8) for k in range(6)]
    [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 0.8]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not valid; valid choices are "
                         f"{list(SCHEDULES)}.")
    if n_steps < 1 or step < 1:
        return 0.0
    if step >= n_steps:
        return float(target_sparsity)
    progress = step / n_steps
    if schedule == "linear":
        return target_sparsity * progress
    return target_sparsity * (1.0 - (1.0 - progress) ** 3)


def global_magnitude_masks(tensors, sparsity):
    """``{tensor name: weight-shaped bool mask}`` zeroing the ``pruned_count(sparsity, total)``
    smallest entries of ``tensors`` (``WeightTensor`` list), ranked together by live magnitude.

    Ties are broken by position (tensor order, then row-major), so the result is deterministic;
    entries already pruned are zero and therefore pruned again.
    """
    magnitudes = torch.cat([t.weight.detach().abs().reshape(-1).double().cpu() for t in tensors])
    keep = torch.ones(magnitudes.numel(), dtype=torch.bool)
    n_pruned = pruned_count(sparsity, magnitudes.numel())
    keep[torch.argsort(magnitudes, stable=True)[:n_pruned]] = False
    return _split(keep, tensors)


def random_masks(tensors, sparsity, random_state=None):
    """As :func:`global_magnitude_masks`, zeroing uniformly random non-zero entries (seeded by
    ``random_state``) until ``pruned_count(sparsity, total)`` entries are zero."""
    flat = torch.cat([t.weight.detach().reshape(-1).cpu() for t in tensors]).numpy()
    candidates = np.flatnonzero(flat)
    needed = pruned_count(sparsity, flat.size) - (flat.size - candidates.size)
    keep = torch.ones(flat.size, dtype=torch.bool)
    if needed > 0:
        chosen = check_random_state(random_state).choice(
            candidates, size=min(needed, len(candidates)), replace=False)
        keep[torch.as_tensor(chosen)] = False
    return _split(keep, tensors)


def _split(keep, tensors):
    """One flat keep-vector over ``tensors`` as ``{name: weight-shaped mask}``."""
    sizes = [t.weight.numel() for t in tensors]
    return {t.name: part.reshape(t.weight.shape)
            for t, part in zip(tensors, torch.split(keep, sizes))}


class GradualMagnitudePruning(Callback):
    """skorch callback: global magnitude pruning on a schedule, then fixed masks.

    At the end of epoch ``start_epoch + k - 1`` (``k = 1 .. pruning_epochs``; epochs count the
    net's history, so ``partial_fit`` continues the count) the tensors in ``scope`` are pruned
    together to ``scheduled_sparsity(k, pruning_epochs, target_sparsity, schedule)``; later
    epochs keep the masks. The achieved sparsity is recorded as ``"sparsity"`` every epoch.

    Parameters
    ----------
    target_sparsity : float in [0, 1), default=0.9
        Final fraction of zero entries in ``scope``.
    schedule : {"linear", "cubic"}, default="linear"
        How the sparsity rises (:func:`scheduled_sparsity`).
    pruning_epochs : int or None, default=None
        Pruning epochs; None: through ``net.max_epochs``; 0: never prune, only record.
    scope : {"recurrent", "all"}, default="recurrent"
        Recurrent and top-down weights, or every weight tensor (``NeuronGraph.tensors_in``).
    start_epoch : int, default=1
        Epoch (1-based, in the net's history) whose end is the first pruning step.
    verbose : int, default=0
        > 0: print one line per pruning step (step, epoch, target and achieved sparsity).

    Examples
    --------
    >>> from latticeprune import RNNClassifier, datasets
    >>> X, y = datasets.load_digits_sequences(return_X_y=True)
    >>> pruning = GradualMagnitudePruning(target_sparsity=0.8)
    >>> net = RNNClassifier(hidden_size=16, max_epochs=4, random_state=0, callbacks=[pruning])
    >>> net.fit(X[:200], y[:200]).history[:, "sparsity"]
    [0.2001953125, 0.400390625, 0.599609375, 0.7998046875]
    """

    _parameter_constraints = {
        "target_sparsity": [Interval(numbers.Real, 0, 1, closed="left")],
        "schedule": [StrOptions(set(SCHEDULES))],
        "pruning_epochs": [Interval(numbers.Integral, 0, None, closed="left"), None],
        "scope": [StrOptions(set(SCOPES))],
        "start_epoch": [Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, target_sparsity=0.9, schedule="linear", pruning_epochs=None,
                 scope="recurrent", start_epoch=1, verbose=0):
        vars(self).update({k: v for k, v in locals().items() if k != "self"})

    def initialize(self):
        validate_parameter_constraints(self._parameter_constraints, self.get_params(),
                                       caller_name=type(self).__name__)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if X is not None:
            trace_net(net, X)  # the wiring of net's module, whatever module it is

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        graph = NeuronGraph(net.module_)
        n_steps = (self.pruning_epochs if self.pruning_epochs is not None
                   else max(0, net.max_epochs - self.start_epoch + 1))
        step = len(net.history) - self.start_epoch + 1
        if 1 <= step <= n_steps:
            graph.freeze()  # magnitudes of the weights after the epoch's last optimiser step
            sparsity = scheduled_sparsity(step, n_steps, self.target_sparsity, self.schedule)
            graph.apply_masks(global_magnitude_masks(graph.tensors_in(self.scope), sparsity))
            check_input_reaches_readout(graph, f"Magnitude pruning to sparsity {sparsity:.3g} of "
                                               f"scope={self.scope!r} at epoch {len(net.history)}")
        achieved = graph.sparsity(self.scope)["overall"]
        net.history.record("sparsity", achieved)
        if self.verbose and 1 <= step <= n_steps:
            print(f"pruning step {step}/{n_steps} (epoch {len(net.history)}): target sparsity "
                  f"{sparsity:.2f}, achieved {achieved:.2f}", flush=True)
