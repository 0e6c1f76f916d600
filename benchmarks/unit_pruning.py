"""Unit pruning on MNIST rows: accuracy against latency and parameters, by granularity and ranker.

Usage::

    python benchmarks/unit_pruning.py [--data ../shared/data/mnist-10k] [--quick]

Nets: LSTM-128 and the two-layer top-down net (2 x 128 LSTM, ``top_down=True``), rows as steps.
Every pruned model starts from a fitted dense net (``prefit=True``) and is pruned in
``--rounds`` rounds with one epoch of fine-tuning each (``n_threads=1`` throughout). Rows:

- ``unit``: ``granularity="unit"``, lattice / magnitude / random at 25, 50, 75, 87.5% of units
  removed (the result is an ordinary smaller ``RecurrentNet``, timed as it is);
- ``weight``: entry-level magnitude at 0.5 / 0.8 / 0.9 / 0.95, timed as ``to_inference()``;
- ``connection``: connection-level lattice and magnitude at 0.5 / 0.8 / 0.9, timed as
  ``to_inference()``;
- the dense net.

Seeds: every row on three dense initialisations (``--seeds``), each pruned with its own
``random_state``; accuracy is their mean, the ``per init`` column lists them. Parameters: non-zero entries
of all the model's tensors. Latency: the initialisation-0 models, 100 steps of random input at
batch 1 and 256, one thread, every form interleaved in one loop; medians. Last section: an
LSTM-1024 with random weights against the same net with 50% and 75% of its units removed.
Per-configuration results are cached (``--cache``), so a stopped run resumes.
"""

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from latticeprune import LatticePruner, RNNClassifier
from latticeprune.datasets import load_mnist
from latticeprune.nets import RecurrentNet
from latticeprune.units import remove_units
from latticeprune.utils import format_table, torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SETTINGS_0_1  # noqa: E402
from inference_speed import interleaved_times, median_ratio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NETS = {"LSTM-128": dict(hidden_size=128), "top-down 2x128": dict(hidden_size=128, num_layers=2,
                                                                  top_down=True)}
UNIT_FRACTIONS = (0.25, 0.5, 0.75, 0.875)
WEIGHT_SPARSITIES = (0.5, 0.8, 0.9, 0.95)
CONNECTION_SPARSITIES = (0.5, 0.8, 0.9)
STEPS = 100


def configurations(quick=False):
    """``(granularity, strategy, target)`` of every row, the dense net first."""
    rows = [("dense", "-", 0.0)]
    rows += [("unit", s, f) for f in (UNIT_FRACTIONS[1:3] if quick else UNIT_FRACTIONS)
             for s in ("lattice", "magnitude", "random")]
    rows += [("weight", "magnitude", s) for s in (WEIGHT_SPARSITIES[1:2] if quick
                                                  else WEIGHT_SPARSITIES)]
    rows += [("connection", s, t) for t in (CONNECTION_SPARSITIES[1:2] if quick
                                            else CONNECTION_SPARSITIES)
             for s in ("lattice", "magnitude")]
    return rows


def key_of(net_name, config, seed):
    return f"{net_name}|{config[0]}|{config[1]}|{config[2]}|{seed}"


class Cache:
    """One JSON file of results per configuration and seed, plus pickles of seed-0 models."""

    def __init__(self, directory, settings):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.file = self.directory / "results.json"
        stored = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.results = stored.get("results", {}) if stored.get("settings") == settings else {}
        self.settings = settings

    def save(self):
        self.file.write_text(json.dumps({"settings": self.settings, "results": self.results},
                                        indent=1))

    def model_path(self, key):
        return self.directory / (key.replace("|", "_").replace(" ", "") + ".pkl")


def dense_net(net_name, seed, data, cache, epochs):
    path = cache.model_path(f"{net_name}|dense|{seed}")
    if path.exists():
        return pickle.loads(path.read_bytes())
    X_train, _, y_train, _ = data
    start = time.perf_counter()
    net = RNNClassifier(cell="lstm", max_epochs=epochs, random_state=seed, n_threads=1,
                        **SETTINGS_0_1, **NETS[net_name]).fit(X_train, y_train)
    print(f"{net_name} dense seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    path.write_bytes(pickle.dumps(net))
    return net


def n_params(estimator):
    """Non-zero entries of every tensor, masked weights (``*_orig * *_mask``) as they act."""
    module = estimator.net_.module_ if hasattr(estimator, "net_") else estimator.module_
    state = module.state_dict()
    return int(sum(int(((value * state[name[:-5] + "_mask"]) if name.endswith("_orig")
                        else value).count_nonzero())
                   for name, value in state.items() if not name.endswith("_mask")))


def run_one(net_name, config, seed, data, cache, args):
    key = key_of(net_name, config, seed)
    if key in cache.results:
        return cache.results[key]
    X_train, X_test, y_train, y_test = data
    dense = dense_net(net_name, seed, data, cache, args.epochs)
    granularity, strategy, target = config
    start = time.perf_counter()
    if granularity == "dense":
        model = dense
    else:
        model = LatticePruner(dense, prefit=True, sparsity=target, strategy=strategy,
                              granularity=granularity, n_rounds=args.rounds, fine_tune_epochs=1,
                              random_state=seed).fit(X_train, y_train)
    with torch_threads(1):
        accuracy = float(model.score(X_test, y_test))
    result = {"accuracy": accuracy, "params": n_params(model),
              "seconds": round(time.perf_counter() - start, 1)}
    if granularity == "unit":
        result["hidden_sizes"] = model.sparsity_["hidden_sizes"]
    if seed == 0 and granularity != "dense":
        cache.model_path(key).write_bytes(pickle.dumps(model))
    print(f"{key}: {result}", flush=True)
    cache.results[key] = result
    cache.save()
    return result


def timing_forms(net_name, configs, cache):
    """``{label: torch module}`` of the initialisation-0 models, as they would be deployed."""
    forms = {}
    for config in configs:
        key = key_of(net_name, config, 0)
        if config[0] == "dense":
            forms[config] = cache_dense_module(net_name, cache)
            continue
        model = pickle.loads(cache.model_path(key).read_bytes())
        forms[config] = (model.net_.module_ if config[0] == "unit"
                         else model.to_inference().module_).eval()
    return forms


def cache_dense_module(net_name, cache):
    path = cache.model_path(f"{net_name}|dense|0")
    return pickle.loads(path.read_bytes()).module_.eval()


def latencies(forms, batch, repeats, features=28):
    x = torch.randn(batch, STEPS, features)
    with torch.inference_mode(), torch_threads(1), threadpool_limits(1):
        times = interleaved_times({c: (lambda m=m: m(x)) for c, m in forms.items()}, repeats)
    dense = [c for c in forms if c[0] == "dense"][0]
    return {c: (float(np.median(t)) * 1e3, median_ratio(times, dense, c))
            for c, t in times.items()}


def speed_check(repeats):
    """LSTM-1024 (random weights) against 50% and 75% of its units removed, batch 1."""
    torch.manual_seed(0)
    full = RecurrentNet(32, 10, hidden_size=1024).eval()
    forms = {("dense", "-", 0.0): full}
    for fraction in (0.5, 0.75):
        keep = [np.arange(int(1024 * (1 - fraction)))]
        forms[("unit", "first units", fraction)] = remove_units(full, keep).eval()
    timed = latencies(forms, 1, repeats, features=32)
    return [{"net": "LSTM-1024", "units removed": f"{c[2]:.0%}",
             "hidden": forms[c].readout.in_features, "batch 1 ms": f"{ms:.2f}",
             "speed-up": f"{ratio:.2f}x"} for c, (ms, ratio) in timed.items()]


def label(config):
    granularity, strategy, target = config
    if granularity == "dense":
        return "dense"
    what = "units" if granularity == "unit" else "sparsity"
    return f"{granularity} {strategy} ({what} {target:g})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist-10k"))
    parser.add_argument("--epochs", type=int, default=10, help="dense training epochs")
    parser.add_argument("--rounds", type=int, default=3, help="pruning rounds (1 epoch each)")
    parser.add_argument("--seeds", type=int, default=3, help="dense initialisations at most")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats")
    parser.add_argument("--quick", action="store_true", help="a small smoke run on 1000 samples")
    parser.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" /
                                               "unit_pruning"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" /
                                                "unit_pruning.txt"))
    args = parser.parse_args(argv)
    data = load_mnist(args.data, return_X_y=True)
    if args.quick:
        data = (data[0][:600], data[1][:300], data[2][:600], data[3][:300])
        args.epochs, args.repeats, args.seeds = 1, 3, 2
        args.cache += "-quick"
        args.output = str(Path(args.output).with_suffix(".quick.txt"))
    settings = {"epochs": args.epochs, "rounds": args.rounds, "quick": args.quick,
                "n_train": len(data[0])}
    cache = Cache(args.cache, settings)
    configs = configurations(args.quick)
    for seed in range(args.seeds):
        for net_name in NETS:
            for config in configs:
                run_one(net_name, config, seed, data, cache, args)

    lines = [f"# command: python benchmarks/unit_pruning.py"
             + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
             f"# data: {args.data} ({len(data[0])} train / {len(data[1])} test), rows as steps",
             f"# dense nets: {args.epochs} epochs; pruning: {args.rounds} rounds x 1 epoch of "
             f"fine-tuning; n_threads=1; torch {torch.__version__}",
             f"# accuracy: mean over {args.seeds} dense initialisations; params: non-zero entries; "
             f"latency: {STEPS} steps, 1 thread, medians of {args.repeats} interleaved repeats, "
             "initialisation-0 models; speed-up = dense time / time (median of paired ratios)", ""]
    plot_rows = []
    for net_name in NETS:
        forms = timing_forms(net_name, configs, cache)
        timed = {batch: latencies(forms, batch, args.repeats) for batch in (1, 256)}
        rows = []
        for config in configs:
            runs = [cache.results[key_of(net_name, config, s)] for s in range(args.seeds)]
            acc = [r["accuracy"] for r in runs]
            row = {"granularity": config[0], "ranker": config[1],
                   "target": "-" if config[0] == "dense" else f"{config[2]:g}",
                   "accuracy %": f"{100 * np.mean(acc):.2f}",
                   "per init": " / ".join(f"{100 * a:.1f}" for a in acc),
                   "hidden": str(runs[0].get("hidden_sizes", "")) or "-",
                   "params": runs[0]["params"]}
            for batch in (1, 256):
                ms, ratio = timed[batch][config]
                row[f"b{batch} ms"] = f"{ms:.2f}" if batch == 1 else f"{ms:.1f}"
                row[f"b{batch} x"] = f"{ratio:.2f}"
            rows.append(row)
            plot_rows.append((net_name, config, 100 * np.mean(acc), timed[1][config][0],
                              timed[256][config][0]))
        lines += [f"## {net_name}", "", format_table(rows, list(rows[0])), ""]
    lines += ["## LSTM-1024 speed check (random weights, batch 1)", "",
              format_table(*(lambda r: (r, list(r[0])))(speed_check(args.repeats))), ""]
    text = "\n".join(lines)
    print(text)
    Path(args.output).write_text(text + "\n")
    plot(plot_rows, Path(args.output).with_name(Path(args.output).stem + "_pareto.png"))


def plot(rows, path):
    """Accuracy against latency (batch 1, batch 256), one panel per net and batch, one curve
    per method; unit points are labelled with the fraction of units removed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    nets = list(dict.fromkeys(r[0] for r in rows))
    fig, axes = plt.subplots(len(nets), 2, figsize=(13, 5 * len(nets)), squeeze=False)
    styles = {("unit", "lattice"): ("C0", "o-"), ("unit", "magnitude"): ("C1", "s-"),
              ("unit", "random"): ("C2", "^-"), ("weight", "magnitude"): ("C3", "D--"),
              ("connection", "lattice"): ("C4", "v:"), ("connection", "magnitude"): ("C5", "P:")}
    for row_axes, net_name in zip(axes, nets):
        mine = [r for r in rows if r[0] == net_name]
        for ax, column, batch in zip(row_axes, (3, 4), (1, 256)):
            for (granularity, strategy), (colour, style) in styles.items():
                points = sorted((r[column], r[2], r[1][2]) for r in mine
                                if r[1][:2] == (granularity, strategy))
                if not points:
                    continue
                targets = sorted(p[2] for p in points)
                what = ("units removed" if granularity == "unit" else "sparsity") + \
                    f" {targets[0]:g}-{targets[-1]:g}"
                ax.plot([p[0] for p in points], [p[1] for p in points], style, color=colour,
                        label=f"{granularity} {strategy} ({what})")
                for ms, acc, target in points if granularity == "unit" else ():
                    ax.annotate(f"{target:g}", (ms, acc), fontsize=7, xytext=(3, 3),
                                textcoords="offset points", color=colour)
            dense = [r for r in mine if r[1][0] == "dense"][0]
            ax.plot([dense[column]], [dense[2]], "k*", markersize=14, label="dense")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(ScalarFormatter())
            ax.tick_params(axis="x", which="both", labelsize=7)
            ax.set_ylim(max(min(r[2] for r in mine) - 1, 0), 100)
            ax.set_xlabel(f"latency at batch {batch}, 100 steps, 1 thread (ms, log scale)")
            ax.set_ylabel("test accuracy (%), mean of 3 initialisations")
            ax.set_title(f"{net_name}, MNIST rows: accuracy vs batch-{batch} latency")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
