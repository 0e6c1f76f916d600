"""
Unit removal: a smaller net, exported to ONNX
=============================================

``granularity="unit"`` removes whole hidden units, so the pruned net is an ordinary, smaller
recurrent net: fewer parameters, faster in plain torch (timed below: the module's forward on
256 sequences, one thread), and exportable. Here half of the LSTM's units go, the net is
fine-tuned, and the result is written to ONNX, whose ``probabilities`` equal
``predict_proba`` in ONNX Runtime.
"""

import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
import torch
from sklearn.model_selection import train_test_split

from latticeprune import LatticePruner, RNNClassifier, SequenceScaler, export_onnx
from latticeprune.datasets import load_digits_sequences
from latticeprune.utils import torch_threads

X, y = load_digits_sequences(return_X_y=True)
X = SequenceScaler().fit_transform(X).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
dense = RNNClassifier(cell="lstm", hidden_size=64, max_epochs=15, lr=0.01,
                      random_state=0)
dense.fit(X_train, y_train)
half = LatticePruner(dense, prefit=True, granularity="unit", sparsity=0.5, n_rounds=2,
                     random_state=0).fit(X_train, y_train)


def parameters(estimator):
    return sum(p.numel() for p in estimator.module_.parameters())


def latency_ms(estimator, batch=torch.from_numpy(X_test[:256]), repeats=50):
    """The net's forward on 256 sequences, one thread (the median of ``repeats``)."""
    times = []
    with torch_threads(1), torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            estimator.module_(batch)
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:]))


rows = [("dense LSTM-64", dense), ("half the units", half.estimator_)]
for name, estimator in rows:
    print(f"{name:15s} {parameters(estimator):6d} parameters, test accuracy "
          f"{estimator.score(X_test, y_test):.3f}, {latency_ms(estimator):.2f} ms per 256")

path = export_onnx(half, Path(tempfile.mkdtemp()) / "half.onnx")
label, proba = onnxruntime.InferenceSession(path).run(None, {"x": X_test})
print("ONNX Runtime: largest difference from predict_proba",
      float(np.abs(proba - half.predict_proba(X_test)).max()),
      "- same labels:", bool((label == half.predict(X_test)).all()))

# %%
# The parameter counts side by side:
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh([name for name, _ in rows], [parameters(e) for _, e in rows], color=["grey", "C0"])
ax.set_xlabel("parameters")
fig.tight_layout()
