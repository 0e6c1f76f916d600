"""Helpers shared by the experiment scripts: logging, tables, mean ± sd, the variant set."""

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

from latticeprune import LatticePruner, ModuliRegularizer
from latticeprune.cli import load_data
from latticeprune.moduli import penalty_matrix

#: The moduli paper's comparison: spaces, the controls, and the dense-trained pruners.
MODULI_VARIANTS = ("torus", "klein", "circle", "sphere", "torus6", "standard (L1)",
                   "permuted torus", "pruning alone")
DENSE_TRAINED = ("lattice (dense-trained)", "magnitude (dense-trained)")
#: The classifier's training settings of the tables measured before issue 26, its defaults
#: then (Adam at 0.01, batches of 64, no gradient clipping; 20 epochs where a script sets
#: none), spelled out so that those tables stay what their commands reproduce.
SETTINGS_0_1 = dict(lr=0.01, batch_size=64, max_grad_norm=None)


def command_line(script, argv=None):
    """The first line of a results file: the command that made it."""
    return f"# python benchmarks/{script} {' '.join(sys.argv[1:] if argv is None else argv)}"


def demo_split():
    """The demo's digits split, as ``latticeprune demo`` makes it: ``X_train, X_test,
    y_train, y_test``."""
    return load_data(argparse.Namespace(dataset="digits", data=None, random_state=0))


def log(message):
    print(message, flush=True)


def mean_sd(values, digits=1):
    """``"mean ± sd"`` (sample sd) of ``values``, or the single value."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def table(header, rows):
    """A markdown table with padded columns."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(row):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def variant_params(name, strength, hidden, no_penalty=("pruning alone", "none")):
    """ModuliRegularizer parameters of one variant.

    ``standard (L1)`` weights every pair 1 with the strength scaled by the mean entry of the
    torus ``R``, so that the average per-weight penalty matches the geometric runs;
    ``permuted torus`` shuffles the torus ``R``; the names in ``no_penalty`` keep the pruning
    schedule with strength 0.
    """
    if name == "standard (L1)":
        mean_R = float(penalty_matrix(hidden, "torus", "DoG", random_state=0).mean())
        return dict(moduli="standard", strength=strength * mean_R)
    if name == "permuted torus":
        return dict(moduli="torus", permute=True, strength=strength)
    if name in no_penalty:
        return dict(moduli="torus", strength=0.0)
    return dict(moduli=name, strength=strength)


def without_recurrence(model):
    """A copy of a fitted task model with W_hh set to zero, not retrained: what recurrence adds."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.module_.rnn.weight_hh_l0.zero_()
    return model


def fit_variant(name, dense, net, X, y, *, sparsity, strength, hidden, rounds, recovery, seed,
                scope="recurrent"):
    """One variant at ``sparsity``: a dense-trained pruner on the fitted ``dense`` net (rounds
    of one fine-tuning epoch), or a ModuliRegularizer that trains (a clone of) ``net``; both
    prune the tensors of ``scope`` (``"recurrent"``: W_hh; ``"all"``: input and read-out too)."""
    if name in DENSE_TRAINED:
        return LatticePruner(dense, sparsity=sparsity, prefit=True, strategy=name.split()[0],
                             n_rounds=rounds, fine_tune_epochs=1, scope=scope,
                             random_state=seed).fit(X, y)
    return ModuliRegularizer(net, target_sparsity=sparsity, recovery_epochs=recovery,
                             prune_scope=scope, random_state=seed,
                             **variant_params(name, strength, hidden)).fit(X, y)


def add_recovery_argument(parser):
    """The ``--recovery-epochs N`` option of the moduli benchmarks (see :func:`apply_recovery`)."""
    parser.add_argument(
        "--recovery-epochs", type=int, default=None,
        help="epochs after the pruning schedule ends (default: the script's setting); the total "
             "stays the same, so the other epochs prune. 0: no recovery, the linear schedule "
             "reaches the target at the end of the last epoch (the moduli paper's code prunes "
             "at the start of each epoch and trains only its last epoch of 30 at the target). "
             "A value other than the default adds _recovery<N> to the results and cache names")


def apply_recovery(parser, recovery_epochs, settings):
    """Set ``settings["recovery"]`` to ``--recovery-epochs`` (None: keep it), keeping
    ``settings["epochs"]``; return the results-name suffix, ``""`` for the default regime or
    ``"_recovery<N>"``. A value outside ``[0, epochs)`` is a usage error."""
    if recovery_epochs is None or recovery_epochs == settings["recovery"]:
        return ""
    if not 0 <= recovery_epochs < settings["epochs"]:
        parser.error(f"--recovery-epochs must be in [0, {settings['epochs']}) (the epochs of "
                     f"this setting); got {recovery_epochs}")
    settings["recovery"] = recovery_epochs
    return f"_recovery{recovery_epochs}"


def schedule_phrase(epochs, recovery, target="the target sparsity"):
    """How the moduli variants spend ``epochs``, for a results header (states the regime)."""
    phrase = (f"pruning at the end of epochs 1-{epochs - recovery}, linear schedule to {target}, "
              f"then {recovery} recovery epochs")
    if recovery == 0:
        phrase += ", so the target is reached at the end of the last epoch"
    return phrase


def write_results(path, text):
    """Write a results file (creating its folder) and say so."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    log(f"wrote {path}")


def read_seed_cache(path, key):
    """One seed's stored results (``results/cache/*.json``) if stored under the same ``key``
    (the run's settings), else ``{}``."""
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        stored = json.load(fh)
    return stored["results"] if stored["key"] == json.loads(json.dumps(key)) else {}


def write_seed_cache(path, key, results):
    """Store one seed's results as they arrive, so a stopped run resumes by seed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump({"key": key, "results": results}, fh, indent=1)
