"""
Moduli regularisation and its embedding
=======================================

``ModuliRegularizer`` places the hidden neurons on a space (a circle, a torus, a Klein
bottle, ...), penalises each recurrent weight by the distance between the neurons it joins,
and prunes by magnitude during training. Here three spaces are compared at 90% sparsity, and
the torus embedding is drawn with the connections that survived.
"""

from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from latticeprune import ModuliRegularizer, RNNClassifier, SequenceScaler
from latticeprune.datasets import load_digits_sequences
from latticeprune.plotting import plot_moduli_embedding

X, y = load_digits_sequences(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
net = RNNClassifier(cell="rnn_tanh", hidden_size=32, max_epochs=15, lr=0.01,
                    random_state=0)

fitted = {}
for moduli in ("torus", "circle", "standard"):
    pipe = make_pipeline(SequenceScaler(),  # each feature over all steps of the training set
                         ModuliRegularizer(net, moduli=moduli, target_sparsity=0.9,
                                           random_state=0)).fit(X_train, y_train)
    fitted[moduli] = pipe[-1]
    print(f"{moduli:8s} at sparsity {pipe[-1].sparsity_['overall']:.2f}: "
          f"{pipe.score(X_test, y_test):.3f}")

# %%
# The neurons on the torus (drawn as its flat square, opposite sides identified) and the
# recurrent connections left after pruning:
plot_moduli_embedding(fitted["torus"])
