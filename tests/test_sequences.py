"""Variable-length sequences (issue 14): lists, object arrays, PaddedSequences and NaN end
padding; the same output alone as inside a padded batch for every cell, stacked and top-down
nets, in training and inference forms; CV splitting, Pipeline, GridSearchCV, sparsifiers,
persistence; aeon's layouts and loader; the errors."""

import importlib.util

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from conftest import SHARED_DATA
from latticeprune import (LatticePruner, ModuliRegularizer, PaddedSequences, RNNClassifier,
                          RNNRegressor)
from latticeprune.inference import ENGINES, compact, to_inference
from latticeprune.nets import CELLS, RecurrentNet
from latticeprune.persistence import load, load_weights, save, save_weights
from latticeprune.sequences import check_padded, from_aeon, nan_lengths

ARCHITECTURES = [dict(num_layers=1), dict(num_layers=2), dict(num_layers=2, top_down=True)]
ARCH_IDS = ["stacked1", "stacked2", "top_down"]


def ragged(n=36, n_features=3, low=2, high=9, seed=0):
    """``n`` sequences of 2..8 steps and labels that depend on the whole sequence."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(rng.integers(low, high), n_features)).astype(np.float32)
         for _ in range(n)]
    y = np.array([int(x[:, 0].mean() > 0) for x in X])
    return X, y


def padded(X, fill=0.0):
    lengths = np.array([len(x) for x in X])
    data = np.full((len(X), lengths.max(), X[0].shape[1]), fill, dtype=np.float32)
    for i, x in enumerate(X):
        data[i, :len(x)] = x
    return data, lengths


def tiny(cls=RNNClassifier, **kwargs):
    return cls(hidden_size=6, max_epochs=2, batch_size=16, random_state=0, **kwargs)


# -- the same output alone and inside a padded batch ------------------------------------------
@pytest.mark.parametrize("sequence_output", [False, True], ids=["last", "per_step"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("arch", ARCHITECTURES, ids=ARCH_IDS)
def test_module_output_alone_equals_inside_padded_batch(cell, arch, sequence_output):
    torch.manual_seed(0)
    net = RecurrentNet(input_size=3, output_size=2, hidden_size=5, cell=cell,
                       sequence_output=sequence_output, **arch).eval()
    X, _ = ragged(6)
    data, lengths = padded(X, fill=7.0)  # padding with large values must not matter
    with torch.no_grad():
        batch = net(torch.from_numpy(data), torch.from_numpy(lengths))
        outputs, last = net.encode(torch.from_numpy(data), torch.from_numpy(lengths))
        for i, x in enumerate(X):
            alone_out, alone_last = net.encode(torch.from_numpy(x[None]))
            steps = slice(len(x)) if sequence_output else slice(None)
            torch.testing.assert_close(batch[i, steps], net(torch.from_numpy(x[None]))[0])
            torch.testing.assert_close(last[i], alone_last[0])
            torch.testing.assert_close(outputs[i, :len(x)], alone_out[0])
            assert not outputs[i, len(x):].any()  # zeros after the end
        for form in (compact(net)[0], to_inference(net, engine="sparse"),
                     to_inference(net, engine="dense")):
            torch.testing.assert_close(form(torch.from_numpy(data), torch.from_numpy(lengths)),
                                       batch)


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=ARCH_IDS)
def test_estimator_predicts_a_sequence_alone_as_in_a_batch(arch):
    X, y = ragged()
    clf = tiny(**arch).fit(X, y)
    assert clf.n_steps_ == max(len(x) for x in X) and clf.input_size_ == 3
    proba = clf.predict_proba(X)
    alone = np.concatenate([clf.predict_proba(x[None]) for x in X[:6]])
    np.testing.assert_allclose(proba[:6], alone, atol=1e-6)
    hidden = clf.transform(X)
    np.testing.assert_allclose(hidden[:6], np.concatenate([clf.transform([x]) for x in X[:6]]),
                               atol=1e-6)


def test_every_layout_gives_the_same_fit_and_predictions():
    X, y = ragged()
    data, lengths = padded(X, fill=np.nan)
    objects = np.empty(len(X), dtype=object)
    objects[:] = X
    layouts = [X, tuple(X), objects, PaddedSequences(np.nan_to_num(data, nan=3.0), lengths),
               data]  # the last: NaN after each end
    fits = [tiny().fit(layout, y) for layout in layouts]
    reference = fits[0].predict_proba(X)
    for clf, layout in zip(fits, layouts):
        np.testing.assert_array_equal(clf.predict_proba(layout), reference)


def test_equal_lengths_in_a_list_run_as_a_3d_array(small_digits):
    X, y = small_digits
    listed = tiny().fit(list(X[:64]), y[:64])
    array = tiny().fit(X[:64], y[:64])
    np.testing.assert_array_equal(listed.predict_proba(list(X[:64])), array.predict_proba(X[:64]))


def test_regressor_and_sample_weight_with_ragged_input():
    X, y = ragged()
    target = np.array([x[:, 1].sum() for x in X], dtype=np.float32)
    reg = tiny(RNNRegressor).fit(X, target, sample_weight=np.linspace(0.5, 1.5, len(X)))
    assert reg.predict(X).shape == (len(X),)
    clf = tiny().fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_array_equal(clf.predict_proba(X), tiny().fit(X, y).predict_proba(X))
    clf.partial_fit(X[:10], y[:10])


# -- per-step targets (sequence_output) -------------------------------------------------------
def step_targets(X):
    """Per-step targets that need the past: the running sum of feature 0, and its sign."""
    sums = [np.cumsum(x[:, 0]) for x in X]
    return sums, [(total > 0).astype(int) for total in sums]


def padded_targets(targets, fill):
    lengths = [len(t) for t in targets]
    out = np.full((len(targets), max(lengths)), fill, dtype=np.float64)
    for i, t in enumerate(targets):
        out[i, :len(t)] = t
    return out


def assert_each_close(actual, expected, **kwargs):
    assert actual.dtype == object and len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **kwargs)


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=ARCH_IDS)
def test_per_step_outputs_of_a_sequence_alone_equal_those_in_a_batch(arch):
    X, _ = ragged()
    sums, labels = step_targets(X)
    reg = tiny(RNNRegressor, sequence_output=True, **arch).fit(X, sums)
    clf = tiny(sequence_output=True, **arch).fit(X, labels)
    pred, proba = reg.predict(X), clf.predict_proba(X)
    assert [p.shape for p in pred] == [(len(x),) for x in X] and pred[0].dtype == np.float64
    assert [p.shape for p in proba] == [(len(x), 2) for x in X]
    assert_each_close(pred[:6], [reg.predict(x[None])[0] for x in X[:6]], atol=1e-6)
    assert_each_close(proba[:6], [clf.predict_proba(x[None])[0] for x in X[:6]], atol=1e-6)
    for labels_i, proba_i in zip(clf.predict(X), proba):
        np.testing.assert_array_equal(labels_i, clf.classes_[proba_i.argmax(axis=1)])
    assert reg.transform(X).shape == (len(X), 6)  # still the state at each end


def test_padding_never_reaches_the_loss_or_the_class_weights():
    X, _ = ragged()
    sums, labels = step_targets(X)
    objects = np.empty(len(sums), dtype=object)
    objects[:] = sums
    data, lengths = padded(X, fill=np.nan)
    layouts = [objects, padded_targets(sums, 0.0), padded_targets(sums, 1e3),
               padded_targets(sums, np.nan)]
    reference = tiny(RNNRegressor, sequence_output=True).fit(X, sums).predict(X)
    for y in layouts:
        assert_each_close(tiny(RNNRegressor, sequence_output=True).fit(X, y).predict(X),
                          reference, rtol=0, atol=0)
    junk = PaddedSequences(np.nan_to_num(data, nan=5.0), lengths)  # X padding ignored as well
    fitted = tiny(RNNRegressor, sequence_output=True).fit(junk, padded_targets(sums, -7.0))
    assert_each_close(fitted.predict(X), reference, rtol=0, atol=0)
    # labels after the ends are no class; "balanced" counts the steps before each end only
    balanced = tiny(sequence_output=True, class_weight="balanced")
    fitted = clone(balanced).fit(X, padded_targets(labels, 9).astype(int))
    np.testing.assert_array_equal(fitted.classes_, [0, 1])
    steps = np.concatenate(labels)
    by_hand = {c: len(steps) / (2 * np.sum(steps == c)) for c in (0, 1)}
    assert_each_close(fitted.predict_proba(X), clone(balanced).set_params(
        class_weight=by_hand).fit(X, labels).predict_proba(X), rtol=0, atol=0)


def test_the_loss_is_the_mean_over_the_steps_before_each_end():
    X, _ = ragged(12)
    sums, _ = step_targets(X)
    reg = tiny(RNNRegressor, sequence_output=True).fit(X, sums)
    data, lengths = padded(X, fill=9.0)
    batch = {"x": torch.from_numpy(data), "lengths": torch.from_numpy(lengths)}
    y = torch.from_numpy(padded_targets(sums, 50.0)[..., None].astype(np.float32))
    errors = np.concatenate([(p - s) ** 2 for p, s in zip(reg.predict(X), sums)])
    with torch.no_grad():
        y_pred = reg.infer(batch)
        loss = reg.get_loss(y_pred, y, X=batch)
        weight = np.linspace(0.5, 2.0, len(X)).astype(np.float32)
        weighted = reg.get_loss(y_pred, y, X={**batch, "sample_weight": torch.from_numpy(weight)})
    assert float(loss) == pytest.approx(errors.mean(), rel=1e-5)
    assert float(weighted) == pytest.approx((np.repeat(weight, lengths) * errors).mean(), rel=1e-5)


def test_score_and_cv_over_every_step_before_each_end():
    X, _ = ragged(48)
    sums, labels = step_targets(X)
    reg = tiny(RNNRegressor, sequence_output=True).fit(X, sums)
    clf = tiny(sequence_output=True).fit(X, labels)
    weight = np.linspace(0.5, 2.0, len(X))
    steps = np.repeat(weight, [len(x) for x in X])
    # (targets are float32 inside: agreement to float32 precision)
    assert reg.score(X, sums) == pytest.approx(r2_score(np.concatenate(sums),
                                                        np.concatenate(reg.predict(X))), abs=1e-6)
    assert reg.score(X, sums, sample_weight=weight) == pytest.approx(r2_score(
        np.concatenate(sums), np.concatenate(reg.predict(X)), sample_weight=steps), abs=1e-6)
    assert clf.score(X, labels, sample_weight=weight) == pytest.approx(accuracy_score(
        np.concatenate(labels), np.concatenate(clf.predict(X)), sample_weight=steps))
    scores = cross_val_score(clone(reg), X, sums, cv=KFold(3))
    data, lengths = padded(X, fill=np.nan)
    np.testing.assert_array_equal(cross_val_score(clone(reg), data, padded_targets(sums, np.nan),
                                                  cv=KFold(3)), scores)
    predicted = cross_val_predict(clone(reg), X, sums, cv=KFold(3))
    assert [len(p) for p in predicted] == [len(x) for x in X]
    assert cross_val_score(clone(clf), X, labels, cv=3).shape == (3,)


def test_per_step_targets_through_sparsifiers_and_inference_forms():
    X, _ = ragged()
    sums, labels = step_targets(X)
    pruner = LatticePruner(tiny(RNNRegressor, sequence_output=True, num_layers=2, top_down=True),
                           sparsity=0.8, n_rounds=2, fine_tune_epochs=1, random_state=0)
    pruner.fit(X, sums)
    assert pruner.sparsity_["overall"] == pytest.approx(0.8, abs=0.02)
    pred = pruner.predict(X)
    assert_each_close(pred[:4], [pruner.predict(x[None])[0] for x in X[:4]], atol=1e-6)
    for engine in ENGINES:
        fast = to_inference(pruner, engine=engine)
        assert_each_close(fast.predict(X), pred, atol=1e-5)
        assert fast.score(X, sums) == pytest.approx(pruner.score(X, sums), abs=1e-5)
    net = RNNClassifier(hidden_size=6, max_epochs=3, batch_size=16, sequence_output=True,
                        random_state=0)
    moduli = ModuliRegularizer(net, target_sparsity=0.8, random_state=0).fit(X, labels)
    assert moduli.sparsity_["overall"] == pytest.approx(0.8, abs=0.02)
    assert_each_close(to_inference(moduli).predict_proba(X), moduli.predict_proba(X), atol=1e-5)


def test_per_step_target_errors_name_the_problem():
    X, _ = ragged(8)
    sums, labels = step_targets(X)
    reg = tiny(RNNRegressor, sequence_output=True)
    short = list(sums)
    short[2] = short[2][:-1]
    with pytest.raises(ValueError, match=f"y\\[2\\] has {len(X[2]) - 1} steps but sequence 2 "
                                         f"of X has {len(X[2])}"):
        reg.fit(X, short)
    longest = int(np.argmax([len(x) for x in X]))
    with pytest.raises(ValueError, match=f"but sequence {longest} of X has"):
        reg.fit(X, padded_targets(sums, np.nan)[:, :-1])
    with_nan = [s.copy() for s in sums]
    with_nan[3][1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity at step 1 of sequence 3"):
        reg.fit(X, with_nan)
    with pytest.raises(ValueError, match="NaN or infinity at step 1 of sequence 3"):
        reg.fit(X, padded_targets(with_nan, 0.0))
    with pytest.raises(ValueError, match="different target shapes per step"):
        reg.fit(X, [s[:, None] if i == 1 else s for i, s in enumerate(sums)])
    with pytest.raises(ValueError, match="a target per step"):
        reg.fit(X, np.zeros(len(X)))  # one target per sequence
    with pytest.raises(ValueError, match="one label per step"):
        tiny(sequence_output=True).fit(X, [np.stack([t, t], axis=1) for t in labels])
    equal = np.zeros((4, 5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="y has 6 steps but X has n_steps=5"):
        reg.fit(equal, np.zeros((4, 6)))
    nan_after = np.pad(np.ones((4, 5)), ((0, 0), (0, 1)), constant_values=np.nan)
    assert reg.fit(equal, nan_after).predict(equal).shape == (4, 5)


# -- sklearn tools ----------------------------------------------------------------------------
def test_cv_splitting_pipeline_and_grid_search_over_a_list():
    X, y = ragged(48)
    scores = cross_val_score(tiny(), X, y, cv=KFold(3))
    assert scores.shape == (3,)
    np.testing.assert_array_equal(cross_val_score(tiny(), PaddedSequences.from_list(X), y,
                                                  cv=KFold(3)), scores)
    pipe = make_pipeline(FunctionTransformer(from_aeon), tiny())  # aeon's layout in a pipeline
    aeon_X = [x.T for x in X]
    np.testing.assert_array_equal(cross_val_score(pipe, aeon_X, y, cv=KFold(3)), scores)
    search = GridSearchCV(tiny(), {"hidden_size": [4, 6]}, cv=KFold(2)).fit(X, y)
    assert search.predict(X[:5]).shape == (5,)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask[distributed] is not installed")
def test_dask_grid_search_over_ragged_sequences(dask_cluster):
    from joblib import parallel_backend

    X, y = ragged(40)
    search = GridSearchCV(LatticePruner(tiny(), n_rounds=1, fine_tune_epochs=1, random_state=0),
                          {"sparsity": [0.5, 0.8]}, cv=KFold(2), refit=False)
    expected = search.fit(X, y).cv_results_["mean_test_score"]
    with parallel_backend("dask"):  # the session's cluster: its client is the default
        scores = clone(search).set_params(n_jobs=2).fit(X, y).cv_results_["mean_test_score"]
    np.testing.assert_array_equal(scores, expected)


# -- sparsifiers, inference forms, persistence --------------------------------------------------
@pytest.mark.parametrize("arch", ARCHITECTURES[::2], ids=ARCH_IDS[::2])
def test_pruning_and_to_inference_with_ragged_input(arch, tmp_path):
    X, y = ragged()
    pruner = LatticePruner(tiny(**arch), sparsity=0.8, n_rounds=2, fine_tune_epochs=1,
                           random_state=0).fit(X, y)
    assert pruner.sparsity_["overall"] == pytest.approx(0.8, abs=0.02)
    proba, hidden = pruner.predict_proba(X), pruner.transform(X)
    for engine in ("auto", "sparse", "dense"):
        fast = to_inference(pruner, engine=engine)
        np.testing.assert_allclose(fast.predict_proba(X), proba, atol=1e-5)
        np.testing.assert_allclose(fast.transform(X), hidden, atol=1e-5)
    units = LatticePruner(tiny(**arch), sparsity=0.5, granularity="unit", n_rounds=1,
                          fine_tune_epochs=1, random_state=0).fit(X, y)
    np.testing.assert_allclose(to_inference(units).predict_proba(X), units.predict_proba(X),
                               atol=1e-5)
    alone = np.concatenate([units.predict_proba(x[None]) for x in X[:4]])
    np.testing.assert_allclose(units.predict_proba(X[:4]), alone, atol=1e-6)
    save(pruner, tmp_path / "pruner.joblib")
    np.testing.assert_array_equal(load(tmp_path / "pruner.joblib").predict_proba(X), proba)
    save_weights(pruner, tmp_path / "weights")
    restored = load_weights(clone(pruner), tmp_path / "weights")
    np.testing.assert_array_equal(restored.predict_proba(X), proba)


def test_moduli_regularizer_with_ragged_input():
    X, y = ragged()
    net = RNNClassifier(hidden_size=6, max_epochs=3, batch_size=16, random_state=0)
    reg = ModuliRegularizer(net, target_sparsity=0.8, random_state=0).fit(X, y)
    assert reg.sparsity_["overall"] == pytest.approx(0.8, abs=0.02)
    np.testing.assert_allclose(to_inference(reg).predict_proba(X), reg.predict_proba(X),
                               atol=1e-5)


# -- aeon -------------------------------------------------------------------------------------
def test_from_aeon_layouts():
    X, y = ragged()
    cube = np.stack([x[:2] for x in X])  # equal length, (n, 2 steps, 3 features)
    np.testing.assert_array_equal(from_aeon(cube.transpose(0, 2, 1)), cube)
    for x, back in zip(X, from_aeon([x.T for x in X])):
        np.testing.assert_array_equal(back, x)
    with pytest.raises(ValueError, match="2-D .n_channels, n_timepoints"):
        from_aeon([np.zeros(3)])


TS_FILE = """@problemName tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1.0,2.0,3.0:4.0,5.0,6.0:a
1.5,2.5:0.5,0.25:b
0.1,0.2,0.3,0.4:1.0,1.1,1.2,1.3:a
"""


def test_load_uea_reads_a_ts_file_with_aeon(tmp_path):
    pytest.importorskip("aeon")
    from latticeprune.datasets import load_uea

    folder = tmp_path / "tiny"
    folder.mkdir()
    for split in ("TRAIN", "TEST"):  # aeon finds a local data set by both files
        (folder / f"tiny_{split}.ts").write_text(TS_FILE)
    data = load_uea("tiny", split="train", data_home=tmp_path)
    assert data.lengths.tolist() == [3, 2, 4] and data.target.tolist() == ["a", "b", "a"]
    np.testing.assert_array_equal(data.data[1], [[1.5, 0.5], [2.5, 0.25]])
    clf = tiny().fit(data.data, data.target)
    assert set(clf.predict(data.data)) <= {"a", "b"}


@pytest.mark.skipif(not (SHARED_DATA / "uea" / "JapaneseVowels").is_dir(),
                    reason="../shared/data/uea/JapaneseVowels is absent")
@pytest.mark.parametrize("home", ["parent", "own folder"])
def test_load_uea_japanese_vowels_from_its_folder_or_the_parent(home):
    pytest.importorskip("aeon")
    from latticeprune.datasets import load_uea

    folder = SHARED_DATA / "uea" / ("JapaneseVowels" if home == "own folder" else "")
    data = load_uea("JapaneseVowels", split="test", data_home=folder)
    X = data.data
    assert len(X) == 370 and {x.shape[1] for x in X} == {12}
    assert min(len(x) for x in X) >= 7 and max(len(x) for x in X) <= 29
    assert data.path == SHARED_DATA / "uea" / "JapaneseVowels"


def test_load_uea_reads_the_sets_aeon_ships_and_never_downloads_unasked(tmp_path, monkeypatch):
    aeon_datasets = pytest.importorskip("aeon.datasets")
    from latticeprune.datasets import load_uea

    X, y = load_uea("GunPoint", split=None, return_X_y=True)  # inside aeon's wheel
    assert X.shape == (200, 150, 1) and len(y) == 200
    monkeypatch.setattr(aeon_datasets, "load_classification",
                        lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(FileNotFoundError, match=f"No Nowhere_TRAIN.ts in {tmp_path}/Nowhere, "
                                                f"{tmp_path}, .*download_if_missing=True"):
        load_uea("Nowhere", data_home=tmp_path)


def test_load_uea_without_aeon_or_bad_split(monkeypatch):
    from latticeprune.datasets import load_uea

    with pytest.raises(ValueError, match="split='valid'"):
        load_uea("JapaneseVowels", split="valid")
    monkeypatch.setitem(__import__("sys").modules, "aeon.datasets", None)
    with pytest.raises(ImportError, match="latticeprune\\[aeon\\]"):
        load_uea("JapaneseVowels")


# -- errors -----------------------------------------------------------------------------------
def test_errors_name_the_problem():
    X, y = ragged(8)
    clf = tiny()
    with pytest.raises(ValueError, match="different feature counts \\[3, 4\\].*sequence 2"):
        clf.fit(X[:2] + [np.zeros((3, 4))] + X[3:], y)
    with pytest.raises(ValueError, match="Sequence 1 of X has shape \\(0, 3\\)"):
        clf.fit([X[0], np.zeros((0, 3))] + X[2:], y)
    with_nan = [x.copy() for x in X]
    with_nan[4][1, 2] = np.nan
    with pytest.raises(ValueError, match="Sequence 4 of X: Input X contains NaN"):
        clf.fit(with_nan, y)
    data, lengths = padded(X, fill=np.nan)
    data[3, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN inside a sequence: sequence 3, step 0"):
        clf.fit(data, y)
    with pytest.raises(ValueError, match="lengths do not match the data: sequence 0"):
        PaddedSequences(np.zeros((2, 4, 3)), [5, 2])
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        PaddedSequences(np.zeros((2, 4, 3)), [4])
    with pytest.raises(ValueError, match="no forward\\(x, lengths\\)"):
        tiny(module=torch.nn.Linear, module__in_features=3, module__out_features=2).fit(X, y)
    fitted = tiny().fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features per step"):
        fitted.predict([np.zeros((3, 4))] * 2 + [np.zeros((2, 4))])


def test_check_padded_and_nan_lengths():
    X, _ = ragged(5)
    data, lengths = check_padded(X)
    assert data.dtype == np.float32 and data.flags.c_contiguous
    np.testing.assert_array_equal(lengths, [len(x) for x in X])
    assert nan_lengths(np.zeros((2, 3, 1))) is None
    assert check_padded([np.ones((4, 2))] * 3)[1] is None  # all equal: no lengths
    with pytest.raises(ValueError, match="Sequence 1 of X is empty"):
        nan_lengths(np.array([[[1.0], [np.nan]], [[np.nan], [np.nan]]]))
