"""Task estimators: PathIntegrator (navigation) and LanguageModel (word-level WikiText-2)."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from latticeprune import LatticePruner, ModuliRegularizer, PaddedSequences
from latticeprune.datasets import load_wikitext2, make_navigation_task, position_error_cm
from latticeprune.neuron_graph import NeuronGraph
from latticeprune.tasks import (LanguageModel, PathIntegrator, navigation_inputs,
                                position_error_scorer, token_windows)

WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2"

N_CELLS, N_STEPS = 64, 10
SMALL_NET = dict(hidden_size=32, lr=0.01, batch_size=32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These nets are tiny: a second thread only adds contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def navigation():
    """Train and test trajectories in one environment (same place cells)."""
    kwargs = dict(n_steps=N_STEPS, n_place_cells=N_CELLS)
    train = make_navigation_task(800, random_state=0, **kwargs)
    test = make_navigation_task(300, random_state=1, **kwargs)
    return train, test


def packed(task):
    return navigation_inputs(task.velocities, task.init_codes)


@pytest.fixture(scope="module")
def fitted_integrator(navigation):
    train, _ = navigation
    model = PathIntegrator(centres=train.centres, max_epochs=20, random_state=0, **SMALL_NET)
    return model.fit(packed(train), train.targets)


# -- PathIntegrator --------------------------------------------------------------------------
def test_path_integrator_beats_the_mean_position_baseline(navigation, fitted_integrator):
    train, test = navigation
    error = position_error_cm(fitted_integrator.predict(packed(test)), test.positions,
                              train.centres)
    mean_position = train.positions.reshape(-1, 2).mean(axis=0)
    baseline = 100 * np.linalg.norm(test.positions - mean_position, axis=-1).mean()
    assert baseline > 60  # the box is 2.2 m wide: the mean position is far from most points
    assert error < 0.5 * baseline, (error, baseline)
    # The score with true positions is the paper's figure, with the sign flipped.
    score = fitted_integrator.score(packed(test), test.targets, positions=test.positions)
    assert score == pytest.approx(-error)


def test_predict_returns_codes_and_the_initial_code_matters(navigation, fitted_integrator):
    _, test = navigation
    X = packed(test)
    codes = fitted_integrator.predict(X)
    assert codes.shape == (300, N_STEPS, N_CELLS)
    np.testing.assert_allclose(codes.sum(axis=-1), 1, atol=1e-5)
    assert codes.min() >= 0
    # Same velocities from other start positions: the net must place the agent elsewhere.
    swapped = navigation_inputs(test.velocities, test.init_codes[::-1])
    moved = np.linalg.norm(fitted_integrator.decode(swapped) - fitted_integrator.decode(X),
                           axis=-1).mean()
    assert moved > 0.3  # metres
    # A trajectory may be longer at predict time than in fit.
    longer = make_navigation_task(5, n_steps=2 * N_STEPS, n_place_cells=N_CELLS, random_state=2)
    assert fitted_integrator.predict(packed(longer)).shape == (5, 2 * N_STEPS, N_CELLS)
    assert fitted_integrator.transform(X[:7]).shape == (7, 32)


def test_score_and_scorer_agree_and_work_in_grid_search(navigation, fitted_integrator):
    train, test = navigation
    scorer = position_error_scorer(train.centres)
    X = packed(test)
    assert scorer(fitted_integrator, X, test.targets) == pytest.approx(
        fitted_integrator.score(X, test.targets))
    # The decoded-target reference differs from the true positions by the decoder's own error.
    decoder_floor = position_error_cm(test.targets, test.positions, train.centres)
    assert abs(fitted_integrator.score(X, test.targets)
               - fitted_integrator.score(X, test.targets, positions=test.positions)) \
        <= decoder_floor + 1e-6
    search = GridSearchCV(
        PathIntegrator(centres=train.centres, max_epochs=2, random_state=0, **SMALL_NET),
        {"hidden_size": [8, 16]}, scoring=scorer, cv=2)
    search.fit(packed(train)[:200], train.targets[:200])
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert search.best_estimator_.predict(X[:2]).shape == (2, N_STEPS, N_CELLS)


def test_same_random_state_same_predictions(navigation):
    train, _ = navigation
    X, y = packed(train)[:100], train.targets[:100]
    make = lambda: PathIntegrator(centres=train.centres, hidden_size=8, max_epochs=2,
                                  random_state=3).fit(X, y)
    np.testing.assert_array_equal(make().predict(X), make().predict(X))


def test_language_model_same_random_state_same_predictions():
    X, y = token_windows(repeating_text(), bptt=10)
    make = lambda seed: LanguageModel(vocab_size=7, embedding_size=4, hidden_size=8,
                                      dropout=0.2, max_epochs=2, random_state=seed).fit(X, y)
    a, b, c = make(3), make(3), make(4)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.perplexity(X, y) == b.perplexity(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.transform(X), c.transform(X))


class _ThreadProbe(Callback):
    """Records torch's thread count during every training batch."""

    def initialize(self):
        self.seen = set()
        return self

    def on_batch_end(self, net, **kwargs):
        self.seen.add(torch.get_num_threads())


@pytest.mark.parametrize("make_task", ["navigation", "language"])
def test_task_estimators_train_on_n_threads_threads(navigation, make_task):
    if make_task == "navigation":
        train, _ = navigation
        X, y = packed(train)[:40], train.targets[:40]
        model = PathIntegrator(centres=train.centres, hidden_size=4, max_epochs=1)
    else:
        X, y = token_windows(repeating_text(), bptt=10)
        model = LanguageModel(embedding_size=4, hidden_size=4, max_epochs=1)
    assert model.get_params()["n_threads"] == 1
    probe = _ThreadProbe()
    before = torch.get_num_threads()
    model.set_params(n_threads=2, callbacks=[probe]).fit(X, y)
    assert probe.seen == {2} and torch.get_num_threads() == before
    model.partial_fit(X, y, epochs=1)
    assert probe.seen == {2}
    fresh = clone(model.set_params(callbacks=None))
    assert fresh.get_params()["n_threads"] == 2
    with pytest.raises(ValueError, match="n_threads"):
        fresh.set_params(n_threads=0).fit(X, y)


def test_partial_fit_continues_training_for_the_requested_epochs(navigation):
    train, _ = navigation
    X, y = packed(train)[:100], train.targets[:100]
    model = PathIntegrator(centres=train.centres, hidden_size=8, max_epochs=2,
                           random_state=0).fit(X, y)
    weights = model.module_.rnn.weight_hh_l0.detach().clone()
    model.partial_fit(X, y, epochs=3)
    assert len(model.history) == 5
    assert not torch.equal(weights, model.module_.rnn.weight_hh_l0)


def test_fitted_estimators_survive_pickle_and_clone(navigation, fitted_integrator):
    _, test = navigation
    X = packed(test)[:5]
    restored = pickle.loads(pickle.dumps(fitted_integrator))
    np.testing.assert_array_equal(restored.predict(X), fitted_integrator.predict(X))
    fresh = clone(fitted_integrator)
    assert not fresh.initialized_
    np.testing.assert_array_equal(fresh.get_params()["centres"], fitted_integrator.centres)
    X_lm, y_lm = token_windows(repeating_text(), bptt=10)
    lm = LanguageModel(vocab_size=7, embedding_size=4, hidden_size=4, max_epochs=1,
                       random_state=0).fit(X_lm, y_lm)
    assert pickle.loads(pickle.dumps(lm)).perplexity(X_lm, y_lm) == lm.perplexity(X_lm, y_lm)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_get_their_initial_states_from_the_code(navigation, cell):
    train, _ = navigation
    X, y = packed(train)[:64], train.targets[:64]
    model = PathIntegrator(centres=train.centres, hidden_size=8, cell=cell, max_epochs=1,
                           random_state=0).fit(X, y)
    n_states = 2 if cell == "lstm" else 1
    assert model.module_.initial_state.weight.shape == (n_states * 8, N_CELLS)
    swapped = navigation_inputs(train.velocities[:64], train.init_codes[:64][::-1])
    assert not np.allclose(model.predict(X), model.predict(swapped))


def test_neuron_graph_sees_one_recurrent_layer_and_only_the_true_read_out(fitted_integrator):
    graph = NeuronGraph(fitted_integrator)
    assert [(t.name, t.kind) for t in graph.tensors] == [
        ("rnn.weight_ih_l0", "input"), ("rnn.weight_hh_l0", "recurrent"),
        ("readout.weight", "readout")]


def test_lattice_pruner_and_moduli_regularizer_accept_a_path_integrator(navigation):
    train, test = navigation
    X, y = packed(train)[:300], train.targets[:300]
    net = PathIntegrator(centres=train.centres, max_epochs=3, **{**SMALL_NET, "hidden_size": 16})
    pruner = LatticePruner(net, sparsity=0.5, n_rounds=2, fine_tune_epochs=1,
                           random_state=0).fit(X, y)
    mask = pruner.masks_["rnn.weight_hh_l0"]
    assert mask.shape == (16, 16)
    assert pruner.sparsity_["overall"] >= 0.5
    # Fine-tuning after the last round kept the pruned weights at exactly zero.
    weight = pruner.estimator_.module_.rnn.weight_hh_l0.detach().numpy()
    assert np.all(weight[~mask] == 0)
    assert len(pruner.estimator_.history) == 3 + 2  # fit, then one epoch per round
    assert pruner.predict(packed(test)[:4]).shape == (4, N_STEPS, N_CELLS)
    assert pruner.score(packed(test), test.targets) < 0

    regularizer = ModuliRegularizer(net, moduli="torus", target_sparsity=0.9,
                                    random_state=0).fit(X, y)
    assert regularizer.sparsity_["overall"] == pytest.approx(0.9, abs=1 / 256)
    assert regularizer.history_[-1]["score"] < 0  # minus the decoded error, on the train set
    assert regularizer.transform(packed(test)[:3]).shape == (3, 16)


@pytest.mark.parametrize("change, fragment", [
    (lambda X, y: (X.reshape(len(X), 1, -1), y), "2-D"),
    (lambda X, y: (X[:, :-1], y), "navigation_inputs"),
    (lambda X, y: ({"velocity": X, "init_code": X}, y), "navigation_inputs"),
    (lambda X, y: (X, y[:, :-1]), "shape"),
    (lambda X, y: (X, y[..., :-1]), "shape"),
    (lambda X, y: (X, -y), "non-negative"),
    (lambda X, y: (X, 2 * y), "summing to"),
    (lambda X, y: (np.where(np.arange(X.shape[1]) == 70, np.nan, X), y), "NaN"),
    # variable-length trajectories: packed rows of different lengths, or per-step arrays
    (lambda X, y: ([row[:len(row) - 2 * (i % 2)] for i, row in enumerate(X)], y),
     "PathIntegrator takes trajectories of one length"),
    (lambda X, y: ([row[N_CELLS:].reshape(-1, 2)[:N_STEPS - i % 2] for i, row in enumerate(X)],
                   y), "PathIntegrator takes trajectories of one length"),
    (lambda X, y: (PaddedSequences(X[:, N_CELLS:].reshape(len(X), N_STEPS, 2),
                                   N_STEPS - np.arange(len(X)) % 2), y),
     "PathIntegrator takes trajectories of one length"),
])
def test_path_integrator_rejects_bad_data(navigation, change, fragment):
    train, _ = navigation
    X, y = change(packed(train)[:20], train.targets[:20])
    with pytest.raises(ValueError, match=fragment):
        PathIntegrator(centres=train.centres, hidden_size=4, max_epochs=1).fit(X, y)


def test_x_built_for_fewer_place_cells_is_refused(navigation, fitted_integrator):
    """62 cells + 10 steps x 2 = 82 columns = 64 cells + 9 steps: the packed layout alone
    would read two velocities as codes and the trajectories as shorter; the start codes give
    it away. (X built for more cells is caught only where the extra cells carry mass: their
    codes then look like small velocities.)"""
    train, _ = navigation
    other = make_navigation_task(5, n_steps=N_STEPS, n_place_cells=N_CELLS - 2, random_state=3)
    X = packed(other)
    assert X.shape[1] == N_CELLS + (N_STEPS - 1) * 2
    with pytest.raises(ValueError, match="another number of place cells"):
        fitted_integrator.predict(X)
    with pytest.raises(ValueError, match="another number of place cells"):
        PathIntegrator(centres=train.centres, hidden_size=4, max_epochs=1).fit(
            X, np.full((5, N_STEPS - 1, N_CELLS), 1 / N_CELLS, dtype=np.float32))


def test_path_integrator_rejects_bad_parameters_and_unfitted_use(navigation):
    train, _ = navigation
    X, y = packed(train)[:20], train.targets[:20]
    with pytest.raises(ValueError, match="centres"):
        PathIntegrator(hidden_size=4).fit(X, y)
    with pytest.raises(ValueError, match="centres"):
        PathIntegrator(centres=train.centres[:, :1]).fit(X, y)
    with pytest.raises(ValueError, match="decode_k"):
        PathIntegrator(centres=train.centres, decode_k=N_CELLS + 1).fit(X, y)
    with pytest.raises(ValueError, match="cell"):
        PathIntegrator(centres=train.centres, cell="transformer").fit(X, y)
    with pytest.raises(ValueError, match="hidden_size"):
        PathIntegrator(centres=train.centres, hidden_size=0).fit(X, y)
    with pytest.raises(NotFittedError):
        PathIntegrator(centres=train.centres).predict(X)
    fitted = PathIntegrator(centres=train.centres, hidden_size=4, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="columns"):
        fitted.predict(np.zeros((2, N_CELLS + 3), dtype=np.float32))
    assert not hasattr(fitted, "predict_proba")
    with pytest.raises(ValueError, match="centres"):
        position_error_scorer(None)


# -- LanguageModel ---------------------------------------------------------------------------
def repeating_text(n_repeats=40, period=7):
    """0 1 ... period-1 0 1 ...: after one token of context every next token is certain."""
    return np.tile(np.arange(period), n_repeats)


def test_token_windows_are_the_stream_cut_and_shifted():
    ids = np.arange(100)
    X, y = token_windows(ids, bptt=7)
    assert X.shape == y.shape == (14, 7)
    np.testing.assert_array_equal(X.ravel(), ids[:98])
    np.testing.assert_array_equal(y.ravel(), ids[1:99])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="bptt"):
            token_windows(ids, bptt=bad)
    with pytest.raises(ValueError, match="integer"):
        token_windows(ids.astype(float), bptt=7)
    with pytest.raises(ValueError, match="window"):
        token_windows(ids[:5], bptt=7)


@pytest.mark.skipif(not WIKITEXT.is_dir(), reason="../shared/data/wikitext-2 is absent")
def test_language_model_beats_unigram_after_one_epoch_on_a_wikitext_slice():
    corpus = load_wikitext2(WIKITEXT)  # trains on valid.txt: the folder has no train.txt
    ids = corpus.train[:20000]
    X, y = token_windows(ids, bptt=35)
    # Ids are numbered in order of first appearance, so the slice uses ids 0 .. max.
    vocab_size = int(ids.max()) + 1
    counts = np.bincount(y.ravel(), minlength=vocab_size)
    unigram = np.exp(-np.log(counts[y.ravel()] / counts.sum()).mean())
    lm = LanguageModel(vocab_size=vocab_size, embedding_size=32, hidden_size=64, lr=0.01,
                       batch_size=16, max_epochs=1, random_state=0).fit(X, y)
    perplexity = lm.perplexity(X, y)
    assert perplexity < 0.8 * unigram, (perplexity, unigram)
    assert lm.score(X, y) == pytest.approx(-perplexity)


def test_language_model_learns_a_deterministic_text_and_carries_state_in_streams():
    X, y = token_windows(repeating_text(), bptt=10)
    lm = LanguageModel(vocab_size=7, embedding_size=8, hidden_size=16, lr=0.01, max_epochs=25,
                       batch_size=8, random_state=0).fit(X, y)
    assert lm.perplexity(X, y) < 1.3
    assert lm.stream_perplexity(repeating_text(), batch_size=2, bptt=10) < 1.3
    np.testing.assert_array_equal(lm.predict(X[:3]), y[:3])
    assert lm.transform(X[:4]).shape == (4, 16)
    assert not hasattr(lm, "predict_proba")


def test_language_model_under_both_sparsifiers_and_grid_search():
    X, y = token_windows(repeating_text(60), bptt=10)
    lm = LanguageModel(vocab_size=7, embedding_size=8, hidden_size=16, lr=0.01, max_epochs=4,
                       random_state=0)
    assert [t.kind for t in NeuronGraph(lm.fit(X, y)).tensors] == [
        "input", "recurrent", "readout"]  # the embedding is not a Linear: not a tensor here
    pruner = LatticePruner(lm, sparsity=0.9, n_rounds=2, fine_tune_epochs=1,
                           random_state=0).fit(X, y)
    assert pruner.sparsity_["overall"] >= round(0.9 * 256) / 256  # pruned_count, W_hh 16 x 16
    assert pruner.score(X, y) < 0
    regularizer = ModuliRegularizer(lm, moduli="klein", target_sparsity=0.9,
                                    random_state=0).fit(X, y)
    assert regularizer.masks_["rnn.weight_hh_l0"].mean() == pytest.approx(0.1, abs=1 / 256)
    assert -regularizer.score(X, y) >= 1
    search = GridSearchCV(clone(lm).set_params(max_epochs=2), {"hidden_size": [4, 8]}, cv=2)
    search.fit(X, y)
    assert np.all(search.cv_results_["mean_test_score"] < -1)  # minus a perplexity


def test_language_model_rejects_bad_data_and_parameters():
    X, y = token_windows(repeating_text(), bptt=10)
    lm = LanguageModel(vocab_size=7, embedding_size=4, hidden_size=4, max_epochs=1)
    with pytest.raises(ValueError, match="integer token ids"):
        clone(lm).fit(X.astype(float), y)
    with pytest.raises(ValueError, match="outside"):
        clone(lm).fit(X + 1, y)
    with pytest.raises(ValueError, match="outside"):
        clone(lm).fit(X - 1, y)
    with pytest.raises(ValueError, match="shape of X"):
        clone(lm).fit(X, y[:, :-1])
    sentences = [window[:10 - i % 3] for i, window in enumerate(X)]  # different lengths
    with pytest.raises(ValueError, match="LanguageModel takes token windows of one length.*"
                                         "token_windows"):
        clone(lm).fit(sentences, sentences)
    with pytest.raises(ValueError, match="tie_weights"):
        clone(lm).set_params(tie_weights=True, embedding_size=8).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        clone(lm).set_params(dropout=1.0).fit(X, y)
    with pytest.raises(NotFittedError):
        clone(lm).perplexity(X, y)
    fitted = clone(lm).fit(X, y)
    with pytest.raises(ValueError, match="outside"):
        fitted.perplexity(X + 7, y)
    inferred = LanguageModel(embedding_size=4, hidden_size=4, max_epochs=1).fit(X, y)
    assert inferred.vocab_size_ == 7


def test_tied_weights_share_one_matrix():
    X, y = token_windows(repeating_text(), bptt=10)
    lm = LanguageModel(vocab_size=7, embedding_size=8, hidden_size=8, tie_weights=True,
                       max_epochs=1, random_state=0).fit(X, y)
    assert lm.module_.decoder.weight is lm.module_.embedding.weight
