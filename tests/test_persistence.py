"""Save / load round trips: pickle (joblib) and weights only (numpy .npz without pickle, JSON)."""

import json
import pickle

import numpy as np
import pytest
import torch

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, RNNRegressor
from latticeprune.datasets import make_adding_problem
from latticeprune.neuron_graph import NeuronGraph
from latticeprune.persistence import (ARRAYS_FILE, STATE_FILE, load, load_weights, save,
                                      save_weights)



@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets: one intra-op thread is fastest, and far faster on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_pruner(**params):
    params = {"sparsity": 0.6, "n_rounds": 2, "fine_tune_epochs": 1, "random_state": 0, **params}
    return LatticePruner(RNNClassifier(hidden_size=12, max_epochs=2, batch_size=32), **params)


def make_regularizer(**params):
    params = {"moduli": "torus", "target_sparsity": 0.8, "random_state": 0, **params}
    return ModuliRegularizer(RNNClassifier(hidden_size=12, max_epochs=3, batch_size=32), **params)


@pytest.fixture(scope="module")
def pruner(small_digits):
    return make_pruner().fit(*small_digits)


@pytest.fixture(scope="module")
def regularizer(small_digits):
    return make_regularizer().fit(*small_digits)


def assert_same_masks(restored, original):
    assert restored.masks_.keys() == original.masks_.keys()
    for name, mask in original.masks_.items():
        np.testing.assert_array_equal(restored.masks_[name], mask)
    # The net itself carries the masks, not only the attribute.
    net_masks = NeuronGraph(restored).masks()
    assert net_masks.keys() == original.masks_.keys()
    for name, mask in net_masks.items():
        np.testing.assert_array_equal(mask.numpy(), original.masks_[name])


def assert_same_predictions(restored, original, X):
    np.testing.assert_array_equal(restored.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(restored.transform(X), original.transform(X))


def assert_zero_where_masked(estimator):
    graph = NeuronGraph(estimator)
    masks = graph.masks()
    assert masks, "the net has no pruned tensors"
    for t in graph.tensors:
        if t.name in masks:
            assert torch.all(t.weight.detach()[~masks[t.name]] == 0)


# -- pickle ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fitted", ["pruner", "regularizer"])
def test_pickle_round_trip_predicts_identically_and_keeps_masks(fitted, request, small_digits,
                                                                tmp_path):
    original = request.getfixturevalue(fitted)
    path = save(original, tmp_path / "model.joblib")
    restored = load(path)
    assert restored is not original
    assert_same_predictions(restored, original, small_digits[0])
    assert_same_masks(restored, original)
    assert restored.sparsity_ == original.sparsity_


def test_pickle_keeps_the_lattice_analysis(pruner, tmp_path):
    restored = load(save(pruner, tmp_path / "pruner.joblib", compress=0))
    for got, expected in zip(restored.meet_irreducible_, pruner.meet_irreducible_):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(restored.lattice_["hasse_edges"], pruner.lattice_["hasse_edges"])
    assert restored.rounds_ == pruner.rounds_


def test_pickled_pruned_net_keeps_pruned_weights_at_zero_through_training(pruner, small_digits,
                                                                          tmp_path):
    restored = load(save(pruner, tmp_path / "pruner.joblib"))
    restored.estimator_.partial_fit(*small_digits, epochs=1)
    assert_zero_where_masked(restored)
    assert NeuronGraph(restored).sparsity()["overall"] >= pruner.sparsity_["overall"]


# -- weights only ---------------------------------------------------------------------------------
def test_weights_round_trip_lattice_pruner(pruner, small_digits, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    assert {p.name for p in folder.iterdir()} == {ARRAYS_FILE, STATE_FILE, "history.json"}
    state_dict = np.load(folder / ARRAYS_FILE, allow_pickle=False)
    assert "encoder.weight_hh_l0_orig" in state_dict and "encoder.weight_hh_l0_mask" in state_dict

    restored = load_weights(make_pruner(), folder)
    # Before any forward pass, the effective (masked) weights are already the saved ones.
    assert NeuronGraph(restored).sparsity() == pruner.sparsity_
    np.testing.assert_array_equal(NeuronGraph(restored).strength_matrix(),
                                  NeuronGraph(pruner).strength_matrix())
    assert_same_predictions(restored, pruner, small_digits[0])
    assert_same_masks(restored, pruner)
    assert restored.sparsity_ == pruner.sparsity_
    assert restored.rounds_ == pruner.rounds_
    for got, expected in zip(restored.meet_irreducible_ + restored.centrality_,
                             pruner.meet_irreducible_ + pruner.centrality_):
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype
    assert restored.lattice_["irreducible_counts"] == pruner.lattice_["irreducible_counts"]
    np.testing.assert_array_equal(restored.lattice_["component_labels"],
                                  pruner.lattice_["component_labels"])
    assert len(restored.estimator_.history) == len(pruner.estimator_.history)


def test_weights_round_trip_moduli_regularizer(regularizer, small_digits, tmp_path):
    restored = load_weights(make_regularizer(), save_weights(regularizer, tmp_path / "reg"))
    assert_same_predictions(restored, regularizer, small_digits[0])
    assert_same_masks(restored, regularizer)
    assert restored.embedding_.keys() == regularizer.embedding_.keys()
    for name, points in regularizer.embedding_.items():
        np.testing.assert_array_equal(restored.embedding_[name], points)
    assert restored.history_ == regularizer.history_


def test_weights_round_trip_nested_sparsifiers(small_digits, tmp_path):
    def configure():
        inner = ModuliRegularizer(RNNClassifier(hidden_size=8, max_epochs=2), moduli="circle",
                                  target_sparsity=0.5)
        return LatticePruner(inner, sparsity=0.7, n_rounds=1, fine_tune_epochs=0,
                             random_state=3)

    original = configure().fit(*small_digits)
    restored = load_weights(configure(), save_weights(original, tmp_path / "nested"))
    assert_same_predictions(restored, original, small_digits[0])
    np.testing.assert_array_equal(restored.estimator_.embedding_["encoder.l0"],
                                  original.estimator_.embedding_["encoder.l0"])
    assert restored.estimator_.sparsity_ == original.estimator_.sparsity_


def test_weights_round_trip_plain_pruned_regressor(tmp_path):
    X, y = make_adding_problem(60, 6, random_state=0)

    def configure():
        return RNNRegressor(cell="gru", hidden_size=6, max_epochs=1, random_state=0)

    net = configure().fit(X, y)
    NeuronGraph(net).apply_masks({"encoder.weight_hh_l0": (torch.rand(18, 6) > 0.5).float()})
    restored = load_weights(configure(), save_weights(net, tmp_path / "net"))
    np.testing.assert_array_equal(restored.predict(X), net.predict(X))
    assert restored.predict(X).shape == (60,)
    np.testing.assert_array_equal(NeuronGraph(restored).masks()["encoder.weight_hh_l0"],
                                  NeuronGraph(net).masks()["encoder.weight_hh_l0"])


@pytest.mark.parametrize("dtype", [str, object])
def test_weights_keep_string_class_labels(small_digits, tmp_path, dtype):
    X, y = small_digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                       "nine"], dtype=dtype)[y]
    pruner = make_pruner(n_rounds=1, fine_tune_epochs=0).fit(X, labels)
    restored = load_weights(make_pruner(n_rounds=1, fine_tune_epochs=0),
                            save_weights(pruner, tmp_path / "strings"))
    np.testing.assert_array_equal(restored.classes_, pruner.classes_)
    assert restored.classes_.dtype == pruner.classes_.dtype
    np.testing.assert_array_equal(restored.predict(X), pruner.predict(X))


def test_weights_loaded_net_trains_further_with_masks_kept(pruner, small_digits, tmp_path):
    restored = load_weights(make_pruner(), save_weights(pruner, tmp_path / "pruner"))
    before = restored.predict_proba(small_digits[0])
    restored.estimator_.partial_fit(*small_digits, epochs=1)
    assert not np.array_equal(restored.predict_proba(small_digits[0]), before)  # it trained
    assert_zero_where_masked(restored)


class _Payload:
    """Unpickling this would run ``_record``: what a malicious file would do."""

    ran = []

    def __reduce__(self):
        return (_Payload._record, ())

    @staticmethod
    def _record():
        _Payload.ran.append(True)
        return "executed"


def test_saved_folder_holds_no_pickle(pruner, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
        assert all(not arrays[key].dtype.hasobject for key in arrays.files)
        state_dict = pruner.estimator_.module_.state_dict()
        for key, tensor in state_dict.items():
            np.testing.assert_array_equal(arrays[key], tensor.numpy())
        np.testing.assert_array_equal(arrays["0/masks_/0"], pruner.masks_["encoder.weight_hh_l0"])
    for path in folder.glob("*.json"):
        json.loads(path.read_text())


@pytest.mark.parametrize("torch_load_kwargs", [None, {"weights_only": False}])
@pytest.mark.parametrize("tampered", ["encoder.weight_hh_l0_mask", "payload"])
def test_load_weights_refuses_pickled_objects(pruner, tmp_path, torch_load_kwargs, tampered):
    folder = save_weights(pruner, tmp_path / "pruner")
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays[tampered] = np.array([_Payload()], dtype=object)
    np.savez(folder / ARRAYS_FILE, allow_pickle=True, **arrays)
    configuration = make_pruner()
    configuration.estimator.set_params(torch_load_kwargs=torch_load_kwargs)
    _Payload.ran.clear()
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only") as refused:
        load_weights(configuration, folder)
    assert "allow_pickle=False" in str(refused.value.__cause__)  # numpy's own refusal
    assert _Payload.ran == []


def test_load_weights_rejects_a_different_configuration(pruner, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    with pytest.raises(ValueError, match=r"sparsity=0.9 \(saved: 0.6\)"):
        load_weights(make_pruner().set_params(sparsity=0.9), folder)
    with pytest.raises(ValueError, match=r"hidden_size=16 \(saved: 12\)"):
        load_weights(make_pruner().set_params(estimator__hidden_size=16), folder)
    with pytest.raises(ValueError, match="levels"):
        load_weights(RNNClassifier(hidden_size=12), folder)
    with pytest.raises(ValueError, match="ModuliRegularizer where .*LatticePruner was saved"):
        load_weights(make_regularizer(), folder)


def test_load_weights_ignores_verbose(pruner, small_digits, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    restored = load_weights(make_pruner().set_params(estimator__verbose=1), folder)
    X = small_digits[0]
    np.testing.assert_array_equal(restored.predict(X), pruner.predict(X))


def test_state_file_is_readable_json(pruner, tmp_path):
    state = json.loads((save_weights(pruner, tmp_path / "p") / STATE_FILE).read_text())
    classes = [level["class"] for level in state["levels"]]
    assert classes == ["latticeprune.pruner.LatticePruner", "latticeprune.estimators.RNNClassifier"]
    assert state["levels"][0]["params"]["sparsity"] == 0.6
    assert state["pruned_parameters"] == ["encoder.weight_hh_l0"]


def test_save_weights_warns_about_attributes_it_cannot_keep(small_digits, tmp_path):
    reg = ModuliRegularizer(RNNClassifier(hidden_size=8, max_epochs=2), target_sparsity=0.5,
                            lottery_ticket=True, random_state=0).fit(*small_digits)
    with pytest.warns(UserWarning, match="pruned_estimator_"):
        save_weights(reg, tmp_path / "lottery")


def test_unfitted_estimators_are_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save_weights(make_pruner(), tmp_path / "x")
    with pytest.raises(NotFittedError):
        save_weights(RNNClassifier(), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="save_weights"):
        load_weights(make_pruner(), tmp_path / "missing")


# -- damaged or edited files: a clear error naming the file and what is wrong ---------------------
def test_load_weights_of_a_truncated_arrays_file_names_it(pruner, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    data = (folder / ARRAYS_FILE).read_bytes()
    (folder / ARRAYS_FILE).write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"arrays\.npz cannot be read .*truncated"):
        load_weights(make_pruner(), folder)


@pytest.mark.parametrize("missing", ["encoder.weight_hh_l0_mask", "0/masks_/0"])
def test_load_weights_names_an_array_the_state_refers_to_but_the_file_lacks(pruner, tmp_path,
                                                                            missing):
    folder = save_weights(pruner, tmp_path / "pruner")
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files if key != missing}
    np.savez(folder / ARRAYS_FILE, **arrays)
    with pytest.raises(ValueError, match=f"has no array '{missing}', which latticeprune.json "
                                         "refers to"):
        load_weights(make_pruner(), folder)


@pytest.mark.parametrize("edit,match", [
    ({"levels": {}}, "'levels' must be a non-empty list"),
    ({"levels": [1]}, "'levels' must be a non-empty list"),
    ({"pruned_parameters": "encoder"}, "'pruned_parameters' must be a list"),
    ("{not json", "is not valid JSON"),
])
def test_load_weights_of_a_malformed_state_file_says_what_is_wrong(pruner, tmp_path, edit, match):
    folder = save_weights(pruner, tmp_path / "pruner")
    state = json.loads((folder / STATE_FILE).read_text())
    text = edit if isinstance(edit, str) else json.dumps({**state, **edit})
    (folder / STATE_FILE).write_text(text)
    with pytest.raises(ValueError, match=match):
        load_weights(make_pruner(), folder)


def test_load_weights_reports_the_sparsity_of_the_masks_it_loads(pruner, small_digits, tmp_path):
    folder = save_weights(pruner, tmp_path / "pruner")
    with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["encoder.weight_hh_l0_mask"] = np.zeros_like(arrays["encoder.weight_hh_l0_mask"])
    np.savez(folder / ARRAYS_FILE, **arrays)  # every recurrent weight masked by hand
    restored = load_weights(make_pruner(), folder)
    assert pruner.sparsity_["overall"] == pytest.approx(0.6, abs=0.01)
    assert restored.sparsity_["overall"] == 1.0
    assert not restored.masks_["encoder.weight_hh_l0"].any()
    assert not restored.estimator_.module_.encoder.weight_hh_l0.detach().any()
