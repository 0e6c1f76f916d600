"""Unit pruning judged by paired comparisons: which ranker removes hidden units best, against
the unit-norm ranker, group lasso, global allocation, the lattice's own size and a dense net
trained for the same total epochs (issue 25).

Usage::

    python benchmarks/unit_pruning.py --task mnist-lstm [--seeds 0 1 2 3 4]
    python benchmarks/unit_pruning.py --task mnist-top-down
    python benchmarks/unit_pruning.py --task japanese-vowels   # needs aeon (the aeon extra)
    python benchmarks/unit_pruning.py --task lm-elman          # and lm-lstm

Tasks (``TASKS``): MNIST rows (``--data``, 8000 train / 2000 test, 28 steps x 28 features)
with an LSTM-128 and the top-down net (2 x 128 LSTM, ``top_down=True``), 10 dense epochs at
the settings of the earlier tables (Adam 0.01, batch 64, no clipping), pruning in 3 rounds of
one fine-tuning epoch; JapaneseVowels (270 / 370 variable-length sequences, 12 features) with
an LSTM-100 at the package's defaults (150 epochs of batch 16 here), 3 rounds of 5 epochs;
the word language model of ``benchmarks/language_model.py`` (WikiText-2 as this project has
it: trained on valid.txt, tested on test.txt, the 2000 commonest words, embedding and hidden
128, Adam 0.003, batch 32, clipped at 1, 3 epochs), Elman and LSTM, 2 rounds of one epoch.

Every pruned model starts from the seed's fitted dense net (``LatticePruner(prefit=True,
granularity="unit")``, ``random_state`` = the seed). Rows:

- ``dense``: the dense net; ``dense, equal epochs``: the same net trained on for the
  pruning's fine-tuning epochs (the control every pruned row is compared with);
- per fraction of units removed: ``lattice``, ``magnitude`` (the unit-norm ranker),
  ``random``, ``group_lasso`` (the fine-tuning under a group-lasso penalty on each unit's
  weight group, ``lasso_strength`` at its default, then the weakest groups removed); on nets
  with several recurrent layers also ``magnitude, global`` and ``lattice, global``
  (``allocation="global"``);
- ``lattice, sparsity=None``: the lattice chooses how many units each layer keeps.

Columns: the test metric (accuracy %, or perplexity for the language models: lower is
better) mean ± sd over the seeds and each seed's; its difference from the equal-epoch dense
net (mean, and on how many seeds the pruned net is better); the paired comparison with the
``magnitude`` row of the same fraction: per-seed differences (positive: better than
magnitude) as mean ± sd, wins out of the seeds, a two-sided sign test and a paired t test
(``scipy.stats``). The second table puts ``sparsity=None`` (one fit) beside the grid's
smallest net within 1 point (accuracy) or 1 perplexity of the dense net, with the seconds
each took. The MNIST tasks also time the seed-0 models (100 steps of random input, one
thread, batch 1 and 256, medians of interleaved repeats).

Results are cached per task, row and seed under ``benchmarks/results/cache/`` (the dense
nets as pickles), keyed by the settings, the versions and a digest of the data, so a
stopped run resumes and other data is refitted. Writes
``benchmarks/results/unit_pruning_<task>.txt`` and ``unit_pruning_<task>.png``.
"""

import argparse
import copy
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import skorch
import sklearn
import torch
from scipy import stats
from threadpoolctl import threadpool_limits

import latticeprune
from latticeprune import LatticePruner, RNNClassifier
from latticeprune.utils import torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SETTINGS_0_1, command_line, log, mean_sd, read_seed_cache,  # noqa: E402
                    table, write_results, write_seed_cache)
from inference_speed import interleaved_times, median_ratio  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / "results" / "cache"
RANKERS = ("lattice", "magnitude", "random", "group_lasso")
MNIST = dict(data="mnist", metric="accuracy", epochs=10, rounds=3, tune=1,
             fractions=(0.25, 0.5, 0.75, 0.875))
LM = dict(data="wikitext", metric="perplexity", epochs=3, rounds=2, tune=1,
          fractions=(0.5, 0.75))
TASKS = {
    "mnist-lstm": dict(MNIST, net=dict(hidden_size=128, **SETTINGS_0_1)),
    "mnist-top-down": dict(MNIST, net=dict(hidden_size=128, num_layers=2, top_down=True,
                                           **SETTINGS_0_1)),
    "japanese-vowels": dict(data="japanese-vowels", metric="accuracy", epochs="auto", rounds=3,
                            tune=5, fractions=(0.25, 0.5, 0.75, 0.875),
                            net=dict(hidden_size=100)),
    "lm-elman": dict(LM, net=dict(cell="rnn_tanh")),
    "lm-lstm": dict(LM, net=dict(cell="lstm")),
}
LM_NET = dict(embedding_size=128, hidden_size=128, lr=3e-3, batch_size=32, max_grad_norm=1.0)


# -- data and nets ---------------------------------------------------------------------------
def load(task, args):
    """``X_train, y_train, X_test, y_test`` and a description of the task's data."""
    kind = TASKS[task]["data"]
    if kind == "mnist":
        from latticeprune.datasets import load_mnist
        X_train, X_test, y_train, y_test = load_mnist(args.mnist, return_X_y=True)
        return (X_train, y_train, X_test, y_test), (
            f"MNIST rows from {args.mnist}: {len(X_train)} train / {len(X_test)} test, "
            "28 steps x 28 features")
    if kind == "japanese-vowels":
        from latticeprune.datasets import load_uea
        X_train, y_train = load_uea("JapaneseVowels", split="train", data_home=args.uea,
                                    return_X_y=True)
        X_test, y_test = load_uea("JapaneseVowels", split="test", data_home=args.uea,
                                  return_X_y=True)
        return (X_train, y_train, X_test, y_test), (
            f"JapaneseVowels from {args.uea} (aeon's reader): {len(X_train)} train / "
            f"{len(X_test)} test variable-length sequences (7-29 steps) x 12 features")
    from language_model import load_corpus
    from latticeprune.tasks import token_windows
    train, test, size, unk = load_corpus(args.wikitext, 2000, None)
    X_train, y_train = token_windows(train, 35)
    X_test, y_test = token_windows(test, 35)
    return (X_train, y_train, X_test, y_test, size), (
        f"WikiText-2 from {args.wikitext}, trained on valid.txt ({len(train)} tokens), tested "
        f"on test.txt ({len(test)}); the {size} commonest words (<unk>: {unk['test']:.1%} of "
        "test tokens); windows of 35 tokens")


def dense_estimator(task, seed, data):
    """The task's unfitted dense estimator for ``seed``."""
    spec = TASKS[task]
    if spec["data"] == "wikitext":
        from latticeprune.tasks import LanguageModel
        return LanguageModel(vocab_size=data[4], max_epochs=spec["epochs"], random_state=seed,
                             **LM_NET, **spec["net"])
    return RNNClassifier(cell="lstm", max_epochs=spec["epochs"], random_state=seed, n_threads=1,
                         **spec["net"])


def metric(task, model, X, y):
    """Test accuracy (%) or perplexity."""
    with torch_threads(1):
        score = float(model.score(X, y))
    return -score if TASKS[task]["metric"] == "perplexity" else 100 * score


def better(task):
    """+1 if a higher metric is better, -1 for perplexity."""
    return -1 if TASKS[task]["metric"] == "perplexity" else 1


def configurations(task):
    """Row names: the two dense rows, ``<ranker> <fraction>`` (``, global``), the lattice's
    own size."""
    spec = TASKS[task]
    rankers = list(RANKERS)
    if spec["net"].get("num_layers", 1) > 1:
        rankers += ["magnitude, global", "lattice, global"]
    rows = ["dense", "dense, equal epochs"]
    rows += [f"{ranker} {fraction:g}" for fraction in spec["fractions"] for ranker in rankers]
    return rows + ["lattice, sparsity=None"]


def parse(config):
    """``(strategy, allocation, fraction)`` of a pruned row's name (fraction None: the
    lattice's own size)."""
    if config == "lattice, sparsity=None":
        return "lattice", "per_layer", None
    name, fraction = config.rsplit(" ", 1)
    strategy, _, allocation = name.partition(", ")
    return strategy, allocation or "per_layer", float(fraction)


# -- runs ------------------------------------------------------------------------------------
def digest(data):
    sha = hashlib.sha256()
    for array in data[:4]:
        for part in (array if isinstance(array, list) else [array]):
            sha.update(np.ascontiguousarray(np.asarray(part)).tobytes())
    return sha.hexdigest()[:16]


def dense_net(task, seed, data, key):
    """The seed's fitted dense net, pickled under a name that holds the key's digest."""
    name = hashlib.sha256(json.dumps({**key, "config": "dense"}, sort_keys=True).encode())
    path = CACHE / f"unit_pruning_{task}_dense_{seed}_{name.hexdigest()[:12]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes()), path
    start = time.perf_counter()
    net = dense_estimator(task, seed, data).fit(data[0], data[1])
    log(f"{task} dense seed {seed}: {time.perf_counter() - start:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(net))
    return net, path


def run(task, config, seed, data, key):
    """One row on one seed: the metric, the hidden sizes, the non-zero parameters, seconds."""
    spec = TASKS[task]
    dense, path = dense_net(task, seed, data, key)
    X_train, y_train, X_test, y_test = data[:4]
    start = time.perf_counter()
    if config == "dense":
        model, seconds = dense, None
    elif config == "dense, equal epochs":
        model = copy.deepcopy(dense)
        model.partial_fit(X_train, y_train, epochs=spec["rounds"] * spec["tune"])
    else:
        strategy, allocation, fraction = parse(config)
        model = LatticePruner(dense, prefit=True, granularity="unit", strategy=strategy,
                              allocation=allocation, sparsity=fraction, n_rounds=spec["rounds"],
                              fine_tune_epochs=spec["tune"], random_state=seed)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    net = model.estimator_ if hasattr(model, "estimator_") else model
    sizes = getattr(model, "sparsity_", {}).get("hidden_sizes")
    result = {"metric": metric(task, model, X_test, y_test), "seconds": seconds,
              "params": int(sum(int(p.count_nonzero()) for p in net.module_.parameters())),
              "hidden_sizes": sizes, "epochs": len(net.history)}
    if seed == 0 and config not in ("dense, equal epochs",):
        model_path = path.with_name(path.name.replace("_dense_", f"_{config}_".replace(" ", ""))
                                    .replace(".pkl", "_module.pkl"))
        model_path.write_bytes(pickle.dumps(net.module_))
        result["module"] = model_path.name
    return result


# -- statistics ------------------------------------------------------------------------------
def paired(task, a, b):
    """Per-seed differences ``a - b`` oriented so positive is better; ``(mean ± sd, wins,
    sign-test p, t-test p)``."""
    diff = better(task) * (np.asarray(a) - np.asarray(b))
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    sign_p = stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    t_p = float(stats.ttest_rel(a, b).pvalue) if np.ptp(diff) > 0 else float("nan")
    return mean_sd(diff, 2), f"{wins}/{len(diff)}", f"{sign_p:.2f}", f"{t_p:.3f}"


def latencies(modules, batch, repeats, features=28):
    """Median ms and speed-up against ``"dense"`` of each module at ``batch``."""
    x = torch.randn(batch, 100, features)
    with torch.inference_mode(), torch_threads(1), threadpool_limits(1):
        times = interleaved_times({name: (lambda m=m: m(x)) for name, m in modules.items()},
                                  repeats)
    return {name: (float(np.median(t)) * 1e3, median_ratio(times, "dense", name))
            for name, t in times.items()}


# -- report ----------------------------------------------------------------------------------
def report(task, configs, results, seeds, data_text, args, versions):
    spec = TASKS[task]
    unit = "accuracy %" if spec["metric"] == "accuracy" else "perplexity"
    values = {c: [results[c][s]["metric"] for s in seeds] for c in configs}
    rows = []
    for config in configs:
        first = results[config][seeds[0]]
        row = [config, str(first["hidden_sizes"] or "-"), first["params"],
               mean_sd(values[config], 2),
               " ".join(f"{v:.2f}" for v in values[config])]
        if config.startswith("dense"):
            row += ["-", "-"] + ["-"] * 4
        else:
            control = values["dense, equal epochs"]
            diff = better(task) * (np.asarray(values[config]) - control)
            row += [f"{diff.mean():+.2f}", f"{int((diff > 0).sum())}/{len(seeds)}"]
            strategy, allocation, fraction = parse(config)
            baseline = f"magnitude {fraction:g}" if fraction is not None else None
            row += (list(paired(task, values[config], values[baseline]))
                    if baseline and baseline != config else ["-"] * 4)
        rows.append(row)
    header = ["row", "hidden", "params", f"{unit} mean ± sd", "per seed",
              "vs equal-epoch dense", "better on", "vs magnitude (paired)", "wins",
              "sign p", "t p"]
    lines = [command_line("unit_pruning.py", args.argv),
             f"# {', '.join(f'{k} {v}' for k, v in versions.items())}; one torch thread",
             f"# data: {data_text}",
             f"# dense: {dense_text(task)}; pruning: {spec['rounds']} rounds x {spec['tune']} "
             "fine-tuning epoch(s); the equal-epoch dense net trains "
             f"{spec['rounds'] * spec['tune']} more epochs",
             f"# seeds {seeds}; differences oriented so that positive is better "
             f"({'higher accuracy' if better(task) > 0 else 'lower perplexity'}); hidden and "
             "params: seed 0 (params: non-zero entries of every tensor)", "",
             table(header, rows), ""]
    lines += own_size_table(task, configs, results, seeds, values)
    if spec["data"] == "mnist":
        lines += latency_table(task, configs, results, args.repeats)
    name = f"unit_pruning_{task}{'_quick' if args.quick else ''}"
    write_results(str(ROOT / "benchmarks" / "results" / f"{name}.txt"), "\n".join(lines))
    plot(task, configs, values, seeds, results, name)


def dense_text(task):
    spec = TASKS[task]
    epochs = spec["epochs"]
    if spec["data"] == "wikitext":
        return f"LanguageModel({spec['net']['cell']}, {LM_NET}), {epochs} epochs"
    return f"RNNClassifier(lstm, {spec['net']}), max_epochs={epochs}"


def own_size_table(task, configs, results, seeds, values):
    """``sparsity=None`` beside the grid's smallest net within 1 point of the dense net."""
    dense = np.mean(values["dense"])
    grid = [c for c in configs if not c.startswith("dense") and parse(c)[2] is not None]
    close = [c for c in grid if better(task) * (np.mean(values[c]) - dense) >= -1]
    best = max(close, key=lambda c: (parse(c)[2], better(task) * np.mean(values[c])),
               default=None)
    grid_seconds = sum(results[c][s]["seconds"] for c in grid for s in seeds) / len(seeds)
    own = "lattice, sparsity=None"
    rows = [[own, str(results[own][seeds[0]]["hidden_sizes"]),
             " / ".join(str(results[own][s]["hidden_sizes"]) for s in seeds),
             mean_sd(values[own], 2), f"{np.mean([results[own][s]['seconds'] for s in seeds]):.0f}",
             "one fit"]]
    if best is not None:
        rows.append([f"grid's smallest within 1 of dense: {best}",
                     str(results[best][seeds[0]]["hidden_sizes"]), "-", mean_sd(values[best], 2),
                     f"{grid_seconds:.0f}", f"{len(grid)} fits (the whole grid)"])
    return [f"Dense: {mean_sd(values['dense'], 2)}. The lattice's own size against the grid:", "",
            table(["row", "hidden (seed 0)", "hidden per seed", "metric", "seconds per seed",
                   "cost"], rows), ""]


def latency_table(task, configs, results, repeats):
    """Seed-0 models timed: the dense net and the magnitude row of each fraction (every ranker
    of a fraction gives the same sizes on a one-layer net)."""
    names = ["dense"] + [c for c in configs if c.startswith("magnitude ") and "global" not in c]
    modules = {n: pickle.loads((CACHE / results[n][0]["module"]).read_bytes()).eval()
               for n in names}
    rows = []
    timed = {b: latencies(modules, b, repeats) for b in (1, 256)}
    for name in names:
        rows.append([name, str(results[name][0]["hidden_sizes"] or "-")]
                    + [f"{timed[b][name][0]:.2f} ms, {timed[b][name][1]:.2f}x" for b in (1, 256)])
    return ["Seed-0 models, 100 steps of random input, one thread, medians of "
            f"{repeats} interleaved repeats (speed-up: median of paired ratios):", "",
            table(["row", "hidden", "batch 1", "batch 256"], rows), ""]


def plot(task, configs, values, seeds, results, name):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = TASKS[task]
    fig, ax = plt.subplots(figsize=(8, 5))
    strategies = list(dict.fromkeys(parse(c)[:2] for c in configs
                                    if not c.startswith("dense") and parse(c)[2] is not None))
    for index, (strategy, allocation) in enumerate(strategies):
        label = strategy + (", global" if allocation == "global" else "")
        points = [(parse(c)[2], values[c]) for c in configs if not c.startswith("dense")
                  and parse(c)[:2] == (strategy, allocation) and parse(c)[2] is not None]
        x = np.array([p[0] for p in points]) + 0.004 * (index - len(strategies) / 2)
        ax.errorbar(x, [np.mean(p[1]) for p in points],
                    yerr=[np.std(p[1], ddof=1) for p in points], marker="o", capsize=3,
                    label=label)
    for config, style in (("dense", "k-"), ("dense, equal epochs", "k--")):
        ax.axhline(np.mean(values[config]), color="k", linestyle=style[1:], linewidth=1,
                   label=config)
    own = "lattice, sparsity=None"
    removed = [1 - sum(results[own][s]["hidden_sizes"]) / total_units(task) for s in seeds]
    ax.plot(removed, values[own], "r*", markersize=12, label="lattice, sparsity=None (per seed)")
    ax.set_xlabel("fraction of hidden units removed")
    ax.set_ylabel(("test accuracy (%)" if spec["metric"] == "accuracy" else
                   "test perplexity (lower is better)")
                  + f", mean ± sd over {len(seeds)} seeds")
    ax.set_title(f"unit pruning, {task}: each ranker against the dense nets")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = ROOT / "benchmarks" / "results" / f"{name}.png"
    fig.savefig(path, dpi=100)
    log(f"wrote {path}")


def total_units(task):
    net = TASKS[task]["net"]
    return net.get("hidden_size", LM_NET["hidden_size"]) * net.get("num_layers", 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (MNIST tasks)")
    parser.add_argument("--mnist", default=str(SHARED / "mnist-10k"))
    parser.add_argument("--uea", default=str(SHARED / "uea"))
    parser.add_argument("--wikitext", default=str(SHARED / "wikitext-2"))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 300 training samples, 1 dense epoch, one fraction; "
                             "writes unit_pruning_<task>_quick.*")
    args = parser.parse_args(argv)
    args.argv = argv
    data, data_text = load(args.task, args)
    if args.quick:
        data = tuple(part[:300] if i < 4 else part for i, part in enumerate(data))
        TASKS[args.task] = dict(TASKS[args.task], epochs=1, fractions=(0.5,), rounds=1, tune=1)
        data_text += " (--quick: the first 300 of each split)"
        args.repeats = 2
    versions = {"latticeprune": latticeprune.__version__, "torch": torch.__version__,
                "skorch": skorch.__version__, "sklearn": sklearn.__version__,
                "scipy": scipy.__version__}
    key = {"task": args.task, "settings": repr(TASKS[args.task]), "lm": repr(LM_NET),
           "data": digest(data), **versions}
    configs = configurations(args.task)
    results = {}
    for seed in args.seeds:
        for config in configs:
            path = CACHE / (f"unit_pruning_{args.task}{'_quick' * args.quick}_"
                            f"{config.replace(' ', '')}_{seed}.json")
            row_key = {**key, "config": config, "seed": seed}
            result = read_seed_cache(str(path), row_key)
            if not result:
                result = run(args.task, config, seed, data, key)
                write_seed_cache(str(path), row_key, result)
            log(f"{args.task} {config} seed {seed}: {result['metric']:.2f} "
                f"{result['hidden_sizes']} ({result['seconds'] or 0:.0f} s)")
            results.setdefault(config, {})[seed] = result
    report(args.task, configs, results, args.seeds, data_text, args, versions)


if __name__ == "__main__":
    main()
