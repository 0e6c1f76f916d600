"""Navigation (path integration) at 90% sparsity: which moduli space keeps the decoded error?

The moduli paper's claim: an Elman net integrating velocity into place-cell codes keeps its
performance at 90% sparsity only when the moduli space suits the task (a torus). This script
trains :class:`latticeprune.tasks.PathIntegrator` (Elman, tanh) on
:func:`latticeprune.datasets.make_navigation_task` and reports, per variant, the decoded
position error on held-out trajectories (cm, against the true positions, as in the paper:
mean centre of the top-3 predicted place cells), mean ± sd over seeds:

- ``dense``: no penalty, no pruning, the same training;
- ``torus``, ``klein``, ``circle``, ``sphere``, ``torus6`` (6-dimensional torus):
  :class:`~latticeprune.ModuliRegularizer` with the inverted DoG inhibitor at ``--strength``,
  gradual magnitude pruning of W_hh to 0.9 over the first epochs, then recovery epochs;
- ``standard (L1)``: every pair weighted 1, strength scaled by the mean entry of the torus
  ``R`` so the average per-weight penalty matches the geometric runs (the convention of
  ``benchmarks/moduli_sparsity.py``);
- ``permuted torus``: the torus ``R`` with its entries shuffled (no geometry);
- ``pruning alone``: strength 0, the same pruning schedule;
- ``lattice (dense-trained)``: :class:`~latticeprune.LatticePruner` at 0.9 on the trained
  dense net (``prefit=True``), in rounds with one fine-tuning epoch each, and
  ``magnitude (dense-trained)``, the same protocol with global magnitude pruning.

Regenerate the committed table (from the repository root; writes
``benchmarks/results/navigation_ng<Ng>.txt``, which starts with the command)::

    nice -n 10 python benchmarks/navigation.py

Each seed's results are kept in ``results/cache/`` as they arrive: a stopped run resumes
where it stopped, and seeds run in separate processes (``--seeds 0 1`` and ``--seeds 2``)
are tabled together by a last run with all seeds, which reads them (``--no-cache`` ignores it).

``--hidden 512 1024`` runs other network sizes (one results file each); ``--scale paper``
uses the sizes of the grid-cell RNN the task comes from (Sorscher et al. 2019: Ng = 4096,
Np = 512, 20 steps, batch 200, many more trajectories; days on this CPU); ``--quick`` is a
smoke run of the same code that writes nothing.
"""

import argparse
import os
import platform
import shlex
import sys
import time

import numpy as np
import sklearn
import skorch
import torch

from latticeprune.datasets import make_navigation_task, position_error_cm
from latticeprune.tasks import PathIntegrator, navigation_inputs
from common import (DENSE_TRAINED, fit_variant, log, mean_sd, MODULI_VARIANTS, read_seed_cache,
                    table, without_recurrence, write_seed_cache)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SPARSITY = 0.9
DEFAULT_STRENGTH = 0.1

SCALES = {
    # Measured to finish within an hour on the shared 2-core machine at Ng = 256.
    "cpu": dict(hidden=(256,), n_place_cells=512, n_steps=20, n_train=6000, n_test=2000,
                epochs=10, recovery=3, lr=5e-3, batch=64, seeds=(0, 1, 2), rounds=3),
    "paper": dict(hidden=(4096,), n_place_cells=512, n_steps=20, n_train=200_000,
                  n_test=5000, epochs=50, recovery=10, lr=1e-3, batch=200, seeds=(0, 1, 2),
                  rounds=5),
}
QUICK = dict(hidden=(16,), n_place_cells=64, n_steps=10, n_train=200, n_test=100, epochs=3,
             recovery=1, lr=5e-3, batch=64, seeds=(0,), rounds=2)


def make_data(s, seed):
    """Train and test trajectories of one seed; all seeds share the place cells."""
    kwargs = dict(n_steps=s["n_steps"], n_place_cells=s["n_place_cells"],
                  centres_random_state=0)
    train = make_navigation_task(s["n_train"], random_state=2 * seed, **kwargs)
    test = make_navigation_task(s["n_test"], random_state=2 * seed + 1, **kwargs)
    return train, test


def packed(task):
    return navigation_inputs(task.velocities, task.init_codes)


def test_error(model, test):
    """Decoded error (cm) against the true positions: the paper's figure."""
    return position_error_cm(model.predict(packed(test)), test.positions, test.centres)


def seed_cache(hidden, s, strength, seed):
    """Path and key of one seed's cached results (``results/cache``, one JSON per seed)."""
    settings = {k: v for k, v in s.items() if k not in ("hidden", "seeds")}
    key = dict(settings, hidden=hidden, strength=strength, seed=seed)
    regime = "" if s["recovery"] == SCALES["cpu"]["recovery"] else f"_recovery{s['recovery']}"
    name = f"navigation_ng{hidden}_strength{strength:g}{regime}_seed{seed}.json"
    return os.path.join(RESULTS, "cache", name), key


def run_seed(hidden, s, strength, variants, seed, cache):
    """Train every variant on one seed; results are cached so a stopped run resumes by seed."""
    path, key = seed_cache(hidden, s, strength, seed)
    done = read_seed_cache(path, key) if cache else {}
    if all(name in done for name in ("dense",) + variants):
        log(f"  Ng {hidden} seed {seed}: read from {os.path.relpath(path)}")
        return dict(done, cached=True)
    train, test = make_data(s, seed)
    X, y = packed(train), train.targets
    mean_position = train.positions.reshape(-1, 2).mean(axis=0)
    result = {"references": [
        position_error_cm(test.targets, test.positions, test.centres),
        100 * float(np.linalg.norm(test.positions - mean_position, axis=-1).mean())]}
    net = PathIntegrator(centres=train.centres, hidden_size=hidden, cell="rnn_tanh",
                         lr=s["lr"], batch_size=s["batch"], max_epochs=s["epochs"],
                         random_state=seed)
    start = time.time()
    dense = net.fit(X, y)
    result["dense"] = dict(error=test_error(dense, test), seconds=time.time() - start)
    result["zeroed"] = test_error(without_recurrence(dense), test)
    log(f"  Ng {hidden} seed {seed} dense: {result['dense']['error']:.1f} cm "
        f"({result['dense']['seconds']:.0f} s); W_hh zeroed: {result['zeroed']:.1f} cm")

    for name in variants:
        if name in done:
            result[name] = done[name]
            continue
        start = time.time()
        model = fit_variant(name, dense, net, X, y, sparsity=SPARSITY, strength=strength,
                            hidden=hidden, rounds=s["rounds"], recovery=s["recovery"],
                            seed=seed)
        result[name] = dict(error=test_error(model, test), seconds=time.time() - start,
                            sparsity=model.sparsity_["overall"])
        log(f"  Ng {hidden} seed {seed} {name}: {result[name]['error']:.1f} cm, W_hh sparsity "
            f"{result[name]['sparsity']:.4f} ({result[name]['seconds']:.0f} s)")
        if cache:
            write_seed_cache(path, key, dict(done, **result))
    return result


def run(hidden, s, strength, variants, out, cache=True):
    errors = {name: [] for name in ("dense",) + variants}
    sparsity = {name: [] for name in variants}
    seconds = {name: [] for name in ("dense",) + variants}
    references, zeroed, cached = [], [], []
    for seed in s["seeds"]:
        result = run_seed(hidden, s, strength, variants, seed, cache)
        if result.get("cached"):
            cached.append(seed)
        references.append(result["references"])
        zeroed.append(result["zeroed"])
        for name in ("dense",) + variants:
            errors[name].append(result[name]["error"])
            seconds[name].append(result[name]["seconds"])
            if name != "dense":
                sparsity[name].append(result[name]["sparsity"])
    header = ["variant", "W_hh sparsity", "test error (cm)", "per seed", "fit (s)"]
    rows = [["dense", "0", mean_sd(errors["dense"]),
             ", ".join(f"{e:.1f}" for e in errors["dense"]), f"{np.mean(seconds['dense']):.0f}"]]
    for name in variants:
        rows.append([name, f"{np.mean(sparsity[name]):.3f}", mean_sd(errors[name]),
                     ", ".join(f"{e:.1f}" for e in errors[name]),
                     f"{np.mean(seconds[name]):.0f}"])
    floor, baseline = np.mean(references, axis=0)
    seeds = list(s["seeds"])
    out.append(f"Elman PathIntegrator, Ng = {hidden}: decoded position error on {s['n_test']} "
               f"held-out trajectories, cm against the true positions (top-3 decoder), mean ± "
               f"sd over seeds {seeds} (sample sd).\n")
    out.append(table(header, rows))
    out.append(f"\nReferences (mean over seeds): decoding the true target codes {floor:.1f} cm "
               f"(the decoder's floor); always predicting the mean training position "
               f"{baseline:.1f} cm; the dense net with W_hh set to zero, not retrained "
               f"{mean_sd(zeroed)} cm.")
    if cached:
        out.append(f"\nSeeds {cached} were read from results/cache/, where earlier runs of this "
                   f"command (same settings; e.g. with --seeds, in separate processes) stored "
                   f"them; their fit times are those runs' (two processes on the two cores).")
    return errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, writes nothing")
    parser.add_argument("--hidden", type=int, nargs="+", help="Ng values (default: scale's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: scale's)")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                        help="moduli penalty strength (default: ModuliRegularizer's; another "
                             "value adds _strength<value> to the results file name)")
    parser.add_argument("--variants", nargs="*", choices=MODULI_VARIANTS + DENSE_TRAINED,
                        help="subset of the variants (default: all; none: the dense net and "
                             "the references only, written to navigation_ng<Ng>_dense.txt)")
    parser.add_argument("--recovery-epochs", type=int, default=None,
                        help="epochs after the pruning schedule ends (default: the scale's; 0 is "
                             "the moduli paper's regime: the target is reached at the last "
                             "epoch); another value adds _recovery<value> to the file name")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 ran several times faster than 2 on the shared "
                             "machine)")
    parser.add_argument("--no-cache", action="store_true",
                        help="ignore and do not write results/cache (per-seed results that let "
                             "a stopped run resume, or seeds run in separate processes be "
                             "tabled together)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = dict(QUICK if args.quick else SCALES[args.scale])
    if args.hidden:
        s["hidden"] = tuple(args.hidden)
    if args.seeds:
        s["seeds"] = tuple(args.seeds)
    default_recovery = s["recovery"]
    if args.recovery_epochs is not None:
        if not 0 <= args.recovery_epochs < s["epochs"]:
            parser.error(f"--recovery-epochs must be in [0, {s['epochs']}); got "
                         f"{args.recovery_epochs}")
        s["recovery"] = args.recovery_epochs
    variants = (MODULI_VARIANTS + DENSE_TRAINED if args.variants is None
                else tuple(args.variants))
    command = "python benchmarks/navigation.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    for hidden in s["hidden"]:
        start = time.time()
        load = os.getloadavg()[0]
        out = [
            f"# {command.strip()}",
            f"# Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
            f"{torch.get_num_threads()}; Python {platform.python_version()}, torch "
            f"{torch.__version__}, skorch {skorch.__version__}, scikit-learn "
            f"{sklearn.__version__}; 1-min load average at start {load:.1f}",
            f"# Task: make_navigation_task, box 2.2 m, {s['n_place_cells']} Gaussian place "
            f"cells (width 0.12 m, centres seed 0), {s['n_steps']} steps of 0.02 s; "
            f"{s['n_train']} training / {s['n_test']} test trajectories per seed",
            f"# Training: Adam lr {s['lr']}, batch {s['batch']}, gradient norm clipped at 0.1 "
            f"(PathIntegrator's defaults), {s['epochs']} epochs "
            f"(moduli variants: pruning at the end of epochs 1-{s['epochs'] - s['recovery']}, "
            f"linear schedule to {SPARSITY}, then {s['recovery']} recovery epochs; penalty "
            f"strength {args.strength}, inverted DoG); dense-trained pruners: "
            f"{s['rounds']} rounds, 1 fine-tuning epoch each",
            "",
        ]
        log("\n".join(out))
        run(hidden, s, args.strength, variants, out,
            cache=not (args.quick or args.no_cache))
        out.append(f"\nTotal wall time: {(time.time() - start) / 60:.1f} min; 1-min load average "
                   f"at the end {os.getloadavg()[0]:.1f}.")
        text = "\n".join(out) + "\n"
        log("\n" + "\n".join(out[5:]))
        if not args.quick:
            os.makedirs(RESULTS, exist_ok=True)
            suffix = ("" if variants else "_dense") + (
                "" if args.strength == DEFAULT_STRENGTH else f"_strength{args.strength:g}") + (
                "" if s["recovery"] == default_recovery else f"_recovery{s['recovery']}")
            path = os.path.join(RESULTS, f"navigation_ng{hidden}{suffix}.txt")
            with open(path, "w") as fh:
                fh.write(text)
            log(f"wrote {path}")


if __name__ == "__main__":
    main()
