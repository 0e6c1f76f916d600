"""``LanguageModel``: a word-level Elman/LSTM language model as a skorch estimator.

The language-modelling task of the moduli paper (``docs/methods/moduli.md`` section 6;
corpus from :func:`latticeprune.datasets.load_wikitext2`): embedding, one recurrent layer,
linear read-out to the vocabulary, next-word cross-entropy, perplexity as the metric.

Samples are token windows
-------------------------
sklearn splits ``X`` along its first axis, so the token stream is cut into non-overlapping
windows of ``bptt`` tokens (:func:`token_windows`): ``X[i]`` is one window and ``y[i]`` the
same window shifted one token ahead. Every window starts from a zero hidden state, so a
window is an independent sample that cross-validation and shuffled batches can move freely,
and truncated backpropagation through time is exact (gradients stop at the window's start).
The price: the first words of each window are predicted with little context, so
:meth:`LanguageModel.perplexity` is higher than the usual evaluation that carries the state
through the whole text; :meth:`LanguageModel.stream_perplexity` gives that figure.
"""

import math
import numbers

import numpy as np
import torch
from skorch import NeuralNet
from skorch.utils import to_numpy
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_consistent_length
from torch import nn

from ..datasets.wikitext import batchify, bptt_batches
from ..estimators import validate_own_params
from ..utils import torch_seed
from .common import GuardedNetMixin
from ..nets import CELLS, check_cell, fused_rnn

__all__ = ["LanguageModel", "WordLanguageNet", "token_windows"]

# Pseudo-count of every id in the unigram frequencies that start the decoder bias.
_UNSEEN_PSEUDO_COUNT = 0.1


def token_windows(ids, bptt=35):
    """Cut a token stream into non-overlapping windows ``X`` and next-token targets ``y``.

    Window ``i`` is ``ids[i * bptt : (i + 1) * bptt]`` and its target is the same span shifted
    by one token, so ``y[i, t] == ids[i * bptt + t + 1]``. The ``(len(ids) - 1) % bptt``
    trailing tokens that do not fill a window are dropped.

    Parameters
    ----------
    ids : 1-D array-like of int
        Token ids, e.g. ``load_wikitext2(path).train``.
    bptt : int, default=35
        Window length (the truncated-BPTT horizon), at least 1.

    Returns
    -------
    X, y : ndarray of int64, shape (n_windows, bptt)

    Examples
    --------
    >>> from latticeprune.tasks import token_windows
    >>> X, y = token_windows(range(8), bptt=3)
    >>> X.tolist(), y.tolist()
    ([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])
    """
    if not isinstance(bptt, numbers.Integral) or isinstance(bptt, bool) or bptt < 1:
        raise ValueError(f"bptt must be a positive integer, got {bptt!r}.")
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D array of integer token ids, got shape {ids.shape} "
                         f"and dtype {ids.dtype}.")
    n_windows = (len(ids) - 1) // bptt
    if n_windows < 1:
        raise ValueError(f"{len(ids)} tokens do not fill one window of bptt={bptt} plus its "
                         "next-token target.")
    span = n_windows * bptt
    X = ids[:span].reshape(n_windows, bptt).astype(np.int64)
    y = ids[1:span + 1].reshape(n_windows, bptt).astype(np.int64)
    return X, y


class WordLanguageNet(nn.Module):
    """Embedding, one ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer, dropout, linear decoder.

    Parameters
    ----------
    vocab_size : int
    embedding_size : int, default=128
    hidden_size : int, default=256
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="rnn_tanh"
    dropout : float, default=0.0
        On the embeddings and on the recurrent outputs (training only).
    tie_weights : bool, default=False
        Share the decoder's weight with the embedding (needs ``embedding_size ==
        hidden_size``).

    Examples
    --------
    >>> import torch
    >>> net = WordLanguageNet(vocab_size=50, embedding_size=8, hidden_size=16)
    >>> net(torch.zeros(2, 5, dtype=torch.long)).shape
    torch.Size([2, 5, 50])
    """

    def __init__(self, vocab_size, embedding_size=128, hidden_size=256, cell="rnn_tanh",
                 dropout=0.0, tie_weights=False):
        super().__init__()
        check_cell(cell)
        if tie_weights and embedding_size != hidden_size:
            raise ValueError(f"tie_weights=True needs embedding_size == hidden_size; got "
                             f"{embedding_size} and {hidden_size}.")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.rnn = fused_rnn(cell, embedding_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        # As PyTorch's word_language_model example.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def run(self, tokens, state=None):
        """Logits ``(batch, steps, vocab_size)`` and the final recurrent state."""
        outputs, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        return self.decoder(self.dropout(outputs)), state

    def encode(self, tokens):
        """Hidden states of the recurrent layer, ``(batch, steps, hidden_size)``."""
        return self.rnn(self.embedding(tokens))[0]

    def forward(self, tokens):
        return self.run(tokens)[0]


def _detach(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class LanguageModel(GuardedNetMixin, NeuralNet):

    """Word-level recurrent language model on token windows, a skorch ``NeuralNet``.

    ``X`` and ``y`` are ``(n_windows, bptt)`` integer token ids, ``y`` the windows shifted one
    token ahead (:func:`token_windows`); every window starts from a zero state (see the module
    docstring for why, and :meth:`stream_perplexity` for the carried-state figure). The net
    is :class:`WordLanguageNet`: embedding, an ``nn.RNN`` / ``nn.LSTM`` layer that
    :class:`~latticeprune.LatticePruner` and :class:`~latticeprune.ModuliRegularizer`
    sparsify, and a linear decoder (a read-out to them), trained with next-word
    cross-entropy. ``fit`` starts the decoder bias at the log unigram frequencies of ``y``
    (smoothed), so the net starts near the best context-free prediction. ``score`` is minus
    the perplexity, so ``GridSearchCV`` maximises it.

    Parameters
    ----------
    module : torch.nn.Module class, default=WordLanguageNet
        Built with the size parameters below.
    vocab_size : int or None, default=None
        Number of token ids. None: one more than the largest id in the ``X`` and ``y`` of
        ``fit``. Set it to ``corpus.vocab_size`` whenever the model will see other data
        (test text, cross-validation folds), since ids outside ``[0, vocab_size)`` are an
        error.
    embedding_size : int, default=128
    hidden_size : int, default=256
    cell : {"rnn_tanh", "rnn_relu", "lstm", "gru"}, default="rnn_tanh"
        Elman with tanh, as in the moduli paper.
    dropout : float in [0, 1), default=0.0
        Dropout on embeddings and recurrent outputs during training.
    tie_weights : bool, default=False
        Share the decoder's weight with the embedding (Press & Wolf 2017). Off by default
        because it breaks read-out pruning: pruning the decoder (``scope="all"``,
        ``prune_scope="all"``) would mask the decoder's view of the shared matrix while the
        embedding keeps using and training the unmasked one, so "the read-out is X% sparse"
        no longer describes the net. Recurrent-weight pruning (the default) is unaffected.
    max_grad_norm : float or None, default=1.0
        Clip the gradient norm (skorch ``GradientNormClipping``); None: no clipping.
    random_state : int, RandomState or None, default=None
        Seeds initialisation, dropout and batch shuffling (torch's generator is restored
        afterwards).
    lr : float, default=3e-3
        Adam's learning rate.
    max_epochs, batch_size, optimizer, train_split, callbacks, device, verbose, **kwargs
        As in skorch; ``train_split=None`` trains on all windows; batches are shuffled.

    Attributes
    ----------
    module_ : WordLanguageNet
        The fitted net (``embedding``, ``rnn``, ``decoder``).
    vocab_size_ : int
        Vocabulary size of the net.
    n_features_in_ : int
        Window length seen in ``fit``.

    Notes
    -----
    Not a classifier or a regressor for sklearn (``y`` is a 2-D array of ids), so
    ``GridSearchCV`` splits windows with plain ``KFold``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.tasks import LanguageModel, token_windows
    >>> ids = np.tile(np.arange(10), 50)  # a text that repeats 0 1 2 ... 9
    >>> X, y = token_windows(ids, bptt=10)
    >>> lm = LanguageModel(vocab_size=10, embedding_size=8, hidden_size=16, max_epochs=20,
    ...                    lr=0.01, random_state=0).fit(X, y)
    >>> lm.perplexity(X, y) < 1.5  # next word is certain after the first of each window
    True
    """

    _fitted_attribute = "vocab_size_"

    _parameter_constraints = {
        "vocab_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "embedding_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "cell": [StrOptions(set(CELLS))],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "tie_weights": ["boolean"],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "random_state": ["random_state"],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"),
                       Options(numbers.Integral, {-1})],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(self, module=WordLanguageNet, *, vocab_size=None, embedding_size=128,
                 hidden_size=256, cell="rnn_tanh", dropout=0.0, tie_weights=False,
                 max_grad_norm=1.0, random_state=None, criterion=nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=3e-3, max_epochs=5, batch_size=32,
                 train_split=None, device="cpu", verbose=0, **kwargs):
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.cell = cell
        self.dropout = dropout
        self.tie_weights = tie_weights
        self.max_grad_norm = max_grad_norm
        self.random_state = random_state
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr,
                         max_epochs=max_epochs, batch_size=batch_size, train_split=train_split,
                         device=device, verbose=verbose, **kwargs)

    # -- validation ------------------------------------------------------------------------
    def _check_params(self):
        validate_own_params(self)
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ValueError(f"tie_weights=True needs embedding_size == hidden_size; got "
                             f"{self.embedding_size} and {self.hidden_size}.")

    def _check_ids(self, ids, name, vocab_size):
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        ids = check_array(ids, dtype=None, input_name=name)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids (n_windows, bptt); got dtype "
                             f"{ids.dtype}. Build X and y with "
                             "latticeprune.tasks.token_windows(ids, bptt).")
        if ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size):
            raise ValueError(f"{name} has token ids outside [0, vocab_size={vocab_size}): "
                             f"min {ids.min()}, max {ids.max()}. Set vocab_size to the "
                             "corpus's vocabulary size.")
        return ids.astype(np.int64)

    def _check_data(self, X, y, reset):
        vocab_size = self.vocab_size if reset else self.vocab_size_
        X = self._check_ids(X, "X", vocab_size)
        if y is not None:
            y = self._check_ids(y, "y", vocab_size)
            check_consistent_length(X, y)
            if y.shape != X.shape:
                raise ValueError(f"y must have the shape of X (the windows shifted one token "
                                 f"ahead); got X {X.shape} and y {y.shape}.")
        if reset:
            self.vocab_size_ = (vocab_size if vocab_size is not None
                                else int(max(X.max(), y.max())) + 1)
            self.n_features_in_ = X.shape[1]
        return X, y

    # -- skorch hooks ----------------------------------------------------------------------
    def initialize_module(self):
        """Build ``module_``: a :class:`WordLanguageNet` gets its sizes from the parameters."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and issubclass(self.module, WordLanguageNet):
            kwargs = {"vocab_size": self.vocab_size_, "embedding_size": self.embedding_size,
                      "hidden_size": self.hidden_size, "cell": self.cell,
                      "dropout": self.dropout, "tie_weights": self.tie_weights, **kwargs}
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean next-token cross-entropy over all positions of the batch."""
        y_true = y_true.to(y_pred.device)
        return self.criterion_(y_pred.reshape(-1, y_pred.shape[-1]), y_true.reshape(-1))

    # -- training --------------------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Train on token windows ``X`` and their next-token targets ``y``.

        Re-initialises the net unless ``warm_start``.

        Returns
        -------
        self : LanguageModel
        """
        self._check_params()
        X, y = self._check_data(X, y, reset=True)
        with torch_seed(self.random_state):
            if not self.warm_start or not self.initialized_:
                self.initialize()
                self._init_decoder_bias(y)
            super().partial_fit(X, y, **fit_params)
        return self

    def _init_decoder_bias(self, y):
        """Start the decoder bias at the log unigram frequencies of ``y`` (smoothed).

        The net then starts near the best context-free prediction instead of spending its
        first updates learning word frequencies (Karpathy's "init well"). Ids absent from
        ``y`` get a pseudo-count of ``_UNSEEN_PSEUDO_COUNT``.
        """
        decoder = getattr(self.module_, "decoder", None)
        if not isinstance(decoder, nn.Linear) or decoder.bias is None:
            return
        counts = np.bincount(y.ravel(), minlength=self.vocab_size_) + _UNSEEN_PSEUDO_COUNT
        with torch.no_grad():
            log_freq = torch.as_tensor(np.log(counts / counts.sum()), dtype=decoder.bias.dtype)
            decoder.bias.copy_(log_freq)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train a fitted net further (``epochs=k`` trains k epochs); unfitted: ``fit``."""
        if not self.initialized_ or not hasattr(self, "vocab_size_"):
            return self.fit(X, y, **fit_params)
        X, y = self._check_data(X, y, reset=False)
        super().partial_fit(X, y, **fit_params)
        return self

    # -- outputs ---------------------------------------------------------------------------
    def _nll(self, X, y):
        """Summed next-token negative log-likelihood (nats) and the number of tokens."""
        self._check_fitted()
        X, y = self._check_data(X, y, reset=False)
        self.module_.train(False)
        total = 0.0
        with torch.no_grad():
            for Xi, yi in self.get_iterator(self.get_dataset(X, y), training=False):
                logits = self.module_(Xi.to(self.device))
                total += float(nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), yi.to(self.device).reshape(-1),
                    reduction="sum"))
        return total, y.size

    def perplexity(self, X, y):
        """``exp`` of the mean next-token cross-entropy over every token of ``y``.

        Each window starts from a zero state (see the module docstring).

        Parameters
        ----------
        X, y : array-like of int, shape (n_windows, bptt)

        Returns
        -------
        perplexity : float
        """
        total, count = self._nll(X, y)
        return math.exp(total / count)

    def score(self, X, y, sample_weight=None):
        """Minus :meth:`perplexity` (greater is better)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by LanguageModel.score.")
        return -self.perplexity(X, y)

    def stream_perplexity(self, ids, batch_size=10, bptt=35):
        """Perplexity of a token stream with the hidden state carried through the text.

        The usual evaluation of PyTorch's ``word_language_model``: the stream is cut into
        ``batch_size`` parallel columns (:func:`~latticeprune.datasets.batchify`) read in
        windows of ``bptt`` steps, each window starting from the previous one's final state.

        Parameters
        ----------
        ids : 1-D array-like of int
            Token ids, e.g. ``corpus.test``.
        batch_size : int, default=10
        bptt : int, default=35

        Returns
        -------
        perplexity : float
        """
        self._check_fitted()
        ids = self._check_ids(np.asarray(ids).reshape(1, -1), "ids", self.vocab_size_)[0]
        data = batchify(torch.from_numpy(ids), batch_size)
        self.module_.train(False)
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            for inputs, targets in bptt_batches(data, bptt, batch_first=True):
                logits, state = self.module_.run(inputs.to(self.device), state)
                state = _detach(state)
                total += float(nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).to(self.device),
                    reduction="sum"))
                count += targets.numel()
        return math.exp(total / count)

    def predict(self, X):
        """Most likely next token at every position, ``(n_windows, bptt)`` ids."""
        self._check_fitted()
        X, _ = self._check_data(X, None, reset=False)
        self.module_.train(False)
        out = []
        with torch.no_grad():
            for Xi, _ in self.get_iterator(self.get_dataset(X), training=False):
                out.append(to_numpy(self.module_(Xi.to(self.device)).argmax(dim=-1)))
        return np.concatenate(out)

    def transform(self, X):
        """Final hidden state of each window, ``(n_windows, hidden_size)``."""
        self._check_fitted()
        X, _ = self._check_data(X, None, reset=False)
        self.module_.train(False)
        hidden = []
        with torch.no_grad():
            for Xi, _ in self.get_iterator(self.get_dataset(X), training=False):
                hidden.append(to_numpy(self.module_.encode(Xi.to(self.device))[:, -1]))
        return np.concatenate(hidden)

    # skorch gives every net a predict_proba; (n_windows, bptt, vocab_size) probabilities rarely
    # fit in memory, so it is hidden: use perplexity, predict, or module_.run on a few windows.
    predict_proba = available_if(lambda self: False)(NeuralNet.predict_proba)
