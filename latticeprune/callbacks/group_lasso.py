"""The group-lasso penalty on hidden units as a skorch callback (Wen et al., ICLR 2018,
"Learning Intrinsic Sparse Structures within Long Short-Term Memory").

Each hidden unit's group is every weight its removal deletes: its gate rows in its layer's
input, recurrent and top-down weights, and the columns that read it (its own recurrent
columns, the next layer's input columns, the read-out's), as the module's traced
dependencies list them (:func:`~latticeprune.units.group_lasso`). The training objective
becomes ``task loss + strength * sum over units of ||group||_2``, which drives whole groups to
zero; the weakest groups are then removed (``LatticePruner(strategy="group_lasso",
granularity="unit")``). The callback back-propagates the penalty itself
(:class:`~latticeprune.callbacks.penalty.TrainingPenalty`). Cost per batch: one pass over the
weights.
"""

import numbers

from sklearn.utils._param_validation import Interval, validate_parameter_constraints

from ..dependency import trace_net
from ..neuron_graph import NeuronGraph
from ..units import group_lasso
from .penalty import TrainingPenalty

__all__ = ["GroupLassoPenalty", "HISTORY_KEY"]

#: History key of the penalty (per batch, and its epoch mean).
HISTORY_KEY = "group_lasso"


class GroupLassoPenalty(TrainingPenalty):
    """skorch callback adding ``strength`` times the group lasso of the hidden units.

    Parameters
    ----------
    strength : float >= 0, default=1e-3
        Weight of the sum of the units' group norms in the training objective.

    Examples
    --------
    >>> from latticeprune import RNNClassifier
    >>> from latticeprune.callbacks import GroupLassoPenalty
    >>> from latticeprune.datasets import load_digits_sequences
    >>> X, y = load_digits_sequences(return_X_y=True)
    >>> net = RNNClassifier(hidden_size=8, max_epochs=2, random_state=0,
    ...                     callbacks=[GroupLassoPenalty(strength=0.01)]).fit(X[:200], y[:200])
    >>> len(net.history[-1, "batches", :, "group_lasso"])
    13
    """

    history_key = HISTORY_KEY
    _parameter_constraints = {"strength": [Interval(numbers.Real, 0, None, closed="left")]}

    def __init__(self, strength=1e-3):
        self.strength = strength

    def initialize(self):
        validate_parameter_constraints(self._parameter_constraints,
                                       {"strength": self.strength},
                                       caller_name=type(self).__name__)
        self.graph_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if X is not None:
            trace_net(net, X)  # the wiring of net's module, whatever module it is
        # rebuilt every time training starts: the module may have been re-created or pruned
        self.graph_ = NeuronGraph(net.module_)

    def loss_term(self):
        """``strength`` times the group lasso, a differentiable scalar tensor (after
        ``on_train_begin``)."""
        return self.strength * group_lasso(self.graph_)

    def __getstate__(self):
        # the graph holds handles into the net's module, which skorch pickles on its own
        return {**self.__dict__, "graph_": None}
