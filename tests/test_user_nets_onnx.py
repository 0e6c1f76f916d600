"""The zoo's smaller nets (tests/user_nets.py) through ONNX export: the graph computes what
the estimator predicts (issue 24). A module of its own, so that pytest-xdist can run its
exports beside the rest of the zoo's tests."""

import numpy as np
import pytest

from conftest import onnx_session
from latticeprune import LatticePruner, export_onnx
from test_user_nets import IDS, user_net
from user_nets import ZOO, Packed, zoo_data


@pytest.mark.slow
@pytest.mark.parametrize("module_class", ZOO, ids=IDS)
def test_the_smaller_net_exports_to_onnx_as_it_predicts(module_class, tmp_path):
    X, y = zoo_data(module_class)
    pruner = LatticePruner(user_net(module_class), granularity="unit", sparsity=0.5,
                           n_rounds=1, random_state=0).fit(X, y)
    if module_class is Packed:
        with pytest.raises(ValueError, match="packs its sequences .pack_padded_sequence.*"
                                             "torch.onnx cannot export"):
            export_onnx(pruner, tmp_path / "net.onnx")
        return
    path = export_onnx(pruner, tmp_path / "net.onnx", n_steps=X.shape[1])
    session = onnx_session(path)
    assert session.get_inputs()[0].shape[0] == "batch"
    label, proba = session.run(None, {"x": X})
    np.testing.assert_allclose(proba, pruner.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(label, pruner.predict(X))
