"""A zoo of recurrent modules as users write them (none built by latticeprune), and data for
them that the package does not ship. Every recurrent size derives from ``hidden``, so the
module built with ``hidden // 2`` is what removing half of every layer's units must give."""

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

N_IN, N_CLASSES, VOCAB = 6, 3, 30


class LastStep(nn.Module):
    """A 2-layer LSTM read at its last step."""

    def __init__(self, hidden=16):
        super().__init__()
        self.lstm = nn.LSTM(N_IN, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, N_CLASSES)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class BiGRUPool(nn.Module):
    """A bidirectional GRU read by mean pooling over steps, LayerNorm and Linear."""

    def __init__(self, hidden=12):
        super().__init__()
        self.gru = nn.GRU(N_IN, hidden, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(2 * hidden)
        self.fc = nn.Linear(2 * hidden, N_CLASSES)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(self.norm(out.mean(dim=1)))


class ElmanMLP(nn.Module):
    """An Elman net followed by Dropout, Linear, ReLU, Linear."""

    def __init__(self, hidden=12):
        super().__init__()
        self.rnn = nn.RNN(N_IN, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, 10), nn.ReLU(),
                                  nn.Linear(10, N_CLASSES))

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :])


class TokenLSTM(nn.Module):
    """nn.Embedding + LSTM on token ids."""

    def __init__(self, hidden=12):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 8)
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, N_CLASSES)

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens.long()))
        return self.fc(out[:, -1])


class FinalState(nn.Module):
    """A bidirectional 2-layer GRU read through h_n, both directions of the top layer."""

    def __init__(self, hidden=8):
        super().__init__()
        self.gru = nn.GRU(N_IN, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, N_CLASSES)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(torch.cat([h[-2], h[-1]], dim=1))


class Packed(nn.Module):
    """pack_padded_sequence on the sequences' lengths, read through h_n."""

    def __init__(self, hidden=12):
        super().__init__()
        self.lstm = nn.LSTM(N_IN, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, N_CLASSES)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(h[-1])


class TimeMajor(nn.Module):
    """A time-major LSTM (batch_first=False); BatchNorm1d on its last state, concatenated with
    the last raw input before the read-out."""

    def __init__(self, hidden=12):
        super().__init__()
        self.lstm = nn.LSTM(N_IN, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.fc = nn.Linear(hidden + N_IN, N_CLASSES)

    def forward(self, x):
        out, _ = self.lstm(x.transpose(0, 1))
        return self.fc(torch.cat([self.norm(out[-1]), x[:, -1]], dim=1))


class TwoModules(nn.Module):
    """A GRU feeding a 2-layer LSTM through dropout and tanh; the LSTM's h_n (both layers)
    flattened into one feature vector."""

    def __init__(self, hidden=12):
        super().__init__()
        self.first = nn.GRU(N_IN, hidden, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.second = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(2 * hidden, N_CLASSES)

    def forward(self, x):
        out, _ = self.first(x)
        _, (h, _) = self.second(torch.tanh(self.drop(out)))
        return self.fc(h.permute(1, 0, 2).reshape(x.shape[0], -1))


ZOO = [LastStep, BiGRUPool, ElmanMLP, TokenLSTM, FinalState, Packed, TimeMajor, TwoModules]


def zoo_data(module_class, n=60, steps=7, seed=0):
    """``(X, y)`` for ``module_class``: random sequences labelled by a rule on them (token ids
    for :class:`TokenLSTM`; ``{"x", "lengths"}`` for :class:`Packed`)."""
    rng = np.random.RandomState(seed)
    if module_class is TokenLSTM:
        X = rng.randint(0, VOCAB, size=(n, steps)).astype(np.int64)
        return X, (X[:, -3:].sum(axis=1) % N_CLASSES).astype(np.int64)
    X = rng.randn(n, steps, N_IN).astype(np.float32)
    y = (np.digitize(X[:, -2:, 0].sum(axis=1), [-0.5, 0.5])).astype(np.int64)
    if module_class is Packed:
        lengths = rng.randint(2, steps + 1, size=n).astype(np.int64)
        return {"x": X, "lengths": lengths}, y
    return X, y
