"""The zoo of user modules (tests/user_nets.py) through Torch-Pruning and through latticeprune,
and a one-layer LSTM on MNIST rows pruned by both at equal units removed.

Usage::

    pip install torch-pruning   # the "benchmarks" extra: pip install -e ".[benchmarks]"
    python benchmarks/torch_pruning_zoo.py [--data ../shared/data/mnist-10k] [--seeds 5]

Part 1, what each accepts: every zoo module, asked to remove half of every recurrent layer's
hidden units. Torch-Pruning: ``MagnitudePruner`` (L2 ``MagnitudeImportance``, its dependency
graph traced from the module on an example input, ``pruning_ratio=0.5``, the classifier's
last ``Linear`` ignored, as its documentation does for a classifier head); the row says
whether it raised, and how many hidden units each recurrent layer has after ``step()``.
latticeprune: ``LatticePruner(granularity="unit", strategy="magnitude", sparsity=0.5)``
on the same module in a plain skorch ``NeuralNetClassifier``.

Part 2, on the one module both accept with its units pruned (a one-layer LSTM-128 read at its
last step by a ``Linear``; rows of MNIST as steps): per initialisation, a dense net trained
``--epochs`` epochs; from it, half the units removed by Torch-Pruning (L2 magnitude of each
unit's group: gate rows, recurrent and read-out columns), by latticeprune's magnitude ranker
and by its lattice ranker (one round each, same share), each then fine-tuned ``--tune``
epochs; beside them the dense net trained for ``--epochs + --tune`` epochs (the same total).
Accuracy on the test split over ``--seeds`` initialisations (mean, sd, wins against the
magnitude rows); latency of the pruned modules at batch 1 and 256 (100 steps, one thread,
interleaved, medians).
"""

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skorch import NeuralNetClassifier
from threadpoolctl import threadpool_limits
from torch import nn

from latticeprune import LatticePruner
from latticeprune.datasets import load_mnist
from latticeprune.utils import format_table, torch_threads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_speed import interleaved_times, median_ratio  # noqa: E402
from user_nets import ZOO, N_CLASSES, Packed, TokenLSTM, zoo_data  # noqa: E402


def _first_line(error):
    lines = str(error).splitlines()
    return lines[0][:60] if lines else "(no message)"


def recurrent_sizes(module):
    return [m.hidden_size for m in module.modules() if isinstance(m, nn.RNNBase)]


def torch_pruning_on(module_class):
    """What Torch-Pruning makes of the module: its recurrent sizes after a 50% step, or the
    error it raised."""
    import torch_pruning as tp
    torch.manual_seed(0)
    module = module_class().eval()
    X, _ = zoo_data(module_class, n=2)
    example = ((torch.as_tensor(X["x"]), torch.as_tensor(X["lengths"]))
               if module_class is Packed else torch.as_tensor(X))
    head = [m for m in module.modules() if isinstance(m, nn.Linear)
            and m.out_features == N_CLASSES]
    before = recurrent_sizes(module)
    try:
        pruner = tp.pruner.MagnitudePruner(module, example, importance=tp.importance.
                                           MagnitudeImportance(p=2), pruning_ratio=0.5,
                                           ignored_layers=head)
        pruner.step()
        module(*example) if isinstance(example, tuple) else module(example)
    except Exception as error:  # what a user would see
        return before, f"raises {type(error).__name__}: {_first_line(error)}"
    after = recurrent_sizes(module)
    return before, ("units removed: " if after != before else "runs, units untouched: ") + \
        f"{before} -> {after}"


def latticeprune_on(module_class):
    X, y = zoo_data(module_class)
    torch.manual_seed(0)
    net = NeuralNetClassifier(module_class, criterion=nn.CrossEntropyLoss, max_epochs=1,
                              train_split=None, lr=0.05, optimizer=torch.optim.Adam, verbose=0)
    try:
        pruner = LatticePruner(net, granularity="unit", strategy="magnitude", sparsity=0.5,
                               n_rounds=1, fine_tune_epochs=0, random_state=0).fit(X, y)
    except Exception as error:
        return f"raises {type(error).__name__}: {_first_line(error)}"
    before = recurrent_sizes(module_class())
    return f"units removed: {before} -> {recurrent_sizes(pruner.net_.module_)}"


class MnistLSTM(nn.Module):
    """A user's one-layer LSTM classifier of MNIST rows."""

    def __init__(self, hidden=128):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


def classifier(epochs, seed):
    torch.manual_seed(seed)
    return NeuralNetClassifier(MnistLSTM, criterion=nn.CrossEntropyLoss, max_epochs=epochs,
                               lr=0.003, batch_size=64, train_split=None,
                               optimizer=torch.optim.Adam, iterator_train__shuffle=True,
                               verbose=0)


def torch_pruning_half(net, X):
    """A copy of the fitted net with half its LSTM units removed by Torch-Pruning."""
    import torch_pruning as tp
    pruned = copy.deepcopy(net)
    module = pruned.module_
    pruner = tp.pruner.MagnitudePruner(module, torch.as_tensor(X[:2]),
                                       importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=0.5, ignored_layers=[module.fc])
    pruner.step()
    pruned.initialize_optimizer()
    return pruned


def part_two(args):
    X_train, X_test, y_train, y_test = load_mnist(args.data, return_X_y=True)
    X_train, y_train = X_train[:args.samples], y_train[:args.samples]
    rows, forms, failures = {}, {}, {}
    for seed in range(args.seeds):
        start = time.perf_counter()
        with torch_threads(1):
            dense = classifier(args.epochs, seed).fit(X_train, y_train)
            longer = classifier(args.epochs + args.tune, seed).fit(X_train, y_train)
            results = {"dense (same total epochs)": longer}
            try:
                tp_net = torch_pruning_half(dense, X_train)
                tp_net.partial_fit(X_train, y_train, epochs=args.tune)
                results["Torch-Pruning, L2 magnitude"] = tp_net
            except Exception as error:  # reported below the table
                failures["Torch-Pruning, L2 magnitude"] = (
                    f"raises {type(error).__name__}: {_first_line(error)}")
            for strategy in ("magnitude", "lattice"):
                results[f"latticeprune, {strategy}"] = LatticePruner(
                    dense, prefit=True, granularity="unit", strategy=strategy, sparsity=0.5,
                    n_rounds=1, fine_tune_epochs=args.tune, random_state=seed).fit(
                    X_train, y_train)
            for name, model in results.items():
                rows.setdefault(name, []).append(float(model.score(X_test, y_test)))
                if seed == 0:
                    module = model.net_.module_ if hasattr(model, "net_") else model.module_
                    forms[name] = module.eval()
            if seed == 0:
                forms["dense"] = dense.module_.eval()
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in rows.items())
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    forms["dense"] = forms.pop("dense")  # the reference, timed with the others
    timed = {}
    for batch in (1, 256):
        x = torch.randn(batch, 100, 28)
        with torch.inference_mode(), torch_threads(1), threadpool_limits(1):
            times = interleaved_times({k: (lambda m=m: m(x)) for k, m in forms.items()},
                                      args.repeats)
        timed[batch] = {k: (float(np.median(t)) * 1e3, median_ratio(times, "dense", k))
                        for k, t in times.items()}
    reference = np.array(rows["latticeprune, magnitude"])
    table = []
    for name, scores in rows.items():
        scores = np.array(scores)
        diff = scores - reference
        table.append({
            "model": name, "hidden": recurrent_sizes(forms[name])[0],
            "accuracy": f"{scores.mean():.4f} +- {scores.std(ddof=1) if len(scores) > 1 else 0:.4f}",
            "vs latticeprune magnitude": ("-" if name == "latticeprune, magnitude" else
                                          f"{diff.mean():+.4f}, wins {int((diff > 0).sum())}/"
                                          f"{len(diff)}, ties {int((diff == 0).sum())}"),
            "batch 1 ms": f"{timed[1][name][0]:.2f}", "batch 256 ms": f"{timed[256][name][0]:.1f}"})
    return table, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="dense training epochs")
    parser.add_argument("--tune", type=int, default=1, help="fine-tuning epochs after pruning")
    parser.add_argument("--samples", type=int, default=8000, help="training samples")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from importlib.metadata import version
    print(f"# python benchmarks/torch_pruning_zoo.py {' '.join(argv or sys.argv[1:])}")
    print(f"# torch {torch.__version__}, torch-pruning {version('torch-pruning')}")
    print("\n## What each accepts: half the hidden units of every recurrent layer\n")
    accepts = []
    for module_class in ZOO:
        before, theirs = torch_pruning_on(module_class)
        accepts.append({"module": module_class.__name__, "Torch-Pruning": theirs,
                        "latticeprune": latticeprune_on(module_class)})
    print(format_table(accepts, ["module", "Torch-Pruning", "latticeprune"]))
    print(f"\n## MNIST rows, one-layer LSTM-128, 50% of units removed ({args.seeds} "
          f"initialisations, {args.samples} training samples, {args.epochs} + {args.tune} "
          "epochs)\n", flush=True)
    table, failures = part_two(args)
    print(format_table(table, ["model", "hidden", "accuracy", "vs latticeprune magnitude",
                               "batch 1 ms", "batch 256 ms"]))
    for name, what in failures.items():
        print(f"{name}: {what} (every initialisation)")


if __name__ == "__main__":
    main()
