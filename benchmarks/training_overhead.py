"""Training cost of sparsification on the MNIST LSTM-128 set-up (rows as steps).

Usage::

    python benchmarks/training_overhead.py [--mnist ../shared/data/mnist-10k] [--epochs 8]
                                           [--threads 1] [--output FILE]

Part 1, epoch time: four ``RNNClassifier(cell="lstm", hidden_size=128)`` nets on the 8000
training sequences, trained one epoch at a time in turn (round robin, so a change in the load
of the shared machine hits all of them alike):

* ``plain``: no callback;
* ``moduli penalty``: :class:`~latticeprune.callbacks.ModuliPenalty` (defaults: torus, DoG,
  strength 1e-3), whose penalty gradient is back-propagated after every batch;
* ``pruning schedule``: :class:`~latticeprune.callbacks.GradualMagnitudePruning` (target 0.9,
  a pruning step at the end of every epoch);
* ``penalty + schedule``: both, the moduli training recipe.

The wall time of each ``partial_fit(epochs=1)`` is one sample; the overhead is
``median(config) / median(plain) - 1`` (target: under 10 %).

Part 2, lattice analysis: on the trained plain net, the calls
:class:`~latticeprune.LatticePruner` makes in one round (strength matrix, backbone, verdict,
centrality, Hasse diagram, irreducible counts over the filtration; with
``adjacency="continuous"`` also the persistence), and a whole one-shot
``LatticePruner(prefit=True, n_rounds=1, fine_tune_epochs=0).fit``, relative to one plain
training epoch.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latticeprune import LatticePruner, RNNClassifier, lattice
from latticeprune.utils import format_table
from latticeprune.datasets import load_mnist
from latticeprune.neuron_graph import HIDDEN_KINDS, NeuronGraph

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_configs(seed):
    from latticeprune.callbacks import GradualMagnitudePruning, ModuliPenalty

    def net(*callbacks):
        return RNNClassifier(cell="lstm", hidden_size=128, random_state=seed, max_epochs=20,
                             callbacks=list(callbacks), **SETTINGS_0_1)

    return {"plain": net(),
            "moduli penalty": net(ModuliPenalty(random_state=seed)),
            "pruning schedule": net(GradualMagnitudePruning(target_sparsity=0.9)),
            "penalty + schedule": net(ModuliPenalty(random_state=seed),
                                      GradualMagnitudePruning(target_sparsity=0.9))}


def epoch_times(configs, X, y, epochs):
    """Seconds per epoch of every config, trained round robin; schedules span ``epochs``."""
    for clf in configs.values():
        clf.set_params(max_epochs=epochs)  # GradualMagnitudePruning reaches its target here
    times = {name: [] for name in configs}
    for epoch in range(epochs):
        names = list(configs) if epoch % 2 == 0 else list(configs)[::-1]
        for name in names:
            start = time.perf_counter()
            configs[name].partial_fit(X, y, epochs=1)
            times[name].append(time.perf_counter() - start)
            print(f"epoch {epoch + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    return times


def lattice_calls(graph, adjacency="binary", backbone=0.95, order="context"):
    """The lattice work of one LatticePruner round (``LatticePruner._analyse``)."""
    strength = graph.strength_matrix(HIDDEN_KINDS)
    binary = lattice.binary_adjacency(strength, backbone)
    lattice.meet_irreducible(binary, order=order)
    levels = lattice.filtration_levels()
    if adjacency == "continuous":
        lattice.irreducibility_persistence(strength, levels, order=order)
    lattice.centrality(strength, kind="pagerank")
    lattice.hasse_diagram(binary)
    for q in sorted(set(levels) | {backbone}):
        lattice.meet_irreducible(lattice.binary_adjacency(strength, q), order=order)


def median_seconds(function, repeats):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--lattice-only", action="store_true",
                        help="skip part 1; time the lattice against one plain epoch")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "training_overhead.txt"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, _, y, _ = load_mnist(args.mnist, return_X_y=True)
    load_start = os.getloadavg()
    started = time.perf_counter()
    sections = []
    if args.lattice_only:
        trained = RNNClassifier(cell="lstm", hidden_size=128, random_state=0, max_epochs=1,
                                **SETTINGS_0_1)
        start = time.perf_counter()
        trained.fit(X, y)
        plain_epoch = time.perf_counter() - start
    else:
        configs = make_configs(seed=0)
        times = epoch_times(configs, X, y, args.epochs)
        plain_epoch = float(np.median(times["plain"]))
        rows = []
        for name, samples in times.items():
            history = configs[name].history[-1]
            rows.append({"config": name, "epochs": len(samples),
                         "median epoch s": f"{np.median(samples):.2f}",
                         "min / max s": f"{min(samples):.2f} / {max(samples):.2f}",
                         "overhead vs plain": f"{np.median(samples) / plain_epoch - 1:+.1%}",
                         "final sparsity": f"{history['sparsity']:.2f}"
                         if "sparsity" in history else "-",
                         "penalty (last epoch)": f"{history['moduli_penalty']:.4g}"
                         if "moduli_penalty" in history else "-",
                         "train loss": f"{history['train_loss']:.3f}"})
        sections.append((f"1. epoch time, MNIST-10k LSTM-128, {len(X)} training sequences of "
                         f"{X.shape[1]} steps x {X.shape[2]} features, batch 64, round robin "
                         f"over {args.epochs} epochs", rows))
        trained = configs["plain"]
    graph = NeuronGraph(trained.module_)
    rows = []
    for adjacency in ("binary", "continuous"):
        seconds = median_seconds(lambda: lattice_calls(graph, adjacency), repeats=5)
        rows.append({"lattice work": f"one round of analysis, adjacency={adjacency!r}",
                     "median s": f"{seconds:.3f}",
                     "fraction of a plain epoch": f"{seconds / plain_epoch:.2%}"})
    for adjacency in ("binary", "continuous"):
        pruner = LatticePruner(trained, prefit=True, sparsity=0.5, adjacency=adjacency,
                               n_rounds=1, fine_tune_epochs=0, random_state=0)
        seconds = median_seconds(lambda: pruner.fit(X, y), repeats=3)
        rows.append({"lattice work": f"LatticePruner one-shot fit (copy, analysis, masks), "
                                     f"adjacency={adjacency!r}",
                     "median s": f"{seconds:.3f}",
                     "fraction of a plain epoch": f"{seconds / plain_epoch:.2%}"})
    sections.append((f"2. lattice analysis of the trained LSTM-128 (128 neurons) against one "
                     f"plain epoch ({plain_epoch:.1f} s)", rows))
    load_end = os.getloadavg()
    command = "python benchmarks/training_overhead.py" + (
        " --lattice-only" if args.lattice_only else "") + (
        f" --epochs {args.epochs}" if args.epochs != 8 else "") + (
        f" --threads {args.threads}" if args.threads != 1 else "")
    header = (f"# command: {command}\n"
              f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
              f", {torch.get_num_threads()} torch thread(s); wall time "
              f"{time.perf_counter() - started:.0f} s\n"
              f"# load average (1/5/15 min) at start {load_start[0]:.2f}/{load_start[1]:.2f}/"
              f"{load_start[2]:.2f}, at end {load_end[0]:.2f}/{load_end[1]:.2f}/"
              f"{load_end[2]:.2f} on a shared machine\n")
    text = header + "".join(f"\n## {title}\n{format_table(rows, list(rows[0]))}\n"
                            for title, rows in sections)
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
