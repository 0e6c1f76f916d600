"""UEA/UCR sets that aeon ships: the dense classifier with its defaults against training recipes
(issue 26, the defaults study), five seeds each.

Usage (in an environment with the ``aeon`` extra)::

    python benchmarks/uea.py [--sets ItalyPowerDemand GunPoint ...] [--seeds 0 1 2 3 4]
                             [--configs defaults "unit lattice 0.5" ...] [--output FILE]

Data: each set's standard train / test split as aeon ships it
(:func:`latticeprune.datasets.load_uea`), univariate sets as one feature per step,
JapaneseVowels as a list of variable-length sequences; ``SequenceScaler`` fitted on the
training set, in a pipeline with the classifier.

Configurations of ``RNNClassifier`` (an LSTM, ``n_threads=1``):

- ``defaults-0.1``: the package's defaults before issue 26 (hidden 64, Adam at lr 0.01,
  batch 64, 20 epochs, no clipping), spelled out;
- ``defaults``: the package's defaults (hidden 64, Adam at lr 0.003, ``batch_size="auto"``,
  ``max_epochs="auto"``, gradients clipped to norm 1: on these sets batch 16 and 150 epochs);
- ``recipe``: batch 16, 150 epochs, gradients clipped to norm 1 (skorch's
  ``GradientNormClipping``), Adam at lr 0.01;
- ``recipe+stop``: ``recipe`` with 20% of the training set held out (stratified) and skorch's
  ``EarlyStopping`` on its loss (patience 30, the best epoch's weights restored);
- ``recipe-lr0.003``: ``recipe`` at Adam's learning rate 0.003.
- pruned (``PRUNED``): ``LatticePruner(prefit=True)`` on the seed's fitted ``defaults`` net,
  the pruner's defaults otherwise (5 rounds of one fine-tuning epoch): half the units removed
  (``granularity="unit"``) by each ranker (lattice, magnitude, random, group lasso), 90% of
  the recurrent weights (``"weight"``: magnitude, random) and of the connections
  (``"connection"``: lattice, magnitude).

Published, on the same splits (test accuracy): 1NN-DTW with a full warping window, from the
UCR archive's own table (Dau et al., "The UCR Time Series Archive", IEEE/CAA J. Autom. Sinica
2019: the archive's ``DataSummary.csv``, column ``DTW (w=100)``, an error rate; read from a copy
in the repository Chang-George-Dong/TrojanTime, ``DataSummary.csv``); for JapaneseVowels the
UEA archive's DTW column as Franceschi, Dieuleveut & Jaggi (NeurIPS 2019) list it
(``results_uea.csv`` of White-Link/UnsupervisedScalableRepresentationLearningTimeSeries; see
docs/experiments.md). ROCKET (Dempster, Petitjean & Webb, Data Min. Knowl. Discov. 2020): the
mean of its 10 runs, ``results/results_ucr.csv`` of the repository angus924/rocket (univariate
sets only: none for JapaneseVowels).

Test accuracy: mean ± sd over the seeds (the net's ``random_state``) whose fit did not
diverge (``FitDivergedError``, a NaN loss: counted and listed as "diverged"), each seed listed; the
epochs trained and the fit's seconds (median over seeds). Results are cached per set,
configuration and seed under ``benchmarks/results/cache/``, keyed by the settings, the
versions and a digest of the data, so a stopped run resumes and changed data is refitted.
"""

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import skorch
import sklearn
import torch
from skorch.callbacks import EarlyStopping, GradientNormClipping
from skorch.dataset import ValidSplit
from sklearn.pipeline import make_pipeline

import latticeprune
from latticeprune import LatticePruner, RNNClassifier, SequenceScaler
from latticeprune.callbacks import FitDivergedError
from latticeprune.datasets import load_uea

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (command_line, log, mean_sd, read_seed_cache, table,  # noqa: E402
                    write_results, write_seed_cache)

ROOT = Path(__file__).resolve().parents[1]
SETS = ("ItalyPowerDemand", "GunPoint", "ArrowHead", "JapaneseVowels", "OSULeaf", "ACSF1")
RECIPE = dict(batch_size=16, max_epochs=150)
#: Published test accuracy (%) on the same splits: (1NN-DTW, ROCKET); sources in the docstring.
PUBLISHED = {"ItalyPowerDemand": (95.0, 97.0), "GunPoint": (90.7, 100.0),
             "ArrowHead": (70.3, 81.4), "JapaneseVowels": (94.9, None),
             "OSULeaf": (59.1, 94.1), "ACSF1": (64.0, 88.6)}
CACHE = ROOT / "benchmarks" / "results" / "cache"


#: The package's defaults before issue 26 (lr 0.01, batch 64, 20 epochs, no clipping).
OLD_DEFAULTS = dict(lr=0.01, batch_size=64, max_epochs=20, max_grad_norm=None)
#: Pruned rows: ``(granularity, strategy, sparsity)``, each on the ``defaults`` dense net.
PRUNED = [("unit", strategy, 0.5) for strategy in ("lattice", "magnitude", "random",
                                                    "group_lasso")]
PRUNED += [("weight", strategy, 0.9) for strategy in ("magnitude", "random")]
PRUNED += [("connection", strategy, 0.9) for strategy in ("lattice", "magnitude")]
PRUNED_NAMES = {f"{g} {s} {t}": (g, s, t) for g, s, t in PRUNED}


def configuration(name, seed):
    """The classifier of dense configuration ``name`` for ``seed``."""
    if name == "defaults":
        return RNNClassifier(random_state=seed)
    if name == "defaults-0.1":
        return RNNClassifier(**OLD_DEFAULTS, random_state=seed)
    # the recipes clip through skorch's callback (max_grad_norm=None: the same computation)
    callbacks = [("clip", GradientNormClipping(gradient_clip_value=1.0))]
    recipe = dict(RECIPE, max_grad_norm=None, callbacks=callbacks, random_state=seed)
    if name == "recipe":
        return RNNClassifier(**recipe, lr=0.01)
    if name == "recipe-lr0.003":
        return RNNClassifier(**recipe, lr=0.003)
    if name == "recipe+stop":
        callbacks.append(("stop", EarlyStopping(patience=30, load_best=True)))
        return RNNClassifier(**recipe, lr=0.01,
                             train_split=ValidSplit(0.2, stratified=True, random_state=seed))
    raise ValueError(f"unknown configuration {name!r}; valid: defaults, defaults-0.1, recipe, "
                     f"recipe-lr0.003, recipe+stop, {', '.join(PRUNED_NAMES)}")


def settings(name, seed):
    """Everything about configuration ``name`` that changes its result, for the cache key:
    every parameter of its classifier (a pruned row: the dense net's and the pruner's)."""
    if name in PRUNED_NAMES:
        return {"dense": settings("defaults", seed), "pruner": PRUNED_NAMES[name],
                "pruner params": {k: describe(v) for k, v in sorted(
                    pruner(name, RNNClassifier(), seed).get_params(deep=False).items())
                    if k != "estimator"}}
    return {k: describe(v) for k, v in sorted(configuration(name, seed).get_params(deep=False)
                                              .items())}


def describe(value):
    """``value`` for a cache key, the same in every process: a callback or split by its class
    and parameters, not its address."""
    if isinstance(value, (list, tuple)):
        return [describe(part) for part in value]
    if hasattr(value, "get_params") and not isinstance(value, type):
        return [type(value).__name__, {key: describe(part) for key, part in
                                       sorted(value.get_params(deep=False).items())}]
    if " object at 0x" in repr(value):
        return [type(value).__name__, describe(sorted(vars(value).items()))]
    return repr(value)


def pruner(name, fitted, seed):
    """The pruner of row ``name`` on the fitted dense classifier (``prefit=True``, the
    pruner's defaults otherwise: 5 rounds of one fine-tuning epoch)."""
    granularity, strategy, sparsity = PRUNED_NAMES[name]
    return LatticePruner(fitted, prefit=True, granularity=granularity, strategy=strategy,
                         sparsity=sparsity, random_state=seed)


def load(name):
    """``X_train, y_train, X_test, y_test`` of a set; equal-length sets as 3-D arrays."""
    X_train, y_train = load_uea(name, split="train", return_X_y=True)
    X_test, y_test = load_uea(name, split="test", return_X_y=True)
    return X_train, y_train, X_test, y_test


def digest(*arrays):
    """A short digest of the data (lists of sequences included), for the cache key."""
    sha = hashlib.sha256()
    for array in arrays:
        for part in (array if isinstance(array, list) else [array]):
            sha.update(np.ascontiguousarray(np.asarray(part)).tobytes())
    return sha.hexdigest()[:16]


def run(name, config, seed, data, dense_nets):
    """One fit's test accuracy, epochs and seconds; a fit that diverges (``FitDivergedError``)
    is recorded as such, with no accuracy. A pruned row prunes the seed's ``defaults`` net
    (fitted once, kept in ``dense_nets``); its seconds are the pruning's."""
    X_train, y_train, X_test, y_test = data
    if config in PRUNED_NAMES:
        if seed not in dense_nets:
            dense_nets[seed] = make_pipeline(SequenceScaler(), configuration("defaults", seed))
            dense_nets[seed].fit(X_train, y_train)
        scaler, dense = dense_nets[seed]
        start = time.perf_counter()
        model = pruner(config, dense, seed).fit(scaler.transform(X_train), y_train)
        return {"accuracy": float(model.score(scaler.transform(X_test), y_test)),
                "seconds": time.perf_counter() - start,
                "epochs": len(model.net_.history) - len(dense.history),
                "sparsity": float(model.sparsity_["overall"])}
    pipe = make_pipeline(SequenceScaler(), configuration(config, seed))
    start = time.perf_counter()
    try:
        pipe.fit(X_train, y_train)
    except FitDivergedError:
        return {"accuracy": None, "seconds": time.perf_counter() - start,
                "epochs": len(pipe[-1].history), "diverged": True}
    seconds = time.perf_counter() - start
    if config == "defaults":
        dense_nets[seed] = pipe
    return {"accuracy": float(pipe.score(X_test, y_test)), "seconds": seconds,
            "epochs": len(pipe[-1].history)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--configs", nargs="+", default=["defaults-0.1", "defaults", "recipe",
                                                         "recipe-lr0.003", "recipe+stop",
                                                         *PRUNED_NAMES])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "uea.txt"))
    args = parser.parse_args(argv)
    versions = {"latticeprune": latticeprune.__version__, "torch": torch.__version__,
                "skorch": skorch.__version__, "sklearn": sklearn.__version__}
    rows = []
    for name in args.sets:
        data, dense_nets = load(name), {}
        shape = (f"{len(data[0])} train / {len(data[2])} test, "
                 f"{'variable length' if isinstance(data[0], list) else data[0].shape[1]} steps")
        for config in args.configs:
            results = []
            for seed in args.seeds:
                key = {"set": name, "config": config, "seed": seed,
                       "settings": settings(config, seed), "data": digest(*data), **versions}
                path = CACHE / f"uea_{name}_{config}_{seed}.json"
                result = read_seed_cache(str(path), key)
                if not result:
                    result = run(name, config, seed, data, dense_nets)
                    write_seed_cache(str(path), key, result)
                log(f"{name} {config} seed {seed}: {result['accuracy']} "
                    f"({result['epochs']} epochs, {result['seconds']:.0f} s)")
                results.append(result)
            accuracy = [100 * r["accuracy"] for r in results if r["accuracy"] is not None]
            diverged = len(results) - len(accuracy)
            dtw, rocket = PUBLISHED.get(name, (None, None))
            rows.append([name, shape, config,
                         (mean_sd(accuracy) if accuracy else "-")
                         + (f" ({diverged} diverged)" if diverged else ""),
                         " ".join("diverged" if r["accuracy"] is None
                                  else f"{100 * r['accuracy']:.1f}" for r in results),
                         f"{np.median([r['epochs'] for r in results]):.0f}",
                         f"{np.median([r['seconds'] for r in results]):.0f}",
                         "-" if dtw is None else f"{dtw:.1f}",
                         "-" if rocket is None else f"{rocket:.1f}"])
    text = "\n".join([
        command_line("uea.py", argv),
        f"# {', '.join(f'{k} {v}' for k, v in versions.items())}; LSTM, n_threads=1",
        f"# seeds {args.seeds}; test accuracy (%) mean ± sd; epochs and seconds: medians (a "
        "pruned row's: its fine-tuning epochs and the pruning's seconds, on the seed's "
        "`defaults` net); 1NN-DTW and ROCKET: published, same splits (sources: the script's "
        "docstring)",
        "",
        table(["set", "data", "configuration", "test accuracy", "per seed", "epochs", "fit s",
               "1NN-DTW", "ROCKET"], rows), ""])
    write_results(args.output, text)


if __name__ == "__main__":
    main()
