"""Packed sequences run padded (latticeprune.packing), so that a user's module that packs its
sequences exports to ONNX (issue 24): the same values as torch's packed path, on users' own
modules (none built by latticeprune)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import rnn as rnn_utils
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import onnx_session
from latticeprune import export_onnx
from latticeprune.packing import padded_packing


class PackedBiGRU(nn.Module):
    """A bidirectional GRU on packed sequences; the padded output averaged over each
    sequence's steps, beside the top layer's final states."""

    def __init__(self, num_layers=2):
        super().__init__()
        self.gru = nn.GRU(4, 5, num_layers=num_layers, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(20, 3)

    def forward(self, x, lengths):
        out, h = self.gru(pack_padded_sequence(x, lengths, batch_first=True,
                                               enforce_sorted=False))
        padded, counts = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mean = padded.sum(dim=1) / counts.unsqueeze(1).to(padded.dtype)
        return self.fc(torch.cat([mean, h[-2], h[-1]], dim=1))


class PackedElman(nn.Module):
    """A time-major ReLU Elman net without biases, its first state learned, read per step
    (padding -1 after each end)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(4, 6, nonlinearity="relu", bias=False)
        self.h0 = nn.Parameter(torch.randn(1, 1, 6))

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x.transpose(0, 1), lengths, enforce_sorted=False)
        out, _ = self.rnn(packed, self.h0.expand(1, x.shape[0], 6).contiguous())
        return pad_packed_sequence(out, padding_value=-1.0)[0].transpose(0, 1)


class PackedLSTM(nn.Module):
    """An LSTM with given first states, read through h_n and c_n."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True)

    def forward(self, x, lengths):
        h0 = torch.ones(2, x.shape[0], 5) * 0.1
        _, (h, c) = self.lstm(pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False), (h0, -h0))
        return torch.cat([h[-1], c[0]], dim=1)


def ragged(steps=7, seed=0):
    torch.manual_seed(seed)
    return torch.randn(6, steps, 4), torch.tensor([3, 7, 1, 5, 7, 2])


@pytest.mark.parametrize("module_class", [PackedBiGRU, PackedElman, PackedLSTM])
def test_padded_packing_gives_torchs_packed_values(module_class):
    module = module_class().eval()
    x, lengths = ragged()
    with torch.no_grad():
        expected = module(x, lengths)
        with padded_packing(module):
            got = module(x, lengths)
    if module_class is PackedElman:  # pad_packed_sequence pads to the input's steps
        assert got.shape == (6, 7, 6) and expected.shape == (6, lengths.max(), 6)
        assert (got[:, expected.shape[1]:] == -1).all()
        got = got[:, :expected.shape[1]]
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)
    assert rnn_utils._VF is torch._VF  # restored on exit
    assert all("forward" not in vars(m) for m in module.modules())


@pytest.mark.exports
def test_a_packing_module_exports_and_gives_its_outputs(tmp_path):
    module = PackedBiGRU(num_layers=1).eval()  # one layer, 5 steps: each step is unrolled
    path = export_onnx(module, tmp_path / "packed.onnx", n_steps=5, variable_length=True)
    session = onnx_session(path)
    x, lengths = ragged(steps=5, seed=1)
    lengths = lengths.clamp(max=5)
    out = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x, lengths).numpy(), atol=1e-5)
    alone = np.zeros((1, 5, 4), dtype=np.float32)  # the third sequence alone, padded with zeros
    alone[0, :1] = x[2, :1]
    np.testing.assert_allclose(session.run(None, {"x": alone, "lengths": np.array([1])})[0][0],
                               out[2], atol=1e-5)


def test_a_projected_lstm_is_refused_by_name():
    class Projected(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 5, proj_size=2, batch_first=True)

        def forward(self, x, lengths):
            return self.lstm(pack_padded_sequence(x, lengths, batch_first=True,
                                                  enforce_sorted=False))[1][0][-1]

    x, lengths = ragged()
    with padded_packing(Projected()) as module, pytest.raises(ValueError, match="proj_size"):
        module(x, lengths)
