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

``--recovery-epochs 0`` keeps the 10 epochs but prunes in all of them, so the schedule reaches
0.9 at the end of the last epoch (no recovery; ``navigation_ng<Ng>_recovery0.txt``).

Ablation of the moduli paper's settings (issue 16): ``--ablation SETTING`` moves one setting to
the value of the paper's code, everything else unchanged; the results file and the seed cache
get ``_<SETTING>`` appended (``navigation_ng256_recovery0_relu.txt``)::

    relu      Elman with ReLU instead of tanh
    adamw     AdamW (torch's default weight_decay 0.01) at lr 1e-4 instead of Adam at 5e-3
    prune-io  W_ih and the read-out pruned with W_hh, ranked together (prune_scope="all")
    steps50   50-step trajectories (training and test) instead of 20

``--ablation-table`` trains nothing: it reads the baseline's and every setting's results file
for the same ``--hidden``, ``--recovery-epochs`` and ``--strength`` and writes one table (rows:
baseline and each setting; columns: dense and ``--variants``, default torus, permuted torus,
pruning alone) to ``navigation_ablation_ng<Ng>.txt`` (the no-recovery regime; another regime
adds ``_recovery<N>``). The issue 16 table, in order::

    python benchmarks/navigation.py --hidden 256 --recovery-epochs 0 --ablation relu \
        --variants torus "permuted torus" "pruning alone"
    ... the same with --ablation adamw, prune-io, steps50 ...
    python benchmarks/navigation.py --hidden 256 --recovery-epochs 0 --ablation-table
"""

import argparse
import os
import platform
import re
import shlex
import sys
import time

import numpy as np
import sklearn
import skorch
import torch

from latticeprune.datasets import make_navigation_task, position_error_cm
from latticeprune.tasks import PathIntegrator, navigation_inputs
from common import (add_recovery_argument, apply_recovery, DENSE_TRAINED, fit_variant, log,
                    mean_sd, MODULI_VARIANTS, read_seed_cache, schedule_phrase, table,
                    without_recurrence, write_results, write_seed_cache)

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

#: The net, optimiser and pruned tensors of every scale; an ablation overrides one of them.
MODEL = dict(cell="rnn_tanh", optimizer="Adam", prune_scope="recurrent")
#: Issue 16's ablation: one setting moved to the moduli paper's code (navigation/ of
#: github.com/mackeynations/Moduli-regularizers), as settings that override the scale's.
ABLATIONS = {
    "relu": ("Elman with ReLU instead of tanh (the paper's --activation relu)",
             dict(cell="rnn_relu")),
    "adamw": ("AdamW at lr 1e-4 instead of Adam at the scale's lr; weight_decay 0.01, torch's "
              "default, since the paper's code builds torch.optim.AdamW(params, lr=lr) without "
              "one (its --weight_decay is the moduli penalty's strength)",
              dict(optimizer="AdamW", lr=1e-4)),
    "prune-io": ("input (W_ih) and read-out weights pruned with W_hh, all ranked together "
                 "(prune_scope='all'); the paper's code also prunes the initial-state encoder, "
                 "which no latticeprune sparsifier prunes", dict(prune_scope="all")),
    "steps50": ("50-step trajectories, for training and test, instead of 20 (the paper's "
                "--sequence_length)", dict(n_steps=50)),
}
#: Columns of the ablation table unless --variants names others (dense is always one).
ABLATION_VARIANTS = ("torus", "permuted torus", "pruning alone")
W_HH = "rnn.weight_hh_l0"
CELL_NAMES = {"rnn_tanh": "Elman (tanh)", "rnn_relu": "Elman (ReLU)"}


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


def model_settings(s):
    """The cell, optimiser and pruned tensors of settings ``s`` (an ablation's or the scale's)."""
    return {k: s.get(k, default) for k, default in MODEL.items()}


def ablation_suffix(s):
    return f"_{s['ablation']}" if "ablation" in s else ""


def seed_cache(hidden, s, strength, seed):
    """Path and key of one seed's cached results (``results/cache``, one JSON per seed)."""
    settings = {k: v for k, v in s.items() if k not in ("hidden", "seeds")}
    key = dict(settings, hidden=hidden, strength=strength, seed=seed)
    regime = "" if s["recovery"] == SCALES["cpu"]["recovery"] else f"_recovery{s['recovery']}"
    name = f"navigation_ng{hidden}_strength{strength:g}{regime}{ablation_suffix(s)}_seed{seed}.json"
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
    model_s = model_settings(s)
    net = PathIntegrator(centres=train.centres, hidden_size=hidden, cell=model_s["cell"],
                         optimizer=getattr(torch.optim, model_s["optimizer"]), lr=s["lr"],
                         batch_size=s["batch"], max_epochs=s["epochs"], random_state=seed)
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
                            seed=seed, scope=model_s["prune_scope"])
        result[name] = dict(error=test_error(model, test), seconds=time.time() - start,
                            sparsity=model.sparsity_["per_tensor"][W_HH])
        if model_s["prune_scope"] != MODEL["prune_scope"]:
            result[name]["scope_sparsity"] = model.sparsity_["overall"]
        log(f"  Ng {hidden} seed {seed} {name}: {result[name]['error']:.1f} cm, W_hh sparsity "
            f"{result[name]['sparsity']:.4f}"
            + (f" (all pruned tensors: {result[name]['scope_sparsity']:.4f})"
               if "scope_sparsity" in result[name] else "")
            + f" ({result[name]['seconds']:.0f} s)")
        if cache:
            write_seed_cache(path, key, dict(done, **result))
    return result


def run(hidden, s, strength, variants, out, cache=True):
    errors = {name: [] for name in ("dense",) + variants}
    sparsity = {name: [] for name in variants}
    scope_sparsity = {name: [] for name in variants}
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
                scope_sparsity[name].append(result[name].get("scope_sparsity", np.nan))
    scoped = model_settings(s)["prune_scope"] != MODEL["prune_scope"]
    header = (["variant", "W_hh sparsity"] + (["W_ih, W_hh, read-out sparsity"] if scoped else [])
              + ["test error (cm)", "per seed", "fit (s)"])
    rows = [["dense", "0"] + (["0"] if scoped else []) + [
        mean_sd(errors["dense"]), ", ".join(f"{e:.1f}" for e in errors["dense"]),
        f"{np.mean(seconds['dense']):.0f}"]]
    for name in variants:
        rows.append([name, f"{np.mean(sparsity[name]):.3f}"]
                    + ([f"{np.mean(scope_sparsity[name]):.3f}"] if scoped else [])
                    + [mean_sd(errors[name]), ", ".join(f"{e:.1f}" for e in errors[name]),
                       f"{np.mean(seconds[name]):.0f}"])
    floor, baseline = np.mean(references, axis=0)
    seeds = list(s["seeds"])
    out.append(f"{CELL_NAMES[model_settings(s)['cell']]} PathIntegrator, Ng = {hidden}: "
               f"decoded position error on {s['n_test']} "
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


def read_results(path):
    """``(per-seed errors by variant, W_hh sparsity by variant, seeds, command)`` of a results
    file this script wrote."""
    with open(path) as fh:
        text = fh.read()
    lines = text.splitlines()
    seeds = re.search(r"over seeds \[([0-9, ]*)\]", text)
    first = next(i for i, line in enumerate(lines) if line.startswith("| variant"))
    header = [cell.strip() for cell in lines[first].strip().strip("|").split("|")]
    errors, sparsity = {}, {}
    for line in lines[first + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        errors[cells[0]] = [float(v) for v in cells[header.index("per seed")].split(",")]
        sparsity[cells[0]] = float(cells[header.index("W_hh sparsity")])
    return errors, sparsity, seeds.group(1) if seeds else "?", lines[0].lstrip("# ")


def ablation_table(hidden, s, suffix, variants, command):
    """Issue 16's table from the results files: rows baseline and each ablation, columns
    dense and ``variants``; mean ± sd (cm), and on how many seeds the torus beats each
    control."""
    columns = ("dense",) + tuple(variants)
    controls = [c for c in ("permuted torus", "pruning alone")
                if "torus" in columns and c in columns]
    header = (["setting"] + list(columns) + [f"torus < {c}" for c in controls]
              + ["W_hh sparsity", "seeds"])
    rows, sources = [], []
    for ablation in (None,) + tuple(ABLATIONS):
        label = ablation or "baseline"
        name = f"navigation_ng{hidden}{suffix}{f'_{ablation}' if ablation else ''}.txt"
        path = os.path.join(RESULTS, name)
        if not os.path.exists(path):
            rows.append([label] + ["not run"] * (len(header) - 1))
            sources.append(f"- {label}: {name} not found")
            continue
        errors, sparsity, seeds, source_command = read_results(path)
        row = [label] + [mean_sd(errors[c]) if c in errors else "-" for c in columns]
        for control in controls:
            if "torus" in errors and control in errors:
                wins = sum(t < c for t, c in zip(errors["torus"], errors[control]))
                row.append(f"{wins}/{len(errors['torus'])}")
            else:
                row.append("-")
        pruned = sorted(sparsity[c] for c in columns if c in sparsity and c != "dense")
        row.append("-" if not pruned else f"{pruned[0]:.3f}" if pruned[0] == pruned[-1]
                   else f"{pruned[0]:.3f}-{pruned[-1]:.3f}")
        rows.append(row + [seeds])
        sources.append(f"- {label}: {name} (`{source_command}`)")
    settings = [f"- baseline: {CELL_NAMES[MODEL['cell']]}, {MODEL['optimizer']} lr {s['lr']}, "
                f"W_hh pruned, {s['n_steps']}-step trajectories"]
    settings += [f"- {name}: {description}" for name, (description, _) in ABLATIONS.items()]
    return "\n".join([
        f"# {command}",
        "",
        f"Issue 16 ablation, Elman PathIntegrator at Ng = {hidden}, sparsity {SPARSITY}, "
        f"{s['recovery']} recovery epochs of {s['epochs']}"
        + (" (no recovery: the schedule reaches the target at the end of the last epoch)"
           if s["recovery"] == 0 else "")
        + ". Each row moves one setting of the baseline to the moduli paper's value. Decoded "
        "position error on held-out trajectories, cm, mean ± sd over the seeds (sample sd) "
        "of the per-seed values as the results files print them (0.1 cm), so a mean may "
        "differ from its file's by 0.1; "
        "'torus < control': seeds on which the torus has the lower error; 'W_hh sparsity': "
        "its range over the pruned columns (prune-io ranks W_hh with the input and read-out "
        "weights, so its W_hh sparsity is not fixed at 0.9).",
        "",
        table(header, rows),
        "",
        "Settings:",
        *settings,
        "",
        "Sources (benchmarks/results/):",
        *sources,
    ]) + "\n"


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
    add_recovery_argument(parser)
    parser.add_argument("--ablation", choices=sorted(ABLATIONS),
                        help="move one setting to the moduli paper's value (see the module "
                             "docstring); adds _<setting> to the results and cache names")
    parser.add_argument("--ablation-table", action="store_true",
                        help="train nothing; table the baseline's and every --ablation's "
                             "results files (same --hidden, --recovery-epochs, --strength) "
                             "into navigation_ablation_ng<Ng>.txt (columns: dense and "
                             f"--variants, default {', '.join(ABLATION_VARIANTS)})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 ran several times faster than 2 on the shared "
                             "machine)")
    parser.add_argument("--no-cache", action="store_true",
                        help="ignore and do not write results/cache (per-seed results that let "
                             "a stopped run resume, or seeds run in separate processes be "
                             "tabled together)")
    args = parser.parse_args(argv)
    if args.ablation and args.ablation_table:
        parser.error("--ablation-table tables every setting; give it without --ablation")
    torch.set_num_threads(args.threads)
    s = dict(QUICK if args.quick else SCALES[args.scale])
    if args.hidden:
        s["hidden"] = tuple(args.hidden)
    if args.seeds:
        s["seeds"] = tuple(args.seeds)
    regime = apply_recovery(parser, args.recovery_epochs, s)
    strength_suffix = ("" if args.strength == DEFAULT_STRENGTH
                       else f"_strength{args.strength:g}")
    command = "python benchmarks/navigation.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    if args.ablation_table:
        variants = ABLATION_VARIANTS if args.variants is None else tuple(args.variants)
        for hidden in s["hidden"]:
            text = ablation_table(hidden, s, strength_suffix + regime, variants,
                                  command.strip())
            log(text)
            if not args.quick:
                name = (f"navigation_ablation_ng{hidden}{strength_suffix}"
                        + ("" if s["recovery"] == 0 else f"_recovery{s['recovery']}") + ".txt")
                write_results(os.path.join(RESULTS, name), text)
        return
    if args.ablation:
        description, settings = ABLATIONS[args.ablation]
        s.update(settings, ablation=args.ablation)
    model_s = model_settings(s)
    variants = (MODULI_VARIANTS + DENSE_TRAINED if args.variants is None
                else tuple(args.variants))
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
            f"# Training: {CELL_NAMES[model_s['cell']]}, {model_s['optimizer']} lr {s['lr']}, "
            f"batch {s['batch']}, gradient norm clipped at 0.1 (PathIntegrator's default), "
            f"{s['epochs']} epochs (moduli variants prune "
            + ("W_ih, W_hh and the read-out, ranked together" if model_s["prune_scope"] == "all"
               else "W_hh")
            + f": {schedule_phrase(s['epochs'], s['recovery'], SPARSITY)}; penalty strength "
            f"{args.strength}, inverted DoG); dense-trained pruners: "
            f"{s['rounds']} rounds, 1 fine-tuning epoch each",
        ]
        if args.ablation:
            out.append(f"# Ablation (issue 16): {args.ablation}, {description}; everything else "
                       f"as without --ablation")
        out.append("")
        n_header = len(out)
        log("\n".join(out))
        run(hidden, s, args.strength, variants, out,
            cache=not (args.quick or args.no_cache))
        out.append(f"\nTotal wall time: {(time.time() - start) / 60:.1f} min; 1-min load average "
                   f"at the end {os.getloadavg()[0]:.1f}.")
        text = "\n".join(out) + "\n"
        log("\n" + "\n".join(out[n_header:]))
        if not args.quick:
            suffix = (("" if variants else "_dense") + strength_suffix + regime
                      + ablation_suffix(s))
            write_results(os.path.join(RESULTS, f"navigation_ng{hidden}{suffix}.txt"), text)


if __name__ == "__main__":
    main()
