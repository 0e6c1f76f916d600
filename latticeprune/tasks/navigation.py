"""``PathIntegrator``: a recurrent net that integrates velocity into place-cell codes.

The estimator of the navigation task of the moduli paper (``docs/methods/moduli.md``
section 6; data from :func:`latticeprune.datasets.make_navigation_task`), after the grid-cell
RNNs of Sorscher et al. (NeurIPS 2019): the start position's place-cell code is encoded into
the initial hidden state, the net receives the velocity at every step and reads out
place-cell logits, trained by softmax cross-entropy against the target codes.

Input layout
------------
sklearn's model selection indexes ``X`` along its first axis only, so the two inputs of a
trajectory travel together as one 2-D float row (use :func:`navigation_inputs`)::

    X[i] = [init_code (n_place_cells) | velocity step 0 (input_size) | step 1 | ... ]

``X`` has ``n_place_cells + n_steps * input_size`` columns. ``y`` holds the target codes,
``(n_samples, n_steps, n_place_cells)``, each row a distribution over the place cells.

Every trajectory of one ``X`` has the same number of steps (``make_navigation_task``
generates them so). Variable-length input (a list of arrays, ``PaddedSequences``) is refused
with a ``ValueError``: the packed row would need a second layout, and the targets, the
decoder and ``score`` masking, for trajectories the task never produces; the number of steps
may still differ between ``fit`` and ``predict``.
"""

import numbers

import numpy as np
import torch
from scipy.sparse import issparse
from skorch import NeuralNetRegressor
from sklearn.metrics import make_scorer
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_consistent_length
from torch import nn

from ..datasets.navigation import decode_position, position_error_cm
from ..estimators import SequenceNet
from ..nets import fused_rnn
from ..sequences import is_variable_length

__all__ = ["PathIntegrator", "PathIntegrationNet", "InitialStateEncoder", "navigation_inputs",
           "split_navigation_inputs", "decoded_position_error_cm", "position_error_scorer"]

# Tolerance on the target codes' sums (float32 softmax outputs sum to 1 within ~1e-6).
_CODE_SUM_TOLERANCE = 1e-3


# -- input layout ----------------------------------------------------------------------------
def navigation_inputs(velocities, init_codes):
    """Pack velocities and initial place-cell codes into the 2-D ``X`` of :class:`PathIntegrator`.

    Parameters
    ----------
    velocities : array-like of shape (n_samples, n_steps, input_size)
        Velocity inputs, e.g. ``make_navigation_task(...).velocities``.
    init_codes : array-like of shape (n_samples, n_place_cells)
        Place-cell code of each start position (``.init_codes``).

    Returns
    -------
    X : ndarray of float32, shape (n_samples, n_place_cells + n_steps * input_size)
        ``[init_code | velocity step 0 | step 1 | ...]`` per row.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> from latticeprune.tasks import navigation_inputs
    >>> task = make_navigation_task(4, n_steps=5, n_place_cells=32, random_state=0)
    >>> navigation_inputs(task.velocities, task.init_codes).shape
    (4, 42)
    """
    velocities = check_array(velocities, dtype=np.float32, allow_nd=True, input_name="velocities")
    init_codes = check_array(init_codes, dtype=np.float32, input_name="init_codes")
    if velocities.ndim != 3:
        raise ValueError(f"velocities must be 3-D (n_samples, n_steps, input_size), got shape "
                         f"{velocities.shape}.")
    check_consistent_length(velocities, init_codes)
    return np.concatenate([init_codes, velocities.reshape(len(velocities), -1)], axis=1)


def split_navigation_inputs(X, n_place_cells, input_size=2):
    """Inverse of :func:`navigation_inputs`: ``(velocities, init_codes)`` from ``X``.

    Parameters
    ----------
    X : ndarray or torch.Tensor of shape (n_samples, n_place_cells + n_steps * input_size)
    n_place_cells : int
    input_size : int, default=2

    Returns
    -------
    velocities : shape (n_samples, n_steps, input_size)
    init_codes : shape (n_samples, n_place_cells)
        Views of ``X`` (same type).
    """
    n_inputs = X.shape[1] - n_place_cells
    if X.ndim != 2 or n_inputs < input_size or n_inputs % input_size:
        raise ValueError(
            f"X must be 2-D with n_place_cells + n_steps * input_size = {n_place_cells} + "
            f"n_steps * {input_size} columns (n_steps >= 1; build it with "
            f"latticeprune.tasks.navigation_inputs); got shape {tuple(X.shape)}.")
    velocities = X[:, n_place_cells:].reshape(X.shape[0], n_inputs // input_size, input_size)
    return velocities, X[:, :n_place_cells]


# -- the metric ------------------------------------------------------------------------------
def decoded_position_error_cm(y_true, y_pred, *, centres, k=3):
    """Mean distance (cm) between positions decoded from predicted and from target codes.

    Both codes go through the same decoder (:func:`~latticeprune.datasets.decode_position`,
    mean centre of the ``k`` most active cells), so a perfect prediction scores 0. The
    paper's figure compares with the true positions instead
    (:func:`~latticeprune.datasets.position_error_cm`); the two differ by at most the
    decoder's own error on true codes (measured: see docs/experiments.md).
    ``y_true``, ``y_pred``: codes (or logits) ``(..., n_place_cells)``; ``centres``:
    ``(n_place_cells, 2)`` in metres.
    """
    return position_error_cm(y_pred, decode_position(y_true, centres, k=k), centres, k=k)


def position_error_scorer(centres, k=3):
    """A GridSearchCV scorer: the negative :func:`decoded_position_error_cm` of ``predict``.

    Works with any estimator whose ``predict`` returns place-cell codes, including a
    sparsifier wrapping a :class:`PathIntegrator`; ``centres``, ``k`` as in that function.

    Examples
    --------
    >>> from latticeprune.tasks import position_error_scorer
    >>> from latticeprune.datasets import make_place_cell_centres
    >>> scorer = position_error_scorer(make_place_cell_centres(64))
    """
    centres = _check_centres(centres)
    return make_scorer(decoded_position_error_cm, greater_is_better=False, centres=centres, k=k)


def _not_codes(codes):
    """Rows (over the last axis) of ``codes`` that are no place-cell codes: a negative entry,
    or a sum off one by more than ``_CODE_SUM_TOLERANCE``."""
    sums = codes.sum(axis=-1, dtype=np.float64)
    return (codes < 0).any(axis=-1) | (np.abs(sums - 1.0) > _CODE_SUM_TOLERANCE)


def _check_codes(init_codes):
    """Refuse start codes that are no place-cell codes (:func:`_not_codes`; as
    :func:`~latticeprune.datasets.place_cell_codes` makes them, non-negative and summing to
    one): the sign of an ``X`` built for another number of place cells, which the packed
    layout could otherwise misread as more or fewer steps."""
    bad = np.flatnonzero(_not_codes(init_codes))
    if bad.size:
        raise ValueError(
            f"The first {init_codes.shape[1]} columns of X must be the start positions' "
            f"place-cell codes (non-negative, summing to one), one per place cell of "
            f"`centres`; row {bad[0]} sums to {init_codes[bad[0]].sum(dtype=np.float64):.4g}. "
            "Was X built for another number of place cells? Build it with "
            "latticeprune.tasks.navigation_inputs(velocities, init_codes) from "
            "make_navigation_task or place_cell_codes.")


def _check_centres(centres):
    shape = None if centres is None else np.shape(centres)
    if shape is None or len(shape) != 2 or shape[1] != 2 or shape[0] == 0:
        raise ValueError("centres must be the place-cell centres, an array of shape "
                         f"(n_place_cells, 2) (make_navigation_task(...).centres); got "
                         f"{'None' if shape is None else f'shape {shape}'}.")
    return check_array(centres, dtype=np.float64, input_name="centres")


# -- the torch modules -----------------------------------------------------------------------
class InitialStateEncoder(nn.Module):
    """Linear map from a place-cell code to the initial recurrent state(s), without bias.

    A plain parameter module rather than ``nn.Linear`` on purpose:
    :class:`~latticeprune.neuron_graph.NeuronGraph` reads every ``nn.Linear`` outside the
    recurrent layers as a read-out, which this is not. So no sparsifier prunes or penalises it.

    Parameters
    ----------
    n_place_cells : int
    hidden_size : int
    n_states : int, default=1
        1 for Elman and GRU (``h0``), 2 for LSTM (``h0`` and ``c0``).
    """

    def __init__(self, n_place_cells, hidden_size, n_states=1):
        super().__init__()
        self.hidden_size = hidden_size
        self.n_states = n_states
        self.weight = nn.Parameter(torch.empty(n_states * hidden_size, n_place_cells))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Linear's default

    def forward(self, codes):
        """States ``(1, batch, hidden_size)``, a tensor or, for LSTM, an ``(h0, c0)`` tuple."""
        states = nn.functional.linear(codes, self.weight).unsqueeze(0)
        if self.n_states == 1:
            return states
        return tuple(states.chunk(self.n_states, dim=-1))


class PathIntegrationNet(nn.Module):
    """Initial-state encoder, one recurrent layer, linear read-out to place-cell logits.

    Parameters
    ----------
    n_place_cells : int
        Np, the read-out size and the width of the initial code.
    hidden_size : int, default=256
        Ng, hidden units.
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="rnn_tanh"
    input_size : int, default=2
        Velocity features per step.

    Examples
    --------
    >>> import torch
    >>> net = PathIntegrationNet(n_place_cells=16, hidden_size=8)
    >>> net(torch.zeros(3, 16 + 5 * 2)).shape  # 5 steps
    torch.Size([3, 5, 16])
    """

    def __init__(self, n_place_cells, hidden_size=256, cell="rnn_tanh", input_size=2):
        super().__init__()
        self.n_place_cells = n_place_cells
        self.input_size = input_size
        self.initial_state = InitialStateEncoder(n_place_cells, hidden_size,
                                                 n_states=2 if cell == "lstm" else 1)
        self.rnn = fused_rnn(cell, input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, n_place_cells)

    def example_input(self):
        """One trajectory of two steps (zeros): what the dependency trace runs."""
        param = self.readout.weight
        return torch.zeros(1, self.n_place_cells + 2 * self.input_size, dtype=param.dtype,
                           device=param.device)

    def encode(self, x):
        """Hidden states for packed inputs ``x``: ``(outputs (batch, steps, hidden), last (batch, hidden))``."""
        velocities, init_codes = split_navigation_inputs(x, self.n_place_cells, self.input_size)
        outputs = self.rnn(velocities, self.initial_state(init_codes))[0]
        return outputs, outputs[:, -1]

    def forward(self, x):
        """Place-cell logits ``(batch, n_steps, n_place_cells)``."""
        return self.readout(self.encode(x)[0])


# -- the estimator ---------------------------------------------------------------------------
class PathIntegrator(SequenceNet, NeuralNetRegressor):

    """Recurrent path integrator for the navigation task, a skorch ``NeuralNetRegressor``.

    The net is :class:`PathIntegrationNet` (the start code sets the initial state, ``h0`` and
    ``c0`` for an LSTM; the recurrent layer, which the sparsifiers find, reads the velocities;
    a linear read-out gives place-cell logits), trained by soft-target cross-entropy averaged
    over steps and trajectories. ``X`` and ``y`` are laid out as in the module docstring
    (:func:`navigation_inputs`); the number of steps may differ between ``fit`` and ``predict``,
    not within one ``X`` (variable-length trajectories are refused: module docstring).

    Parameters
    ----------
    module : torch.nn.Module class, default=PathIntegrationNet
        Built with ``n_place_cells=len(centres)`` and the size parameters below.
    centres : array-like of shape (n_place_cells, 2)
        Place-cell centres in metres (``make_navigation_task(...).centres``). Required: they
        fix Np, the input layout and the decoder behind ``score``. Default None only so that
        the estimator can be constructed and cloned; ``fit`` raises without them.
    hidden_size : int, default=256
        Ng, recurrent units.
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="rnn_tanh"
        Elman with tanh, as in the moduli paper.
    input_size : int, default=2
        Velocity features per step (3 for ``input_format="speed_heading"``).
    decode_k : int, default=3
        Most active cells averaged when decoding positions.
    max_grad_norm : float or None, default=0.1
        Clip the task gradient's norm (a default callback: the moduli penalty's gradient is
        not clipped); None: no clipping (measured: see docs/experiments.md).
    random_state, n_threads
        As in :class:`~latticeprune.RNNClassifier`.
    lr : float, default=5e-3
        Adam's learning rate (measured: see docs/experiments.md).
    iterator_train__shuffle : bool, default=True
        Shuffle the training batches every epoch (seeded by ``random_state``).
    max_epochs, batch_size, optimizer, train_split, callbacks, device, verbose, **kwargs
        As in skorch; ``train_split=None`` trains on all of ``X``.

    Attributes
    ----------
    module_ : PathIntegrationNet
        The fitted net (``initial_state``, ``rnn``, ``readout``).
    n_place_cells_, n_steps_, n_features_in_ : int
        Np, steps per trajectory and columns of ``X`` seen in ``fit``.

    See Also
    --------
    position_error_scorer : the same metric as a scorer, for any estimator predicting codes.
    latticeprune.datasets.make_navigation_task : the data.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> from latticeprune.tasks import PathIntegrator, navigation_inputs
    >>> task = make_navigation_task(200, n_steps=10, n_place_cells=64, random_state=0)
    >>> X = navigation_inputs(task.velocities, task.init_codes)
    >>> model = PathIntegrator(centres=task.centres, hidden_size=32, max_epochs=2,
    ...                        random_state=0).fit(X, task.targets)
    >>> model.predict(X[:3]).shape
    (3, 10, 64)
    >>> model.score(X, task.targets) < 0  # minus the decoded error in cm
    True
    """

    _parameter_constraints = {
        **SequenceNet._parameter_constraints,
        "input_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "decode_k": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }
    _net_class = PathIntegrationNet

    def __init__(self, module=PathIntegrationNet, *, centres=None, hidden_size=256,
                 cell="rnn_tanh", input_size=2, decode_k=3, max_grad_norm=0.1,
                 random_state=None, n_threads=1, criterion=nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=5e-3, max_epochs=10, batch_size=64,
                 iterator_train__shuffle=True, train_split=None, device="cpu", verbose=0,
                 **kwargs):
        self._init_params(locals())

    def _check_params(self):
        super()._check_params()
        self.centres_ = _check_centres(self.centres)
        if self.decode_k > len(self.centres_):
            raise ValueError(f"decode_k={self.decode_k} exceeds the {len(self.centres_)} "
                             "place cells.")

    def _check_X(self, X, reset):
        if isinstance(X, dict) and not issparse(X):  # (a dok sparse matrix is a dict)
            raise ValueError("X must be one 2-D array [init_code | velocities]; build it from "
                             "the two parts with latticeprune.tasks.navigation_inputs.")
        if is_variable_length(X):
            raise ValueError("PathIntegrator takes trajectories of one length: X is one 2-D "
                             "array (n_samples, n_place_cells + n_steps * input_size) from "
                             "latticeprune.tasks.navigation_inputs; got sequences of different "
                             "lengths, which it does not support (cut them to one n_steps).")
        X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X
        X = check_array(X, dtype=np.float32, allow_nd=True, order="C", input_name="X")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_place_cells + n_steps * input_size); "
                             f"got shape {X.shape}. Build it with "
                             "latticeprune.tasks.navigation_inputs(velocities, init_codes).")
        input_size = self.input_size if reset else self.input_size_
        _, init_codes = split_navigation_inputs(X, len(self.centres_), input_size)
        _check_codes(init_codes)
        if reset:
            self.n_place_cells_ = len(self.centres_)
            self.input_size_ = input_size
            self.n_steps_ = (X.shape[1] - self.n_place_cells_) // input_size
            self.n_features_in_ = X.shape[1]
        return X

    def _check_y(self, X, y, reset=False):
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y
        y = check_array(y, dtype=np.float32, allow_nd=True, ensure_2d=False, input_name="y")
        n_steps = (X.shape[1] - self.n_place_cells_) // self.input_size_
        expected = (len(X), n_steps, self.n_place_cells_)
        if y.shape != expected:
            raise ValueError(f"y must be the target place-cell codes of shape (n_samples, "
                             f"n_steps, n_place_cells) = {expected} for this X; got shape "
                             f"{y.shape}.")
        if _not_codes(y).any():
            raise ValueError("y must hold place-cell codes: non-negative, each step summing to "
                             "one over the place cells (make_navigation_task(...).targets).")
        return y

    def _module_kwargs(self):
        return {"n_place_cells": self.n_place_cells_, "hidden_size": self.hidden_size,
                "cell": self.cell, "input_size": self.input_size_}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Soft-target cross-entropy, averaged over trajectories and steps."""
        return super().get_loss(y_pred.reshape(-1, y_pred.shape[-1]),
                                y_true.to(y_pred.device).reshape(-1, y_true.shape[-1]), X=X,
                                training=training)

    def predict(self, X):
        """Predicted place-cell codes (softmax of the logits), ``(n_samples, n_steps, Np)``."""
        return torch.softmax(torch.from_numpy(self._outputs(X)), dim=-1).numpy()

    def decode(self, X):
        """Decoded positions in metres, ``(n_samples, n_steps, 2)``."""
        return decode_position(self._outputs(X), self.centres_, k=self.decode_k)

    def score(self, X, y, sample_weight=None, positions=None):
        """Minus the decoded position error in cm (greater is better).

        The reference positions are decoded from the target codes ``y`` with the same decoder
        (:func:`decoded_position_error_cm`) or, if given, are ``positions`` ``(n_samples,
        n_steps, 2)`` in metres (the paper's figure, ``datasets.position_error_cm``).
        ``sample_weight`` is not supported (sklearn signature).
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by PathIntegrator.score.")
        logits = self._outputs(X)
        if positions is None:
            y = self._check_y(self.check_sequences(X), y)
            return -decoded_position_error_cm(y, logits, centres=self.centres_, k=self.decode_k)
        return -position_error_cm(logits, np.asarray(positions), self.centres_, k=self.decode_k)

    # skorch gives every net a predict_proba; predicted codes come from predict.
    predict_proba = available_if(lambda self: False)(NeuralNetRegressor.predict_proba)
