"""Moduli regularisation with gradual magnitude pruning on the embedded digits data.

Run: python examples/moduli_regularization.py
"""

from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from latticeprune import ModuliRegularizer, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences

X, y = load_digits_sequences(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
net = RNNClassifier(cell="rnn_tanh", hidden_size=32, max_epochs=15, random_state=0)

for moduli in ("torus", "circle", "standard"):
    pipe = make_pipeline(SequenceScaler(),  # each feature over all steps of the training set
                         ModuliRegularizer(net, moduli=moduli, target_sparsity=0.9,
                                           random_state=0)).fit(X_train, y_train)
    reg = pipe[-1]
    print(f"{moduli:8s} at sparsity {reg.sparsity_['overall']:.2f}: "
          f"{pipe.score(X_test, y_test):.3f}")
