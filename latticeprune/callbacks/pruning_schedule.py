"""The pruning schedule of both sparsifiers, and gradual magnitude pruning during training.

:func:`scheduled_sparsity` is the one schedule: the target after each pruning step (a round
of ``LatticePruning``, an epoch of :class:`GradualMagnitudePruning`). The callback zeroes, at
the end of each pruning epoch, the smallest entries of the tensors in scope
(:class:`~latticeprune.rules.Entries` ranked by :class:`~latticeprune.rules.MagnitudeRanker`)
up to ``target_sparsity`` (docs/methods/moduli.md section 5; Zhu & Gupta 2017, "To prune, or
not to prune"). Masks go through :meth:`NeuronGraph.apply_masks` (``torch.nn.utils.prune``), so
a pruned weight stays exactly zero through every later optimiser step.
"""

import numbers

from skorch.callbacks import Callback
from skorch.dataset import get_len
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ..autosize import training_epochs
from ..dependency import trace_net
from ..neuron_graph import SCOPES, NeuronGraph
from ..rules import Entries, MagnitudeRanker
from .connectivity import check_input_reaches_readout

__all__ = ["GradualMagnitudePruning", "SCHEDULES", "scheduled_sparsity"]

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
        return target_sparsity * step / n_steps
    return target_sparsity * (1.0 - (1.0 - progress) ** 3)


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
        Pruning epochs; None: through ``net.max_epochs`` (``"auto"`` resolved for the data);
        0: never prune, only record.
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
            self.max_epochs_ = training_epochs(net, get_len(X))

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        graph = NeuronGraph(net.module_)
        n_steps = (self.pruning_epochs if self.pruning_epochs is not None
                   else max(0, self.max_epochs_ - self.start_epoch + 1))
        step = len(net.history) - self.start_epoch + 1
        if 1 <= step <= n_steps:
            graph.freeze()  # magnitudes of the weights after the epoch's last optimiser step
            sparsity = scheduled_sparsity(step, n_steps, self.target_sparsity, self.schedule)
            entries = Entries(graph, graph.tensors_in(self.scope))
            graph.apply_masks(entries.prune(MagnitudeRanker().order(entries), sparsity)[0])
            check_input_reaches_readout(graph, f"Magnitude pruning to sparsity {sparsity:.3g} of "
                                               f"scope={self.scope!r} at epoch {len(net.history)}")
        achieved = graph.sparsity(self.scope)["overall"]
        net.history.record("sparsity", achieved)
        if self.verbose and 1 <= step <= n_steps:
            print(f"pruning step {step}/{n_steps} (epoch {len(net.history)}): target sparsity "
                  f"{sparsity:.2f}, achieved {achieved:.2f}", flush=True)
