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

Variable-length input (a list of token arrays of different lengths, ``PaddedSequences``) is
refused with a ``ValueError``: a sample is a window of one stream, all of length ``bptt``;
sentences or documents of any length are concatenated into the stream first (as PyTorch's
``word_language_model`` does) and cut with :func:`token_windows`.
"""

import math
import numbers

import numpy as np
import torch
from skorch import NeuralNet
from skorch.utils import to_numpy
from sklearn.utils._param_validation import Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted
from torch import nn

from ..datasets.wikitext import batchify, bptt_batches
from ..estimators import SequenceNet
from ..nets import fused_rnn
from ..sequences import is_variable_length

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

    def example_input(self):
        """One window of two tokens (zeros): what the dependency trace runs."""
        return torch.zeros(1, 2, dtype=torch.long, device=self.embedding.weight.device)

    def run(self, tokens, state=None):
        """Logits ``(batch, steps, vocab_size)`` and the final recurrent state."""
        outputs, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        return self.decoder(self.dropout(outputs)), state

    def encode(self, tokens):
        """Hidden states of the recurrent layer: ``(outputs (batch, steps, hidden), last (batch, hidden))``."""
        outputs = self.rnn(self.embedding(tokens))[0]
        return outputs, outputs[:, -1]

    def forward(self, tokens):
        return self.run(tokens)[0]


class LanguageModel(SequenceNet, NeuralNet):

    """Word-level recurrent language model on token windows, a skorch ``NeuralNet``.

    ``X`` and ``y`` are ``(n_windows, bptt)`` token ids, ``y`` shifted one token ahead
    (:func:`token_windows`; each window starts from a zero state, see the module docstring).
    The sparsifiers prune the recurrent layer of :class:`WordLanguageNet`; its decoder is a
    read-out to them. ``fit`` starts the decoder bias at the smoothed log unigram frequencies
    of ``y``. ``score`` is minus the perplexity, so ``GridSearchCV`` maximises it.

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
        Share the decoder's weight with the embedding (Press & Wolf 2017). Pruning the
        decoder (``scope="all"``) then masks only the decoder's view of the shared matrix.
    max_grad_norm : float or None, default=1.0
        Clip the gradient norm (skorch ``GradientNormClipping``); None: no clipping.
    random_state, n_threads
        As in :class:`~latticeprune.RNNClassifier` (``random_state`` also seeds dropout).
    lr : float, default=3e-3
        Adam's learning rate.
    iterator_train__shuffle : bool, default=True
        Shuffle the training batches every epoch (seeded by ``random_state``).
    max_epochs, batch_size, optimizer, train_split, callbacks, device, verbose, **kwargs
        As in skorch; ``train_split=None`` trains on all windows.

    Attributes
    ----------
    module_ : WordLanguageNet
        The fitted net (``embedding``, ``rnn``, ``decoder``).
    vocab_size_, n_features_in_ : int
        Vocabulary size of the net; window length seen in ``fit``.

    Notes
    -----
    Not a classifier or a regressor for sklearn (``y`` is a 2-D array of ids), so
    ``GridSearchCV`` splits windows with plain ``KFold``.
    Variable-length sequences are refused (``ValueError``): every window has ``bptt`` tokens;
    concatenate sentences into one stream first (module docstring).

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

    _parameter_constraints = {
        **SequenceNet._parameter_constraints,
        "vocab_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "embedding_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "tie_weights": ["boolean"],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
    }
    _net_class = WordLanguageNet

    def __init__(self, module=WordLanguageNet, *, vocab_size=None, embedding_size=128,
                 hidden_size=256, cell="rnn_tanh", dropout=0.0, tie_weights=False,
                 max_grad_norm=1.0, random_state=None, n_threads=1, criterion=nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr=3e-3, max_epochs=5, batch_size=32,
                 iterator_train__shuffle=True, train_split=None, device="cpu", verbose=0,
                 **kwargs):
        self._init_params(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # token ids are >= 0
        tags.transformer_tags.preserves_dtype = []  # ids in, float32 hidden states out
        return tags

    def _check_ids(self, ids, name, reset, ensure_2d=True):
        if is_variable_length(ids):
            raise ValueError(f"LanguageModel takes token windows of one length: {name} is "
                             "(n_windows, bptt) from latticeprune.tasks.token_windows; got "
                             "sequences of different lengths, which it does not support. "
                             "Concatenate the token ids into one stream and cut it with "
                             "token_windows(ids, bptt).")
        vocab_size = self.vocab_size if reset else self.vocab_size_
        ids = ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids
        ids = check_array(ids, dtype=None, order="C", ensure_2d=ensure_2d, allow_nd=not ensure_2d,
                          input_name=name)
        if ids.dtype == object:
            # As sklearn's check_array: an object array of numbers is read as numbers (anything
            # else raises numpy's TypeError); one of integers as ids.
            integral = all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                           for v in ids.flat)
            ids = ids.astype(np.int64 if integral else np.float64)
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids (n_windows, bptt); got dtype "
                             f"{ids.dtype}. Build X and y with "
                             "latticeprune.tasks.token_windows(ids, bptt).")
        low, high = ids.min(), ids.max()
        if low < 0:
            bound = "vocab_size" if vocab_size is None else f"vocab_size={vocab_size}"
            raise ValueError(f"Negative values in data passed to {name}: token ids outside "
                             f"[0, {bound}), min {low}.")
        if vocab_size is not None and high >= vocab_size:
            raise ValueError(f"{name} has token ids outside [0, vocab_size={vocab_size}): "
                             f"max {high}. Set vocab_size to the corpus's vocabulary size.")
        return ids.astype(np.int64)

    def _check_X(self, X, reset):
        X = self._check_ids(X, "X", reset)
        if reset:
            self.n_features_in_ = X.shape[1]
        return X

    def _check_y(self, X, y, reset):
        y = self._check_ids(y, "y", reset, ensure_2d=False)
        if y.shape != X.shape:
            raise ValueError(f"y must have the shape of X, {X.shape} (its windows shifted one "
                             f"token ahead: latticeprune.tasks.token_windows); got y of shape "
                             f"{y.shape}.")
        if reset:
            self.vocab_size_ = (self.vocab_size if self.vocab_size is not None
                                else int(max(X.max(), y.max())) + 1)
        return y

    def _module_kwargs(self):
        return {"vocab_size": self.vocab_size_, "embedding_size": self.embedding_size,
                "hidden_size": self.hidden_size, "cell": self.cell, "dropout": self.dropout,
                "tie_weights": self.tie_weights}

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Mean next-token cross-entropy over all positions of the batch."""
        return super().get_loss(y_pred.reshape(-1, y_pred.shape[-1]),
                                y_true.to(y_pred.device).reshape(-1), X=X, training=training)

    def _init_from_targets(self, X, y, sample_weight):
        """Start the decoder bias at the log unigram frequencies of ``y`` (the best
        context-free prediction, windows weighted by ``sample_weight``); absent ids get a
        pseudo-count ``_UNSEEN_PSEUDO_COUNT``."""
        decoder = getattr(self.module_, "decoder", None)
        if not isinstance(decoder, nn.Linear) or decoder.bias is None:
            return
        weights = None if sample_weight is None else np.repeat(sample_weight, y.shape[1])
        counts = (np.bincount(y.ravel(), weights=weights, minlength=self.vocab_size_)
                  + _UNSEEN_PSEUDO_COUNT)
        with torch.no_grad():
            log_freq = torch.as_tensor(np.log(counts / counts.sum()), dtype=decoder.bias.dtype)
            decoder.bias.copy_(log_freq)

    def perplexity(self, X, y):
        """``exp`` of the mean next-token cross-entropy over every token of ``y``
        (``(n_windows, bptt)`` ids; each window starts from a zero state)."""
        X = self.check_sequences(X)
        y = self._check_y(X, y, reset=False)
        nll = self._map_batches(lambda x, yi: float(_cross_entropy_sum(self.module_(x), yi)),
                                X, y)
        return math.exp(sum(nll) / y.size)

    def score(self, X, y, sample_weight=None):
        """Minus :meth:`perplexity` (greater is better)."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported by LanguageModel.score.")
        return -self.perplexity(X, y)

    def stream_perplexity(self, ids, batch_size=10, bptt=35):
        """Perplexity of a token stream with the hidden state carried through the text.

        The usual evaluation of PyTorch's ``word_language_model``: the token ids (e.g.
        ``corpus.test``) are cut into ``batch_size`` parallel columns
        (:func:`~latticeprune.datasets.batchify`) read in windows of ``bptt`` steps, each
        starting from the previous one's final state.
        """
        check_is_fitted(self)
        ids = self._check_ids(np.asarray(ids).reshape(1, -1), "ids", reset=False)[0]
        data = batchify(torch.from_numpy(ids), batch_size)
        self.module_.train(False)
        total, count, state = 0.0, 0, None
        with torch.no_grad(), self._predicting():
            for inputs, targets in bptt_batches(data, bptt, batch_first=True):
                logits, state = self.module_.run(inputs.to(self.device), state)
                state = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                         else state.detach())
                total += float(_cross_entropy_sum(logits, targets))
                count += targets.numel()
        return math.exp(total / count)

    def predict(self, X):
        """Most likely next token at every position, ``(n_windows, bptt)`` ids."""
        X = self.check_sequences(X)
        return np.concatenate(self._map_batches(
            lambda x, _: to_numpy(self.module_(x).argmax(dim=-1)), X))

    # skorch gives every net a predict_proba; (n_windows, bptt, vocab_size) probabilities rarely
    # fit in memory, so it is hidden: use perplexity, predict, or module_.run on a few windows.
    predict_proba = available_if(lambda self: False)(NeuralNet.predict_proba)


def _cross_entropy_sum(logits, targets):
    """Summed next-token cross-entropy (nats) of ``logits (..., vocab)`` against ``targets``."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                       targets.reshape(-1).to(logits.device), reduction="sum")
