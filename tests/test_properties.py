"""Property test over the sparsifiers' parameter space (issue 12).

Every combination of a sparsifier's parameters and a tiny net either reaches its target
sparsity (by the one rounding rule, :func:`~latticeprune.neuron_graph.pruned_count`) with
finite predictions and a path of non-zero weights from the input to the read-out, or raises
a clear ``ValueError``. Derandomised, so the suite sees the same combinations every run.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, RNNRegressor
from latticeprune.callbacks.connectivity import input_reaches_readout
from latticeprune.moduli import SPACE_NAMES
from latticeprune.nets import CELLS
from latticeprune.neuron_graph import pruned_count

from conftest import FUZZ_COUNTS

RNG = np.random.RandomState(0)
X = RNG.rand(48, 4, 3).astype(np.float32)
Y_CLASS = (X[:, :, 0].mean(axis=1) > 0.5).astype(int)
Y_REG = X[:, :, 1].sum(axis=1)
#: What a clear refusal says (the parameter or the broken guarantee).
CLEAR = ("cut the net off", "num_layers >= 2", "sparsity=None", "train_embedding")

SETTINGS = settings(max_examples=45, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@st.composite
def nets(draw):
    num_layers = draw(st.integers(1, 2))
    params = dict(cell=draw(st.sampled_from(CELLS)), num_layers=num_layers,
                  top_down=draw(st.booleans()) if num_layers > 1 else draw(
                      st.sampled_from([False, False, True])),
                  hidden_size=draw(st.integers(2, 6)), max_epochs=draw(st.integers(1, 2)),
                  random_state=0)
    regressor = draw(st.booleans())
    return (RNNRegressor if regressor else RNNClassifier)(**params), Y_REG if regressor else Y_CLASS


def _fit_or_refuse(sparsifier, y):
    """The fitted sparsifier, or None if it refused with a clear ValueError."""
    try:
        return sparsifier.fit(X, y)
    except ValueError as exc:
        message = str(exc)
        reasons = [fragment for fragment in CLEAR if fragment in message]
        assert reasons, message
        key = f"refused ({reasons[0]})"
        FUZZ_COUNTS[key] = FUZZ_COUNTS.get(key, 0) + 1
        return None


def _check_outcome(fitted, scope, target, max_overshoot):
    graph = fitted.neuron_graph()
    tensors = graph.tensors_in(scope)
    total = sum(t.weight.numel() for t in tensors)
    zeros = sum(int((t.weight == 0).sum()) for t in tensors)
    if target is not None:
        assert pruned_count(target, total) <= zeros <= pruned_count(target, total) + max_overshoot
        assert fitted.sparsity_["overall"] == pytest.approx(zeros / total)
    assert np.isfinite(fitted.predict(X)).all()
    assert input_reaches_readout(graph)


@SETTINGS
@given(net=nets(), strategy=st.sampled_from(["lattice", "lattice", "magnitude", "random"]),
       adjacency=st.sampled_from(["binary", "continuous"]),
       order=st.sampled_from(["context", "reachability"]),
       scope=st.sampled_from(["recurrent", "all"]),
       sparsity=st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, None]),
                          st.floats(0, 0.999)),
       n_rounds=st.integers(1, 3), fine_tune_epochs=st.integers(0, 1))
def test_lattice_pruner_reaches_its_target_or_refuses(net, strategy, adjacency, order, scope,
                                                      sparsity, n_rounds, fine_tune_epochs):
    FUZZ_COUNTS["LatticePruner parameters"] = FUZZ_COUNTS.get("LatticePruner parameters", 0) + 1
    estimator, y = net
    fitted = _fit_or_refuse(LatticePruner(
        estimator, strategy=strategy, adjacency=adjacency, order=order, scope=scope,
        sparsity=sparsity, n_rounds=n_rounds, fine_tune_epochs=fine_tune_epochs,
        random_state=0), y)
    if fitted is not None:
        gates = max(t.n_gates for t in fitted.neuron_graph().tensors)
        _check_outcome(fitted, scope, sparsity, gates if strategy == "lattice" else 0)


@SETTINGS
@given(net=nets(), moduli=st.sampled_from(SPACE_NAMES),
       inhibitor=st.sampled_from(["DoG", "gauss", "ripple", "square"]),
       schedule=st.sampled_from(["linear", "cubic"]), lottery_ticket=st.booleans(),
       prune_scope=st.sampled_from(["recurrent", "all"]),
       target=st.one_of(st.sampled_from([0.0, 0.9, 0.99]), st.floats(0, 0.999)),
       train_embedding=st.booleans())
def test_moduli_regularizer_reaches_its_target_or_refuses(net, moduli, inhibitor, schedule,
                                                          lottery_ticket, prune_scope, target,
                                                          train_embedding):
    FUZZ_COUNTS["ModuliRegularizer parameters"] = (
        FUZZ_COUNTS.get("ModuliRegularizer parameters", 0) + 1)
    estimator, y = net
    fitted = _fit_or_refuse(ModuliRegularizer(
        estimator, moduli=moduli, inhibitor=inhibitor, schedule=schedule,
        lottery_ticket=lottery_ticket, prune_scope=prune_scope, target_sparsity=target,
        train_embedding=train_embedding, random_state=0), y)
    if fitted is not None:
        _check_outcome(fitted, prune_scope, target, 0)
