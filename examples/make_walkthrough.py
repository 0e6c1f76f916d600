"""Writes examples/walkthrough.ipynb, executed, with its outputs (figures included), so a user
opening it sees them; tests/test_examples.py executes it again (marked docs).

Run from the repository's root: ``python examples/make_walkthrough.py``."""
import nbclient
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("""# latticeprune walkthrough

Train a recurrent classifier on the embedded digits data (8 steps x 8 features), make it sparse
with both methods, grid-search sparsity x method, plot the results and look inside the lattice.
Everything runs on a CPU in a couple of minutes; no download."""),
    new_code_cell("""%matplotlib inline
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from latticeprune import LatticePruner, ModuliRegularizer, RNNClassifier, SequenceScaler
from latticeprune import plotting
from latticeprune.datasets import load_digits_sequences

X, y = load_digits_sequences(return_X_y=True)  # (n, 8 steps, 8 features)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                    random_state=0)
X_train.shape, X_test.shape"""),
    new_markdown_cell("## 1. A dense recurrent net\n`SequenceScaler` standardises each of the 8 features over all steps of all training sequences."),
    new_code_cell("""net = RNNClassifier(cell="lstm", hidden_size=32, max_epochs=15, lr=0.01,
                     random_state=0)
dense = Pipeline([("scale", SequenceScaler()), ("net", net)]).fit(X_train, y_train)
print("dense test accuracy", round(dense.score(X_test, y_test), 4))"""),
    new_markdown_cell("""## 2. Lattice pruning
The neurons' backbone (strongest 5% of connections) is ordered as a concept lattice; the
outgoing connections of neurons that are not meet-irreducible go first. `verbose=1` prints
one line per round."""),
    new_code_cell("""lattice_pipe = Pipeline([("scale", SequenceScaler()),
                         ("prune", LatticePruner(net, sparsity=0.8, n_rounds=3, verbose=1,
                                                 random_state=0))]).fit(X_train, y_train)
pruner = lattice_pipe[-1]
print("test accuracy", round(lattice_pipe.score(X_test, y_test), 4),
      "sparsity", round(pruner.sparsity_["overall"], 3))
print("meet-irreducible neurons:", pruner.meet_irreducible_[0].sum(), "of",
      pruner.lattice_["n_neurons"])
print("irreducible count per backbone level:", pruner.lattice_["irreducible_counts"])
[(r["round"], round(r["target"], 3), round(r["achieved"], 3)) for r in pruner.rounds_]"""),
    new_markdown_cell("## 3. Moduli regularisation\nHidden neurons on a torus; long-range recurrent weights cost more; magnitude pruning during training."),
    new_code_cell("""moduli_pipe = Pipeline([("scale", SequenceScaler()),
                        ("prune", ModuliRegularizer(net, moduli="torus", target_sparsity=0.8,
                                                    random_state=0))]).fit(X_train, y_train)
regularizer = moduli_pipe[-1]
print("test accuracy", round(moduli_pipe.score(X_test, y_test), 4),
      "sparsity", round(regularizer.sparsity_["overall"], 3))"""),
    new_markdown_cell("## 4. Grid search: sparsity x method\nThe method is a pipeline step, so one grid compares both sparsifiers and the magnitude baseline."),
    new_code_cell("""small = RNNClassifier(cell="lstm", hidden_size=16, max_epochs=8, lr=0.01,
                       random_state=0)
pipe = Pipeline([("scale", SequenceScaler()), ("prune", LatticePruner(small))])
sparsities = [0.5, 0.9]
grid = [
    {"prune": [LatticePruner(small, n_rounds=2, random_state=0)], "prune__sparsity": sparsities,
     "prune__strategy": ["lattice", "magnitude"]},
    {"prune": [ModuliRegularizer(small, moduli="torus", random_state=0)],
     "prune__target_sparsity": sparsities},
]
search = GridSearchCV(pipe, grid, cv=StratifiedKFold(2)).fit(X_train, y_train)
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    method = type(params["prune"]).__name__ + ":" + params.get("prune__strategy", "torus")
    level = params.get("prune__sparsity", params.get("prune__target_sparsity"))
    print(f"{method:25s} sparsity {level}: {score:.3f}")"""),
    new_code_cell("""plotting.plot_sparsity_curves(search);"""),
    new_markdown_cell("## 5. Inside the lattice\nConnectivity before and after pruning (neurons ordered by lattice role), and the Hasse diagram of the backbone poset with the meet-irreducible neurons marked."),
    new_code_cell("""plotting.plot_connectivity(pruner, order="lattice");"""),
    new_code_cell("""print(pruner.lattice_["n_components"], "components,", len(pruner.lattice_["hasse_edges"]), "cover relations")
plotting.plot_hasse_diagram(pruner);"""),
    new_code_cell("""plotting.plot_moduli_embedding(regularizer);"""),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}})
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                        resources={"metadata": {"path": "examples"}}).execute()
for cell in nb.cells:  # outputs only: no run-dependent metadata in the committed file
    cell.get("metadata", {}).pop("execution", None)
nbformat.write(nb, "examples/walkthrough.ipynb")
