"""Accuracy of moduli-regularised, magnitude-pruned recurrent nets: spaces against controls.

Regenerate the committed tables (from the repository root; each run writes
``benchmarks/results/moduli_sparsity_<dataset>.txt``, which starts with the command):

    python benchmarks/moduli_sparsity.py --dataset digits
    python benchmarks/moduli_sparsity.py --dataset mnist
    python benchmarks/moduli_sparsity.py --dataset adding
    python benchmarks/moduli_sparsity.py --dataset strength

``--quick`` runs a tiny version of the same code (a smoke test; prints, writes nothing).

``--recovery-epochs N`` keeps each dataset's epochs but ends the pruning schedule N epochs
before the last (default: the dataset's ``recovery``, 5 / 2 / 10 for digits / MNIST / adding);
``0`` prunes until the last epoch, with no recovery. A value other than the default writes
``moduli_sparsity_<dataset>_recovery<N>.txt`` (``strength`` already tables both regimes)::

    python benchmarks/moduli_sparsity.py --dataset digits --recovery-epochs 0

Variants (all through :class:`latticeprune.ModuliRegularizer`, inverted DoG inhibitor,
linear schedule, W_hh pruned):

- ``torus``, ``klein``, ``circle``, ``sphere``: the geometric penalty at ``--strength``;
- ``standard (L1)``: every pair weighted 1. Its strength is ``--strength`` times the mean
  entry of the torus/DoG ``R`` at this hidden size, so that the average per-weight penalty
  matches the geometric runs (at the same nominal strength plain L1 would be ~70 times
  weaker);
- ``permuted torus``: the torus ``R`` with its entries shuffled (same multiset, no geometry);
- ``none``: strength 0, gradual magnitude pruning alone.

Classification (digits, MNIST): test accuracy of the pruned net and, beside it, of the
lottery-ticket control (fresh seeded initialisation, same final masks, retrained as long).
Digits: stratified 75/25 split. MNIST: the folder's own train/test split.
Adding problem (T = 50): an Elman net trained dense first, then sparsified to 0.9 by each
variant (``prefit=True``); test MSE against the constant predictor's 1/6.
``strength``: test accuracy on digits at sparsity 0.9 as a function of the strength, the
measurement behind ``ModuliRegularizer``'s default.
"""

import argparse
import copy
import os
import platform
import sys
import time

import numpy as np
import sklearn
import skorch
import torch
from sklearn.model_selection import train_test_split

from latticeprune import ModuliRegularizer, RNNClassifier, RNNRegressor
from latticeprune.datasets import load_digits_sequences, load_mnist, make_adding_problem
from latticeprune.utils import torch_seed
from common import (add_recovery_argument, apply_recovery, log, mean_sd, schedule_phrase, table,
                    variant_params, write_results)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MNIST_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                          "data", "mnist-10k")
CELL_NAMES = {"lstm": "LSTM", "rnn_tanh": "Elman"}
VARIANTS = ("torus", "klein", "circle", "sphere", "standard (L1)", "permuted torus", "none")

# Per-dataset settings: net size and training length, lottery ticket or not.
SETTINGS = {
    "digits": dict(hidden=64, epochs=20, recovery=5, lr=0.01, batch=64, seeds=(0, 1, 2),
                   cells=("lstm", "rnn_tanh"), sparsities=(0.9, 0.98)),
    "mnist": dict(hidden=64, epochs=8, recovery=2, lr=0.01, batch=64, seeds=(0,),
                  cells=("lstm", "rnn_tanh"), sparsities=(0.9, 0.98)),
    "adding": dict(hidden=64, pretrain_epochs=40, epochs=30, recovery=10, lr=0.001, batch=64,
                   seeds=(0, 1),
                   cells=("rnn_tanh",), sparsities=(0.9,), n_steps=50, n_train=10000,
                   n_test=2000),
}
QUICK = dict(hidden=8, pretrain_epochs=2, epochs=3, recovery=1, seeds=(0,), n_train=300,
             n_test=100)
STRENGTHS = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)


# -- data ------------------------------------------------------------------------------------
def load(dataset, quick, mnist_path):
    if dataset in ("digits", "strength"):
        X, y = load_digits_sequences(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                            random_state=0)
    elif dataset == "mnist":
        X_train, X_test, y_train, y_test = load_mnist(mnist_path, return_X_y=True)
    else:
        s = SETTINGS["adding"]
        n_train, n_test = (QUICK["n_train"], QUICK["n_test"]) if quick else (s["n_train"],
                                                                              s["n_test"])
        X_train, y_train = make_adding_problem(n_train, s["n_steps"], random_state=0)
        X_test, y_test = make_adding_problem(n_test, s["n_steps"], random_state=1)
    if quick:
        X_train, y_train = X_train[:QUICK["n_train"]], y_train[:QUICK["n_train"]]
        X_test, y_test = X_test[:QUICK["n_test"]], y_test[:QUICK["n_test"]]
    return X_train, X_test, y_train, y_test


def make_net(dataset, cell, s):
    # Batches in one fixed order, as when the committed tables were made (the estimators
    # shuffle by default since): the regimes compare on the same training. Shuffled, the
    # adding problem's dense Elman stays at the constant solution after its 40 epochs
    # (MSE 0.168 against 0.018 for seed 0).
    kwargs = dict(cell=cell, hidden_size=s["hidden"], max_epochs=s["epochs"], lr=s["lr"],
                  batch_size=s["batch"], iterator_train__shuffle=False, max_grad_norm=None)
    return RNNRegressor(**kwargs) if dataset == "adding" else RNNClassifier(**kwargs)


def test_mse(model, X, y):
    return float(np.mean((model.predict(X) - y) ** 2))


# -- experiments -----------------------------------------------------------------------------
def run_classification(dataset, s, strength, data, out):
    X_train, X_test, y_train, y_test = data
    header = ["variant"]
    for cell in s["cells"]:
        for sparsity in s["sparsities"]:
            header += [f"{CELL_NAMES[cell]} {sparsity:g}", "lottery"]
    results = {}
    dense = {}
    for cell in s["cells"]:
        scores = []
        for seed in s["seeds"]:
            start = time.time()
            net = make_net(dataset, cell, s).set_params(random_state=seed).fit(X_train, y_train)
            scores.append(net.score(X_test, y_test))
            log(f"  dense {cell} seed {seed}: {scores[-1]:.3f} ({time.time() - start:.0f} s)")
        dense[cell] = scores
    for name in VARIANTS:
        for cell in s["cells"]:
            for sparsity in s["sparsities"]:
                pruned, ticket = [], []
                for seed in s["seeds"]:
                    start = time.time()
                    reg = ModuliRegularizer(
                        make_net(dataset, cell, s), target_sparsity=sparsity,
                        recovery_epochs=s["recovery"], lottery_ticket=True, random_state=seed,
                        **variant_params(name, strength, s["hidden"])).fit(X_train, y_train)
                    pruned.append(reg.pruned_estimator_.score(X_test, y_test))
                    ticket.append(reg.score(X_test, y_test))
                    log(f"  {name:15s} {cell:8s} {sparsity:g} seed {seed}: pruned "
                        f"{pruned[-1]:.3f}, lottery {ticket[-1]:.3f}, achieved "
                        f"{reg.sparsity_['overall']:.4f} ({time.time() - start:.0f} s)")
                results[name, cell, sparsity] = (pruned, ticket)
    rows = []
    for name in VARIANTS:
        row = [name]
        for cell in s["cells"]:
            for sparsity in s["sparsities"]:
                pruned, ticket = results[name, cell, sparsity]
                row += [mean_sd(pruned, 3), mean_sd(ticket, 3)]
        rows.append(row)
    seeds = (f"mean ± sd over seeds {list(s['seeds'])}" if len(s["seeds"]) > 1
             else f"seed {s['seeds'][0]}")
    out.append(f"Test accuracy ({seeds}); each sparsity column is the pruned net, 'lottery' "
               "the same masks retrained from a fresh initialisation.\n")
    out.append(table(header, rows))
    out.append("\nDense reference (no penalty, no pruning, same training): " + ", ".join(
        f"{CELL_NAMES[cell]} {mean_sd(scores, 3)}" for cell, scores in dense.items()))


def run_adding(s, strength, data, out):
    X_train, X_test, y_train, y_test = data
    baseline = float(np.mean((1.0 - y_test) ** 2))
    rows, dense, dense_continued = [], [], []
    results = {name: [] for name in VARIANTS}
    for seed in s["seeds"]:
        # Pruned from scratch, an Elman net never learns T=50 (the sparsity rises while it
        # is still at the constant solution), so every variant sparsifies the same dense
        # net, trained first: ModuliRegularizer(prefit=True).
        start = time.time()
        net = make_net("adding", "rnn_tanh", s).set_params(
            max_epochs=s["pretrain_epochs"], random_state=seed).fit(X_train, y_train)
        dense.append(test_mse(net, X_test, y_test))
        log(f"  dense seed {seed}: MSE {dense[-1]:.4f} ({time.time() - start:.0f} s)")
        net.set_params(max_epochs=s["epochs"])
        start = time.time()
        continued = copy.deepcopy(net)
        with torch_seed(seed):
            continued.partial_fit(X_train, y_train, epochs=s["epochs"])
        dense_continued.append(test_mse(continued, X_test, y_test))
        log(f"  dense, {s['epochs']} more epochs, seed {seed}: MSE {dense_continued[-1]:.4f} "
            f"({time.time() - start:.0f} s)")
        for name in VARIANTS:
            start = time.time()
            reg = ModuliRegularizer(net, target_sparsity=0.9, recovery_epochs=s["recovery"],
                                    prefit=True, random_state=seed,
                                    **variant_params(name, strength, s["hidden"]))
            reg.fit(X_train, y_train)
            results[name].append(test_mse(reg, X_test, y_test))
            log(f"  {name:15s} seed {seed}: MSE {results[name][-1]:.4f}, achieved "
                f"{reg.sparsity_['overall']:.4f} ({time.time() - start:.0f} s)")
    for name, mses in results.items():
        rows.append([name, mean_sd(mses, 4), ", ".join(f"{m:.4f}" for m in mses),
                     f"{sum(m < baseline for m in mses)}/{len(mses)}"])
    out.append(f"Each seed: a dense Elman net trained {s['pretrain_epochs']} epochs, then "
               f"sparsified by ModuliRegularizer(prefit=True) over {s['epochs']} more epochs "
               f"({s['epochs'] - s['recovery']} pruning, {s['recovery']} recovery).\n"
               f"Test MSE at sparsity 0.9 (seeds {list(s['seeds'])}); the constant predictor 1 "
               f"scores {baseline:.4f} on this test set (1/6 = 0.1667 in expectation).\n")
    out.append(table(["variant", "MSE mean ± sd", "per seed", "below constant"], rows))
    out.append(f"\nDense nets before sparsification: MSE {mean_sd(dense, 4)} (per seed "
               f"{', '.join(f'{m:.4f}' for m in dense)}); the same dense nets trained "
               f"{s['epochs']} more epochs without penalty or pruning: MSE "
               f"{mean_sd(dense_continued, 4)} (per seed "
               f"{', '.join(f'{m:.4f}' for m in dense_continued)})")


def run_strength(s, data, out, quick):
    X_train, X_test, y_train, y_test = data
    strengths = STRENGTHS[::3] if quick else STRENGTHS
    for recovery in (0, 5) if not quick else (0,):
        header = ["strength"] + [CELL_NAMES[cell] for cell in s["cells"]]
        rows = []
        for strength in strengths if recovery == 0 else (0.0, 1e-2, 0.1, 1.0):
            row = [f"{strength:g}"]
            for cell in s["cells"]:
                scores = []
                for seed in s["seeds"]:
                    reg = ModuliRegularizer(make_net("digits", cell, s), strength=strength,
                                            target_sparsity=0.9, recovery_epochs=recovery,
                                            random_state=seed).fit(X_train, y_train)
                    scores.append(reg.score(X_test, y_test))
                row.append(mean_sd(scores, 3))
                log(f"  recovery {recovery} strength {strength:g} {cell}: {row[-1]}")
            rows.append(row)
        out.append(f"\nrecovery_epochs={recovery} ({s['epochs'] - recovery} pruning epochs), "
                   f"torus / inverted DoG, sparsity 0.9; test accuracy, mean ± sd over seeds "
                   f"{list(s['seeds'])}:\n")
        out.append(table(header, rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True,
                        choices=["digits", "mnist", "adding", "strength"])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, nothing written")
    parser.add_argument("--strength", type=float, default=None,
                        help="penalty strength (default: ModuliRegularizer's default)")
    parser.add_argument("--mnist-path", default=MNIST_PATH)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    add_recovery_argument(parser)
    args = parser.parse_args(argv)
    if args.dataset == "strength" and args.recovery_epochs is not None:
        parser.error("--dataset strength tables recovery_epochs 0 and 5 itself; "
                     "--recovery-epochs goes with digits, mnist or adding")
    torch.set_num_threads(args.threads)
    strength = (ModuliRegularizer(None).strength if args.strength is None else args.strength)
    s = dict(SETTINGS["digits" if args.dataset == "strength" else args.dataset])
    if args.quick:
        s.update({k: v for k, v in QUICK.items() if k in s})
    regime = apply_recovery(parser, args.recovery_epochs, s)
    data = load(args.dataset, args.quick, args.mnist_path)
    command = "python benchmarks/moduli_sparsity.py " + " ".join(argv if argv is not None
                                                                  else sys.argv[1:])
    out = [f"$ {command}", ""]
    out.append(f"Python {platform.python_version()}, torch {torch.__version__}, scikit-learn "
               f"{sklearn.__version__}, skorch {skorch.__version__}, {args.threads} torch "
               f"thread(s), {os.cpu_count()} cores (shared), {platform.machine()}")
    size = (f"{len(data[0])} train / {len(data[1])} test sequences of {data[0].shape[1]} steps "
            f"x {data[0].shape[2]} features")
    out.append(f"Data: {'digits' if args.dataset == 'strength' else args.dataset}, {size}.")
    schedule = ("recovery epochs as stated below" if args.dataset == "strength" else
                f"moduli variants: {schedule_phrase(s['epochs'], s['recovery'])}")
    out.append(f"Nets: hidden {s['hidden']}, {s['epochs']} epochs ({schedule}), Adam lr "
               f"{s['lr']}, batch {s['batch']} in a fixed order (not shuffled, as the committed "
               f"tables); strength {strength:g} unless stated.\n")
    log("\n".join(out))
    start = time.time()
    if args.dataset == "adding":
        run_adding(s, strength, data, out)
    elif args.dataset == "strength":
        run_strength(s, data, out, args.quick)
    else:
        run_classification(args.dataset, s, strength, data, out)
    out.append(f"\nWall time: {(time.time() - start) / 60:.1f} min.")
    text = "\n".join(out) + "\n"
    print(text)
    if not args.quick:
        write_results(os.path.join(RESULTS, f"moduli_sparsity_{args.dataset}{regime}.txt"), text)


if __name__ == "__main__":
    main()
