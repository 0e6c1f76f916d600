"""LatticePruner on MNIST rows (LSTM-128): structure per backbone, and accuracy vs sparsity.

Usage::

    python benchmarks/lattice_mnist.py [--data ../shared/data/mnist-10k] [--quick]

Part 1 (defaults by measurement): meet-irreducible neurons and strongly connected components of
the dense net's backbone at each quantile q (docs/methods/lattice.md section 6), and one-shot accuracy of the
lattice rule at sparsity 0.5 and 0.8 for each backbone.
Part 2 (the product's claim): test accuracy for strategy x adjacency x sparsity, one-shot
(n_rounds=1, no fine-tuning) and iterative (n_rounds=5, one epoch of fine-tuning per round),
beside the dense net, and the sparsity that ``sparsity=None`` chooses.
Every pruned model starts from the same dense net (``prefit=True``). The output file starts with
the command that produced it.
"""

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latticeprune import LatticePruner, RNNClassifier
from latticeprune import lattice
from latticeprune.utils import format_table
from latticeprune.datasets import load_mnist
from latticeprune.neuron_graph import NeuronGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def dense_net(X_train, y_train, cache, hidden_size, epochs):
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    start = time.perf_counter()
    net = RNNClassifier(cell="lstm", hidden_size=hidden_size, max_epochs=epochs,
                        random_state=0, n_threads=None, **SETTINGS_0_1).fit(X_train, y_train)
    print(f"dense fit {time.perf_counter() - start:.0f} s", flush=True)
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(pickle.dumps(net))
    return net


def structure_table(net, X_train, y_train, X_test, y_test, log):
    strength = NeuronGraph(net).strength_matrix()
    rows = []
    for q in [0.5, 0.8, 0.9, 0.95, 0.98, 0.99]:
        A = lattice.binary_adjacency(strength, q)
        row = {"backbone q": q, "density": f"{A.mean():.3f}",
               "meet-irr. context": f"{lattice.meet_irreducible(A).sum()}/{len(A)}",
               "meet-irr. reach.": f"{lattice.meet_irreducible(A, order='reachability').sum()}"
                                   f"/{len(A)}",
               "SCCs": lattice.hasse_diagram(A).n_components}
        for s in (0.5, 0.8):
            p = LatticePruner(net, prefit=True, sparsity=s, backbone=q, n_rounds=1,
                              fine_tune_epochs=0, random_state=0).fit(X_train, y_train)
            row[f"one-shot acc @{s}"] = f"{p.score(X_test, y_test):.4f}"
        rows.append(row)
        log(row)
    return rows


def accuracy_table(net, X_train, y_train, X_test, y_test, sparsities, log):
    configs = [("lattice", "binary"), ("lattice", "continuous"), ("magnitude", "-"),
               ("random", "-")]
    rows = []
    for strategy, adjacency in configs:
        for s in sparsities:
            row = {"strategy": strategy, "adjacency": adjacency, "sparsity": s}
            for label, rounds, epochs in [("one-shot", 1, 0), ("5 rounds + 1 ep", 5, 1)]:
                start = time.perf_counter()
                p = LatticePruner(net, prefit=True, sparsity=s, strategy=strategy,
                                  adjacency="binary" if adjacency == "-" else adjacency,
                                  n_rounds=rounds, fine_tune_epochs=epochs,
                                  random_state=0).fit(X_train, y_train)
                row[label] = f"{p.score(X_test, y_test):.4f}"
                row[f"{label} s"] = f"{time.perf_counter() - start:.0f}"
                row["achieved"] = f"{p.sparsity_['overall']:.4f}"
            rows.append(row)
            log(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="sparsities 0.5 and 0.9 only")
    parser.add_argument("--structure-only", action="store_true", help="part 1 only")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "lattice_mnist.txt"))
    args = parser.parse_args(argv)
    X_train, X_test, y_train, y_test = load_mnist(args.data, return_X_y=True)
    cache = ROOT / "benchmarks" / ".cache" / f"mnist_lstm{args.hidden_size}_e{args.epochs}_threads-default.pkl"
    net = dense_net(X_train, y_train, cache, args.hidden_size, args.epochs)
    dense = net.score(X_test, y_test)
    print(f"dense test accuracy {dense:.4f}", flush=True)
    log = lambda row: print(row, flush=True)  # noqa: E731
    structure = structure_table(net, X_train, y_train, X_test, y_test, log)
    if args.structure_only:
        print(format_table(structure, list(structure[0])))
        return 0
    sparsities = [0.5, 0.9] if args.quick else [0.5, 0.8, 0.9, 0.95]
    accuracy = accuracy_table(net, X_train, y_train, X_test, y_test, sparsities, log)
    auto = LatticePruner(net, prefit=True, sparsity=None, n_rounds=1, fine_tune_epochs=0,
                         random_state=0).fit(X_train, y_train)
    auto_line = (f"sparsity=None (centrality_quantile=0.5, backbone={auto.backbone}, one round, "
                 f"no fine-tuning): chose sparsity {auto.sparsity_['overall']:.4f}, "
                 f"test accuracy {auto.score(X_test, y_test):.4f}")
    print(auto_line)
    command = "python benchmarks/lattice_mnist.py" + ("" if argv is None else " " +
                                                      " ".join(argv))
    if argv is None and len(sys.argv) > 1:
        command = "python benchmarks/lattice_mnist.py " + " ".join(sys.argv[1:])
    text = "\n".join([
        f"# command: {command}",
        f"# data: {args.data} ({len(X_train)} train / {len(X_test)} test), rows as steps",
        f"# dense LSTM-{args.hidden_size}, {args.epochs} epochs, random_state=0: test accuracy "
        f"{dense:.4f}; torch {torch.__version__}, {torch.get_num_threads()} threads",
        "", "## Backbone structure of the dense net and one-shot lattice accuracy",
        format_table(structure, list(structure[0])), "",
        "## Test accuracy by strategy, adjacency and sparsity (recurrent scope)",
        format_table(accuracy, list(accuracy[0])), "", auto_line, ""])
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
