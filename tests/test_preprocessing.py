"""SequenceScaler: per-feature scaling over the valid steps of every layout (issue 26)."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from latticeprune import PaddedSequences, RNNClassifier
from latticeprune.preprocessing import SequenceScaler

RNG = np.random.RandomState(0)
#: Sequences of 3 features on very different scales, 4 to 9 steps long.
RAGGED = [RNG.randn(n, 3) * [1, 10, 100] + [0, 5, -50] for n in RNG.randint(4, 10, size=12)]


def manual(sequences, method="standard"):
    steps = np.concatenate(sequences)
    if method == "standard":
        return steps.mean(axis=0), steps.std(axis=0)
    return steps.min(axis=0), steps.max(axis=0) - steps.min(axis=0)


@parametrize_with_checks([SequenceScaler(), SequenceScaler("minmax", feature_range=(-1, 1))])
def test_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("method", ["standard", "minmax"])
def test_statistics_run_over_every_valid_step_of_every_layout(method):
    shift, scale = manual(RAGGED, method)
    expected = [(x - shift) / scale for x in RAGGED]
    longest = max(len(x) for x in RAGGED)
    padded = np.full((len(RAGGED), longest, 3), np.nan)
    for i, x in enumerate(RAGGED):
        padded[i, :len(x)] = x
    lengths = np.array([len(x) for x in RAGGED])
    layouts = {"list": RAGGED, "nan-padded": padded,
               "PaddedSequences": PaddedSequences(np.nan_to_num(padded, nan=7.0), lengths)}
    for name, X in layouts.items():
        scaler = SequenceScaler(method).fit(X)
        out = scaler.transform(X)
        got = (out if name == "list" else [row[:n] for row, n in zip(
            out.data if name == "PaddedSequences" else out, lengths)])
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, atol=1e-10, err_msg=name)
        if name == "nan-padded":  # the padding after each end stays NaN
            short = int(np.argmin(lengths))
            assert lengths[short] < longest and np.isnan(out[short, lengths[short]:]).all()
        if name == "PaddedSequences":  # entries after each end are left as they were
            short = int(np.argmin(lengths))
            np.testing.assert_array_equal(out.data[short, lengths[short]:], 7.0)
            np.testing.assert_array_equal(out.lengths, lengths)
        back = scaler.inverse_transform(out)
        for a, b in zip(back if name == "list" else [r[:n] for r, n in zip(
                back.data if name == "PaddedSequences" else back, lengths)], RAGGED):
            np.testing.assert_allclose(a, b, atol=1e-8)


def test_equal_length_3d_and_2d_with_input_size_agree():
    X = RNG.randn(20, 6, 3) * [1, 10, 100]
    three = SequenceScaler().fit_transform(X)
    two = SequenceScaler(input_size=3).fit_transform(X.reshape(20, 18))
    np.testing.assert_allclose(two.reshape(20, 6, 3), three)
    np.testing.assert_allclose(three.reshape(-1, 3).mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(three.reshape(-1, 3).std(axis=0), 1)
    with pytest.raises(ValueError, match="not a multiple of input_size=3"):
        SequenceScaler(input_size=3).fit(X.reshape(20, 18)[:, :17])


def test_univariate_ragged_sequences_stay_1d():
    X = [RNG.rand(n) * 50 for n in (3, 8, 5)]
    out = SequenceScaler().fit_transform(X)
    assert [x.shape for x in out] == [(3,), (8,), (5,)]
    np.testing.assert_allclose(np.concatenate(out).std(), 1)


def test_partial_fit_equals_fit():
    batches = [RAGGED[:5], RAGGED[5:]]
    scaler = SequenceScaler()
    for batch in batches:
        scaler.partial_fit(batch)
    full = SequenceScaler().fit(RAGGED)
    np.testing.assert_allclose(scaler.scaler_.mean_, full.scaler_.mean_)
    np.testing.assert_allclose(scaler.scaler_.var_, full.scaler_.var_)
    assert scaler.scaler_.n_samples_seen_ == sum(len(x) for x in RAGGED)


def test_a_new_layout_with_other_features_is_refused():
    scaler = SequenceScaler().fit(RAGGED)
    with pytest.raises(ValueError, match="X has 2 features per step, but SequenceScaler is "
                                         "expecting 3"):
        scaler.transform([x[:, :2] for x in RAGGED])
    with pytest.raises(ValueError, match="different feature counts"):
        SequenceScaler().fit([RAGGED[0], RAGGED[1][:, :2]])


def test_in_a_pipeline_before_a_recurrent_classifier_on_ragged_data():
    y = np.array([int(x[:, 2].mean() > -50) for x in RAGGED])
    pipe = Pipeline([("scale", SequenceScaler()),
                     ("net", RNNClassifier(hidden_size=4, max_epochs=2, random_state=0))])
    proba = pipe.fit(RAGGED, y).predict_proba(RAGGED)
    assert proba.shape == (len(RAGGED), 2) and np.isfinite(proba).all()


def test_set_output_pandas_on_2d_input():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(RNG.rand(10, 4), columns=["a", "b", "c", "d"])
    out = SequenceScaler(input_size=2).set_output(transform="pandas").fit_transform(frame)
    assert list(out.columns) == ["a", "b", "c", "d"]
