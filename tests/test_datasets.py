"""Tests for latticeprune.datasets (no network access; real data only if present)."""

import gzip
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils import Bunch

from latticeprune.datasets import (
    Dictionary,
    MNISTNotFoundError,
    batchify,
    bptt_batches,
    decode_position,
    load_digits_sequences,
    load_mnist,
    load_wikitext2,
    make_adding_problem,
    make_navigation_task,
    place_cell_codes,
    position_error_cm,
    read_idx,
    write_idx,
)
from latticeprune.datasets import mnist as mnist_module

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_10K = SHARED_DATA / "mnist-10k"
WIKITEXT2 = SHARED_DATA / "wikitext-2"


# --------------------------------------------------------------------------- digits


def test_digits_sequences_shapes_dtypes_and_scaling():
    bunch = load_digits_sequences()
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (1797, 8, 8)
    assert bunch.data.dtype == np.float32
    assert bunch.target.shape == (1797,)
    assert set(np.unique(bunch.target)) == set(range(10))
    assert (bunch.n_steps, bunch.n_features) == (8, 8)
    assert bunch.data.min() == 0.0 and bunch.data.max() == 1.0
    # Rows are steps: sklearn's images divided by 16.
    np.testing.assert_allclose(bunch.data, load_digits().images / 16.0, rtol=1e-6)
    assert "[0, 1]" in bunch.DESCR


def test_digits_sequences_2d_and_return_X_y():
    X3, y3 = load_digits_sequences(return_X_y=True)
    X2, y2 = load_digits_sequences(return_X_y=True, as_2d=True)
    assert X2.shape == (1797, 64) and X2.dtype == np.float32
    np.testing.assert_array_equal(X2.reshape(-1, 8, 8), X3)
    np.testing.assert_array_equal(y2, y3)


# --------------------------------------------------------------------------- MNIST


def _write_mnist_folder(folder, n_train=7, n_test=4, compress=True, seed=0):
    rng = np.random.RandomState(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.randint(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.randint(0, 10, n_test).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), array)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_round_trip(tmp_path, compress):
    arrays = _write_mnist_folder(tmp_path, compress=compress)
    if compress:
        with open(tmp_path / "train-images-idx3-ubyte.gz", "rb") as fh:
            assert fh.read(2) == b"\x1f\x8b"
    else:
        assert not list(tmp_path.glob("*.gz"))
        assert (tmp_path / "train-images-idx3-ubyte").read_bytes()[:4] == b"\x00\x00\x08\x03"
    mnist = load_mnist(tmp_path)
    assert mnist.X_train.shape == (7, 28, 28) and mnist.X_test.shape == (4, 28, 28)
    assert mnist.X_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert (mnist.n_train, mnist.n_test) == (7, 4)
    np.testing.assert_array_equal(
        np.rint(mnist.X_train * 255).astype(np.uint8), arrays["train-images-idx3-ubyte"]
    )
    np.testing.assert_array_equal(
        np.rint(mnist.X_test * 255).astype(np.uint8), arrays["t10k-images-idx3-ubyte"]
    )
    np.testing.assert_array_equal(mnist.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(mnist.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= mnist.X_train.min() and mnist.X_train.max() <= 1.0
    # data/target hold both splits, training first.
    np.testing.assert_array_equal(mnist.data[:7], mnist.X_train)
    np.testing.assert_array_equal(mnist.target[7:], mnist.y_test)


def test_mnist_return_X_y_order_and_as_2d(tmp_path):
    _write_mnist_folder(tmp_path)
    bunch = load_mnist(tmp_path)
    X_train, X_test, y_train, y_test = load_mnist(tmp_path, return_X_y=True, as_2d=True)
    assert X_train.shape == (7, 784) and X_test.shape == (4, 784)
    np.testing.assert_array_equal(X_train.reshape(-1, 28, 28), bunch.X_train)
    np.testing.assert_array_equal(X_test.reshape(-1, 28, 28), bunch.X_test)
    np.testing.assert_array_equal(y_train, bunch.y_train)
    np.testing.assert_array_equal(y_test, bunch.y_test)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_write_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(24) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a" + suffix)
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_magic(tmp_path):
    _write_mnist_folder(tmp_path, compress=False)
    images = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(images.read_bytes())
    raw[0:4] = b"\x12\x34\x08\x03"
    images.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="magic"):
        read_idx(images)
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path)


def test_read_idx_rejects_unknown_type_code_and_size_mismatch(tmp_path):
    path = tmp_path / "bad-type"
    path.write_bytes(b"\x00\x00\x07\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="magic"):
        read_idx(path)
    truncated = tmp_path / "truncated.gz"
    with gzip.open(truncated, "wb") as fh:  # announces 5 bytes, holds 3
        fh.write(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="5 bytes"):
        read_idx(truncated)


def test_mnist_rejects_wrong_image_shape_and_count_mismatch(tmp_path):
    _write_mnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="4 images .* but 3 labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 27), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(n, 28, 28\)"):
        load_mnist(tmp_path)


def test_mnist_missing_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_mnist(tmp_path / "nowhere")
    _write_mnist_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_mnist_offline_without_path_gives_clear_error(monkeypatch):
    def offline_fetch_openml(*args, **kwargs):
        raise URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(mnist_module, "fetch_openml", offline_fetch_openml)
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist()
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert "load_mnist('path/to/mnist')" in message
    assert "name resolution" in message
    assert isinstance(info.value.__cause__, URLError)


def test_mnist_without_path_splits_openml_data(monkeypatch):
    calls = {}

    def fake_fetch_openml(name, **kwargs):
        calls.update(kwargs, name=name)
        X = np.zeros((70000, 784), dtype=np.uint8)
        X[:, 0] = np.arange(70000) % 256
        y = np.array([str(i % 10) for i in range(70000)], dtype=object)
        return X, y

    monkeypatch.setattr(mnist_module, "fetch_openml", fake_fetch_openml)
    mnist = load_mnist(data_home="somewhere")
    assert calls["name"] == "mnist_784" and calls["data_home"] == "somewhere"
    assert mnist.X_train.shape == (60000, 28, 28) and mnist.X_test.shape == (10000, 28, 28)
    assert mnist.y_train.dtype == np.int64
    np.testing.assert_array_equal(mnist.y_test[:3], [0, 1, 2])  # row 60000 has label 0
    assert mnist.X_test[1, 0, 0] == pytest.approx((60001 % 256) / 255)


@pytest.mark.skipif(not MNIST_10K.is_dir(), reason="shared mnist-10k folder absent")
def test_mnist_10k_real_folder():
    mnist = load_mnist(MNIST_10K)
    assert mnist.X_train.shape == (8000, 28, 28)
    assert mnist.X_test.shape == (2000, 28, 28)
    assert set(np.unique(mnist.y_train)) == set(range(10))
    assert set(np.unique(mnist.y_test)) == set(range(10))
    assert mnist.X_train.min() == 0.0 and mnist.X_train.max() == 1.0


# --------------------------------------------------------------------------- adding problem


def test_adding_problem_structure():
    X, y = make_adding_problem(500, 11, random_state=0)
    assert X.shape == (500, 11, 2) and X.dtype == np.float32
    assert y.shape == (500,) and y.dtype == np.float32
    values, markers = X[:, :, 0], X[:, :, 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    np.testing.assert_array_equal(markers[:, :5].sum(axis=1), 1)  # one in each half
    np.testing.assert_array_equal(markers[:, 5:].sum(axis=1), 1)
    assert values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_allclose(y, (values * markers).sum(axis=1), rtol=1e-6)


def test_adding_problem_shortest_sequences_and_determinism():
    X, y = make_adding_problem(20, 2, random_state=3)
    np.testing.assert_array_equal(X[:, :, 1], 1.0)
    np.testing.assert_allclose(y, X[:, :, 0].sum(axis=1), rtol=1e-6)
    X1, y1 = make_adding_problem(50, 30, random_state=7)
    X2, y2 = make_adding_problem(50, 30, random_state=7)
    X3, _ = make_adding_problem(50, 30, random_state=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_adding_problem_constant_one_baseline_mse():
    _, y = make_adding_problem(20000, 50, random_state=0)
    # Var(U1 + U2) = 2/12; the standard error of this estimate is about 0.0014.
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.01)
    assert np.mean(y) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n_samples": 0, "n_steps": 5}, "n_samples"), ({"n_samples": 3, "n_steps": 1}, "n_steps")],
)
def test_adding_problem_validates_sizes(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_adding_problem(**kwargs)


# --------------------------------------------------------------------------- navigation


@pytest.fixture(scope="module")
def navigation_task():
    return make_navigation_task(1000, n_steps=20, random_state=0)


def test_navigation_shapes_and_dtypes(navigation_task):
    task = navigation_task
    assert task.velocities.shape == (1000, 20, 2)
    assert task.init_codes.shape == (1000, 512)
    assert task.targets.shape == (1000, 20, 512)
    assert task.positions.shape == (1000, 20, 2)
    assert task.init_positions.shape == (1000, 2)
    assert task.centres.shape == (512, 2)
    for name in ["velocities", "init_codes", "targets", "positions", "init_positions", "centres"]:
        assert task[name].dtype == np.float32, name
    assert task.data is task.velocities and task.target is task.targets


def test_navigation_trajectories_stay_in_box_and_avoid_walls(navigation_task):
    task = navigation_task
    half = task.box_size / 2
    assert np.all(np.abs(task.positions) <= half)
    assert np.all(np.abs(task.init_positions) <= half)
    assert np.all(np.abs(task.centres) <= half)
    # Wall avoidance: positions pressed against a wall (clipped steps) are rare.
    at_wall = np.any(np.isclose(np.abs(task.positions), half, atol=1e-6), axis=-1)
    assert at_wall.mean() < 0.02
    # Smooth motion: the mean speed is that of the Rayleigh distribution (~1 m/s).
    speed = np.linalg.norm(task.velocities, axis=-1)
    assert 0.8 < speed.mean() < 1.1


def test_navigation_velocities_integrate_to_positions(navigation_task):
    task = navigation_task
    integrated = task.init_positions[:, None] + task.dt * np.cumsum(task.velocities, axis=1)
    np.testing.assert_allclose(integrated, task.positions, atol=1e-5)


def test_navigation_speed_heading_format_matches_velocity():
    cartesian = make_navigation_task(50, n_place_cells=16, random_state=1)
    polar = make_navigation_task(50, n_place_cells=16, input_format="speed_heading", random_state=1)
    assert polar.velocities.shape == (50, 20, 3)
    speed, sin, cos = np.moveaxis(polar.velocities, -1, 0)
    np.testing.assert_allclose(np.stack([speed * cos, speed * sin], -1), cartesian.velocities,
                               atol=1e-5)
    np.testing.assert_array_equal(polar.positions, cartesian.positions)


def test_navigation_is_reproducible_and_shares_centres():
    a = make_navigation_task(30, n_place_cells=64, random_state=5)
    b = make_navigation_task(30, n_place_cells=64, random_state=5)
    c = make_navigation_task(30, n_place_cells=64, random_state=6)
    for name in ["velocities", "init_codes", "targets", "positions", "centres"]:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a.positions, c.positions)
    np.testing.assert_array_equal(a.centres, c.centres)  # same environment
    d = make_navigation_task(30, n_place_cells=64, centres_random_state=1, random_state=5)
    assert not np.array_equal(a.centres, d.centres)
    np.testing.assert_array_equal(a.positions, d.positions)


@pytest.mark.parametrize("dog", [False, True])
def test_place_cell_codes_are_distributions(dog):
    task = make_navigation_task(100, n_place_cells=128, dog=dog, random_state=2)
    for codes in (task.targets, task.init_codes):
        assert codes.min() >= 0.0
        np.testing.assert_allclose(codes.sum(axis=-1), 1.0, atol=1e-5)
    # The code of a position peaks at the nearest centre.
    nearest = np.argmin(
        np.linalg.norm(task.positions[..., None, :] - task.centres, axis=-1), axis=-1
    )
    assert np.mean(task.targets.argmax(axis=-1) == nearest) > 0.99
    # init_codes is the code of the start position.
    np.testing.assert_allclose(
        task.init_codes, place_cell_codes(task.init_positions, task.centres, dog=dog), atol=1e-6
    )


def test_decoding_true_codes_recovers_position(navigation_task):
    # Np = 512 random centres in a 2.2 m box are ~10 cm apart; top-3 decoding of the
    # exact code is accurate to about 4 cm on average.
    task = navigation_task
    error = position_error_cm(task.targets, task.positions, task.centres, k=3)
    assert error < 5.0
    decoded = decode_position(task.targets, task.centres)
    assert decoded.shape == (1000, 20, 2)
    assert np.max(np.linalg.norm(decoded - task.positions, axis=-1)) < 0.25
    # A wrong code (another trajectory's) decodes far off: the metric can fail.
    shuffled = position_error_cm(task.targets[::-1], task.positions, task.centres)
    assert shuffled > 50.0


def test_decode_position_hand_example_and_torch_input():
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    codes = np.array([[0.1, 0.5, 0.3, 0.1], [0.7, 0.0, 0.0, 0.3]])
    np.testing.assert_allclose(decode_position(codes, centres, k=1), [[1, 0], [0, 0]])
    np.testing.assert_allclose(decode_position(codes, centres, k=2), [[0.5, 0.5], [0.5, 0.5]])
    logits = torch.log(torch.tensor(codes) + 1e-9).requires_grad_()
    np.testing.assert_allclose(decode_position(logits, centres, k=2), [[0.5, 0.5], [0.5, 0.5]])
    true = np.array([[1.0, 0.0], [0.0, 0.3]])
    assert position_error_cm(codes, true, centres, k=1) == pytest.approx(15.0)


def test_navigation_validation_errors():
    with pytest.raises(ValueError, match="n_samples"):
        make_navigation_task(0)
    with pytest.raises(ValueError, match="input_format"):
        make_navigation_task(2, input_format="polar")
    with pytest.raises(ValueError, match="n_place_cells"):
        make_navigation_task(2, centres=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="place_cell_width"):
        make_navigation_task(2, place_cell_width=0.0)
    centres = np.zeros((4, 2))
    with pytest.raises(ValueError, match="k"):
        decode_position(np.ones((2, 4)), centres, k=5)
    with pytest.raises(ValueError, match="codes must have shape"):
        decode_position(np.ones((2, 3)), centres)


# --------------------------------------------------------------------------- WikiText-2


def _write_corpus(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def test_wikitext_reader_round_trips_and_maps_unknown_words(tmp_path):
    valid = " = Title = \n \n the cat sat on the mat . \n a <unk> dog \n"
    test = " the zebra sat \n\n mat ; \n"
    _write_corpus(tmp_path, {"valid.txt": valid, "test.txt": test})
    corpus = load_wikitext2(tmp_path)
    assert corpus.train_file == "valid.txt" and corpus.valid is None
    assert corpus.train.dtype == np.int64
    words = corpus.dictionary.decode(corpus.train)
    expected = []
    for line in valid.splitlines():
        expected += line.split() + ["<eos>"]
    assert words == expected
    # ids are given in order of first appearance.
    assert corpus.dictionary.idx2word[:4] == ["=", "Title", "<eos>", "the"]
    assert corpus.vocab_size == len(corpus.dictionary) == len(set(expected))
    # test words outside the training vocabulary become <unk>.
    assert corpus.dictionary.decode(corpus.test) == [
        "the", "<unk>", "sat", "<eos>", "<eos>", "mat", "<unk>", "<eos>"
    ]
    assert corpus.n_unk_mapped == {"train": 0, "test": 2}


def test_wikitext_uses_train_txt_when_present_and_adds_unk(tmp_path):
    _write_corpus(
        tmp_path, {"train.txt": "a b\n", "valid.txt": "b c\n", "test.txt": "a c\n"}
    )
    corpus = load_wikitext2(tmp_path)
    assert corpus.train_file == "train.txt" and corpus.valid_file == "valid.txt"
    d = corpus.dictionary
    assert d.idx2word == ["a", "b", "<eos>", "<unk>"]
    assert d.decode(corpus.valid) == ["b", "<unk>", "<eos>"]
    assert d.decode(corpus.test) == ["a", "<unk>", "<eos>"]
    explicit = load_wikitext2(tmp_path, train_file="valid.txt")
    assert explicit.dictionary.idx2word == ["b", "c", "<eos>", "<unk>"]
    with pytest.raises(FileNotFoundError, match="test_file"):
        load_wikitext2(tmp_path, test_file="missing.txt")


def test_dictionary_basics():
    d = Dictionary()
    assert [d.add_word(w) for w in ["x", "y", "x"]] == [0, 1, 0]
    assert "x" in d and "z" not in d and len(d) == 2
    with pytest.raises(KeyError):
        d.encode(["z"])  # no <unk> in this vocabulary
    d.add_word("<unk>")
    np.testing.assert_array_equal(d.encode(["y", "z"]), [1, 2])


@pytest.mark.skipif(not (WIKITEXT2 / "valid.txt").is_file(), reason="shared wikitext-2 absent")
def test_wikitext2_real_valid_round_trip():
    corpus = load_wikitext2(WIKITEXT2)
    assert corpus.train_file == "valid.txt" and corpus.test_file == "test.txt"
    text = (WIKITEXT2 / "valid.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    words = corpus.dictionary.decode(corpus.train)
    assert len(words) == sum(len(line.split()) + 1 for line in lines)
    rebuilt = " ".join(words).split("<eos>")[:-1]
    assert [segment.split() for segment in rebuilt] == [line.split() for line in lines]
    assert corpus.n_unk_mapped["test"] > 0
    assert np.sum(corpus.test == corpus.dictionary.word2idx["<unk>"]) >= corpus.n_unk_mapped["test"]


# --------------------------------------------------------------------------- BPTT batching


@pytest.mark.parametrize("as_torch", [False, True])
def test_batchify_layout(as_torch):
    ids = np.arange(23)
    data = batchify(torch.from_numpy(ids) if as_torch else ids, 4)
    assert isinstance(data, torch.Tensor) == as_torch
    assert tuple(data.shape) == (5, 4)
    data = np.asarray(data)
    np.testing.assert_array_equal(data[:, 1], np.arange(5, 10))  # column = contiguous chunk
    np.testing.assert_array_equal(data.T.ravel(), ids[:20])
    with pytest.raises(ValueError, match="batch_size"):
        batchify(ids, 24)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(ids, 0)


@pytest.mark.parametrize("as_torch", [False, True])
def test_bptt_batches_targets_are_inputs_shifted_by_one(as_torch):
    data = batchify(np.arange(40), 3)  # (13, 3)
    if as_torch:
        data = torch.from_numpy(data)
    windows = list(bptt_batches(data, 5))
    assert [tuple(x.shape) for x, _ in windows] == [(5, 3), (5, 3), (2, 3)]
    for inputs, targets in windows:
        assert isinstance(inputs, torch.Tensor) == as_torch
        assert targets.shape == inputs.shape
        np.testing.assert_array_equal(np.asarray(targets), np.asarray(inputs) + 1)
    inputs_all = np.concatenate([np.asarray(x) for x, _ in windows])
    np.testing.assert_array_equal(inputs_all, np.asarray(data)[:-1])
    first_x, first_y = next(bptt_batches(data, 5, batch_first=True))
    assert tuple(first_x.shape) == (3, 5)
    np.testing.assert_array_equal(np.asarray(first_y)[:, :-1], np.asarray(first_x)[:, 1:])


def test_bptt_batches_validation():
    with pytest.raises(ValueError, match="bptt"):
        next(bptt_batches(np.zeros((5, 2)), 0))
    with pytest.raises(ValueError, match="2-D"):
        next(bptt_batches(np.zeros(5), 2))
    with pytest.raises(ValueError, match="at least 2 steps"):
        next(bptt_batches(np.zeros((1, 2)), 2))
