"""Word-level WikiText-2 corpus reader and truncated-BPTT batching.

Follows the corpus reader of PyTorch's ``word_language_model`` example: text
is split on whitespace line by line, an ``<eos>`` token ends every line
(blank lines included), and token ids are assigned in order of first
appearance. Unlike that example, the vocabulary comes from the training text
only; words of the other splits that it lacks map to ``<unk>`` (WikiText
already writes rare words as ``<unk>``).
"""

import numbers
import os
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch, check_scalar

__all__ = ["Dictionary", "load_wikitext2", "batchify", "bptt_batches"]

EOS = "<eos>"
UNK = "<unk>"


class Dictionary:
    """Vocabulary: a bijection between words and integer ids, ``word2idx`` (dict) and
    ``idx2word`` (list).

    Examples
    --------
    >>> from latticeprune.datasets import Dictionary
    >>> d = Dictionary()
    >>> d.add_word("a"), d.add_word("b"), d.add_word("a")
    (0, 1, 0)
    >>> len(d), d.decode(d.encode(["b", "a"]))
    (2, ['b', 'a'])
    """

    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        """Add ``word`` if new and return its id."""
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)

    def __contains__(self, word):
        return word in self.word2idx

    def encode(self, words, unk=UNK):
        """Ids of ``words``; words not in the vocabulary get the id of ``unk`` (KeyError if
        ``unk`` is not in the vocabulary either)."""
        word2idx = self.word2idx
        unk_id = word2idx.get(unk)
        if unk_id is None:
            return np.array([word2idx[w] for w in words], dtype=np.int64)
        return np.array([word2idx.get(w, unk_id) for w in words], dtype=np.int64)

    def decode(self, ids):
        """Words of the ids ``ids`` (any integer array-like)."""
        return [self.idx2word[i] for i in np.asarray(ids).ravel().tolist()]

    def __repr__(self):
        return f"Dictionary(n_words={len(self)})"


def _read_words(path):
    """All tokens of a text file, with ``<eos>`` at the end of every line."""
    words = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            words.extend(line.split())
            words.append(EOS)
    return words


def load_wikitext2(path, *, train_file=None, valid_file="valid.txt", test_file="test.txt"):
    """Read a word-level WikiText-2 folder into token ids and a vocabulary (see the module
    docstring); the vocabulary always contains ``<eos>`` and ``<unk>``.

    Parameters
    ----------
    path : str or path-like
        Folder with the text files.
    train_file : str or None, default=None
        Training text, relative to ``path``. None: ``"train.txt"`` if it exists, else
        ``valid_file``; a folder without the official ``train.txt`` (such as the copy the
        benchmarks read) trains on ``valid.txt`` and reports on ``test.txt``, results not
        comparable with published WikiText-2 perplexities.
    valid_file : str or None, default="valid.txt"
        Validation text, read only if it exists and is not the training file.
    test_file : str, default="test.txt"
        Test text; must exist.

    Returns
    -------
    corpus : :class:`~sklearn.utils.Bunch`
        ``train``, ``valid`` (None when not read), ``test``: int64 token ids; ``dictionary``
        (a :class:`Dictionary`); ``vocab_size``; ``n_unk_mapped``: per split read, the number
        of tokens outside the vocabulary mapped to ``<unk>`` (0 for ``"train"``);
        ``train_file``, ``valid_file`` (None when not read), ``test_file``: the files read.

    Raises
    ------
    FileNotFoundError
        If ``path``, the training file or the test file is missing.

    Examples
    --------
    >>> from latticeprune.datasets import load_wikitext2
    >>> corpus = load_wikitext2("path/to/wikitext-2")  # doctest: +SKIP
    >>> corpus.train_file, len(corpus.dictionary)  # doctest: +SKIP
    ('valid.txt', 13777)
    """
    folder = Path(os.fspath(path)).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"path={str(path)!r} is not a folder.")
    if train_file is None:
        train_file = "train.txt" if (folder / "train.txt").is_file() else valid_file
        if train_file is None:
            raise ValueError("train_file is None and there is no train.txt; name the training "
                             "file.")
    for name, file in [("train_file", train_file), ("test_file", test_file)]:
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{name}={file!r} not found in {str(folder)!r}.")

    dictionary = Dictionary()
    train_words = _read_words(folder / train_file)
    for word in train_words + [EOS, UNK]:
        dictionary.add_word(word)
    if valid_file == train_file or valid_file is None or not (folder / valid_file).is_file():
        valid_file = None
    ids, n_unk_mapped = {"train": dictionary.encode(train_words)}, {"train": 0}
    for split, file in [("test", test_file)] + ([("valid", valid_file)] if valid_file else []):
        words = _read_words(folder / file)
        ids[split] = dictionary.encode(words)
        n_unk_mapped[split] = sum(word not in dictionary for word in words)
    return Bunch(train=ids["train"], valid=ids.get("valid"), test=ids["test"],
                 dictionary=dictionary, vocab_size=len(dictionary), n_unk_mapped=n_unk_mapped,
                 train_file=train_file, valid_file=valid_file, test_file=test_file)


def _is_torch(array):
    return type(array).__module__.startswith("torch")


def batchify(ids, batch_size):
    """Cut a token stream into ``batch_size`` parallel streams (time-major).

    As in PyTorch's ``word_language_model``: the tokens that do not fill a whole column are
    dropped and column j holds the j-th contiguous chunk of the text.

    Parameters
    ----------
    ids : 1-D ndarray or torch.Tensor of int
        Token ids.
    batch_size : int
        Number of parallel streams, at least 1 and at most ``len(ids)``.

    Returns
    -------
    data : ndarray or torch.Tensor, shape (n_steps, batch_size)
        Same type (and dtype) as ``ids``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.datasets import batchify
    >>> batchify(np.arange(7), 2)
    array([[0, 3],
           [1, 4],
           [2, 5]])
    """
    check_scalar(batch_size, "batch_size", numbers.Integral, min_val=1)
    if not _is_torch(ids):
        ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}.")
    n_steps = len(ids) // batch_size
    if n_steps == 0:
        raise ValueError(f"batch_size={batch_size} is larger than the number of tokens "
                         f"({len(ids)}).")
    data = ids[: n_steps * batch_size].reshape(batch_size, n_steps).T
    return data.contiguous() if _is_torch(data) else np.ascontiguousarray(data)


def bptt_batches(data, bptt, *, batch_first=False):
    """Iterate over truncated-BPTT windows of batchified data.

    Window i covers steps ``i * bptt`` to ``i * bptt + bptt - 1`` (the last may be shorter); its
    target is the window shifted one step ahead. Consecutive windows continue each column's
    text, so a model may carry its hidden state from one window to the next (detached).

    Parameters
    ----------
    data : ndarray or torch.Tensor of shape (n_steps, batch_size)
        Output of :func:`batchify`, at least 2 steps.
    bptt : int
        Window length, at least 1.
    batch_first : bool, default=False
        Yield ``(batch_size, seq_len)`` windows instead of ``(seq_len, batch_size)``.

    Yields
    ------
    inputs, targets : ndarray or torch.Tensor, shape (seq_len, batch_size)
        Same type as ``data`` (views, not copies); ``seq_len = min(bptt, n_steps - 1 - start)``.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.datasets import batchify, bptt_batches
    >>> data = batchify(np.arange(10), 2)
    >>> [(x[:, 0].tolist(), y[:, 0].tolist()) for x, y in bptt_batches(data, 3)]
    [([0, 1, 2], [1, 2, 3]), ([3], [4])]
    """
    check_scalar(bptt, "bptt", numbers.Integral, min_val=1)
    if not _is_torch(data):
        data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError("data must be 2-D (n_steps, batch_size) as batchify returns, got shape "
                         f"{tuple(data.shape)}.")
    n_steps = data.shape[0]
    if n_steps < 2:
        raise ValueError(f"data needs at least 2 steps to form targets, got {n_steps}.")
    for start in range(0, n_steps - 1, bptt):
        stop = min(start + bptt, n_steps - 1)
        inputs, targets = data[start:stop], data[start + 1:stop + 1]
        yield (inputs.T, targets.T) if batch_first else (inputs, targets)
