"""The zoo's pruned nets (tests/user_nets.py) through ONNX export, at every granularity (the
smaller net of unit removal, the masked nets of weight and connection pruning): the graph
computes what the estimator predicts (issue 24). Marked ``exports`` (setup.cfg)."""

import numpy as np
import pytest

from conftest import onnx_session
from latticeprune import LatticePruner, export_onnx
from test_user_nets import IDS, user_net
from user_nets import ZOO, Packed, zoo_data


@pytest.mark.exports
@pytest.mark.parametrize("granularity", ["unit", "connection", "weight"])
@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_the_pruned_net_exports_to_onnx_as_it_predicts(module_class, granularity, tmp_path):
    X, y = zoo_data(module_class)
    pruner = LatticePruner(user_net(module_class), granularity=granularity, sparsity=0.5,
                           strategy="magnitude" if granularity == "weight" else "lattice",
                           n_rounds=1, random_state=0).fit(X, y)
    packed = module_class is Packed  # forward(x, lengths): its packed batch runs padded
    steps = (X["x"] if packed else X).shape[1]
    path = export_onnx(pruner, tmp_path / "net.onnx", n_steps=steps, variable_length=packed)
    session = onnx_session(path)
    assert session.get_inputs()[0].shape[0] == "batch"
    label, proba = session.run(None, X if packed else {"x": X})
    np.testing.assert_allclose(proba, pruner.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(label, pruner.predict(X))
