"""Word-level language modelling at 90% and 98% sparsity: test perplexity per sparsifier.

The moduli paper's claim: an Elman language model keeps high fidelity at 90-98% sparsity
under moduli regularisation. This script trains :class:`latticeprune.tasks.LanguageModel`
(Elman, tanh) on WikiText-2 **as this project has it: trained on valid.txt, evaluated on
test.txt** (the folder has no train.txt), so the perplexities are not comparable with
published WikiText-2 figures. Reported per variant and target sparsity: test perplexity
(``LanguageModel.perplexity``: windows of ``bptt`` tokens, each from a zero state), with
the dense model beside it:

- ``torus``, ``klein``, ``circle``, ``sphere``, ``torus6``:
  :class:`~latticeprune.ModuliRegularizer`, inverted DoG inhibitor at ``--strength``,
  gradual magnitude pruning of W_hh over the first epochs, then one recovery epoch;
- ``standard (L1)`` (strength scaled by the mean torus ``R``, as in
  ``benchmarks/moduli_sparsity.py``), ``permuted torus``, ``pruning alone`` (strength 0);
- ``lattice (dense-trained)`` / ``magnitude (dense-trained)``:
  :class:`~latticeprune.LatticePruner` on the trained dense net (``prefit=True``), in rounds
  with one fine-tuning epoch each.

CPU default: the vocabulary is cut to the ``--vocab`` most frequent words of valid.txt
(every other word becomes ``<unk>``), because the 13,777-word softmax dominates the cost
(about 5 minutes per epoch at 128 hidden units on the shared 2-core machine, 40 s with 2000
words). ``--vocab 0`` keeps the full vocabulary (``--scale paper`` does).

Regenerate the committed table (from the repository root; writes
``benchmarks/results/language_model.txt``, which starts with the command)::

    nice -n 10 python benchmarks/language_model.py

Each seed's results are kept in ``results/cache/`` as they arrive, so a stopped run resumes
where it stopped (``--no-cache`` ignores them). Seeds other than the scale's add
``_seeds<list>`` to the results file name (``--seeds 1 2``: ``language_model_seeds1-2.txt``).

``--quick`` is a smoke run on a slice (writes nothing). A ``--vocab`` other than the scale's
adds ``_vocab<size>`` to the results file name; ``--variants`` with no names trains and
evaluates the dense net only (``language_model_dense.txt``).

``--recovery-epochs 0`` keeps the scale's epochs but prunes in all of them, with no recovery
epoch (``language_model_recovery0.txt``, its own seed cache)::

    nice -n 10 python benchmarks/language_model.py --recovery-epochs 0
"""

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch

from latticeprune.datasets import load_wikitext2
from latticeprune.datasets.wikitext import UNK
from latticeprune.tasks import LanguageModel, token_windows
from common import (add_recovery_argument, apply_recovery, DENSE_TRAINED, fit_variant, log,
                    mean_sd, MODULI_VARIANTS, read_seed_cache, schedule_phrase, table,
                    without_recurrence, write_results, write_seed_cache)

RESULTS = Path(__file__).resolve().parent / "results"
WIKITEXT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wikitext-2"

SCALES = {
    # Measured to finish within an hour on the shared 2-core machine (one torch thread).
    "cpu": dict(vocab=2000, embedding=128, hidden=128, bptt=35, batch=32, lr=3e-3, epochs=3,
                recovery=1, rounds=2, sparsities=(0.9, 0.98), seeds=(0, 1, 2), max_tokens=None),
    # The sizes of PyTorch's word_language_model example (one layer), full vocabulary.
    "paper": dict(vocab=0, embedding=200, hidden=200, bptt=35, batch=20, lr=1e-3, epochs=40,
                  recovery=10, rounds=5, sparsities=(0.9, 0.98), seeds=(0, 1, 2),
                  max_tokens=None),
}
QUICK = dict(vocab=500, embedding=16, hidden=16, bptt=35, batch=32, lr=3e-3, epochs=2,
             recovery=1, rounds=1, sparsities=(0.9,), seeds=(0,), max_tokens=20000)


def load_corpus(path, vocab, max_tokens):
    """Train (valid.txt) and test ids, with the vocabulary cut to the ``vocab`` commonest words.

    Returns the id streams, the vocabulary size and the fraction of ``<unk>`` per split.
    """
    corpus = load_wikitext2(path)
    train, test = corpus.train, corpus.test
    if max_tokens:
        train, test = train[:max_tokens], test[:max_tokens]
    unk = corpus.dictionary.word2idx[UNK]
    size = corpus.vocab_size
    if vocab and vocab < size:
        counts = np.bincount(corpus.train, minlength=size)
        order = [i for i in np.argsort(-counts, kind="stable") if i != unk][:vocab - 1]
        remap = np.full(size, vocab - 1)  # the last id is <unk>
        remap[order] = np.arange(vocab - 1)
        train, test, unk, size = remap[train], remap[test], vocab - 1, vocab
    return train, test, size, {"train": float(np.mean(train == unk)),
                               "test": float(np.mean(test == unk))}


def unigram_perplexity(train, test, size):
    """Test perplexity of the training unigram frequencies (add-one smoothed)."""
    p = (np.bincount(train, minlength=size) + 1.0) / (len(train) + size)
    return float(np.exp(-np.log(p[test]).mean()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, writes nothing")
    parser.add_argument("--vocab", type=int, help="vocabulary cut (0: full; default: scale's)")
    parser.add_argument("--hidden", type=int, help="hidden units (default: scale's)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: scale's)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: scale's)")
    parser.add_argument("--sparsities", type=float, nargs="+",
                        help="target sparsities (default: scale's, 0.9 and 0.98)")
    parser.add_argument("--strength", type=float, default=0.1,
                        help="moduli penalty strength (ModuliRegularizer's default)")
    parser.add_argument("--variants", nargs="*", choices=MODULI_VARIANTS + DENSE_TRAINED,
                        help="subset of the variants (default: all; none: the dense net and "
                             "the references only, written to language_model_dense.txt)")
    add_recovery_argument(parser)
    parser.add_argument("--data", default=str(WIKITEXT), help="WikiText-2 folder")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 ran several times faster than 2 on the shared "
                             "machine)")
    parser.add_argument("--no-cache", action="store_true",
                        help="ignore and do not write results/cache (per-seed results that let "
                             "a stopped run resume)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    s = dict(QUICK if args.quick else SCALES[args.scale])
    for key in ("vocab", "hidden", "epochs"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.hidden is not None:
        s["embedding"] = args.hidden
    if args.seeds:
        s["seeds"] = tuple(args.seeds)
    if args.sparsities:
        s["sparsities"] = tuple(args.sparsities)
    regime = apply_recovery(parser, args.recovery_epochs, s)
    variants = (MODULI_VARIANTS + DENSE_TRAINED if args.variants is None
                else tuple(args.variants))
    command = "python benchmarks/language_model.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])

    start_all = time.time()
    train, test, size, unk = load_corpus(args.data, s["vocab"], s["max_tokens"])
    X, y = token_windows(train, s["bptt"])
    X_test, y_test = token_windows(test, s["bptt"])
    out = [
        f"# {command.strip()}",
        f"# Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}; Python {platform.python_version()}, torch "
        f"{torch.__version__}, skorch {skorch.__version__}, scikit-learn {sklearn.__version__};"
        f" 1-min load average at start {os.getloadavg()[0]:.1f}",
        f"# Data: WikiText-2 from {Path(args.data).name}/, TRAINED ON valid.txt "
        f"({len(train)} tokens), EVALUATED ON test.txt ({len(test)} tokens); vocabulary "
        + (f"cut to the {size} commonest training words incl. <unk>" if s["vocab"]
           else f"full ({size} words)")
        + f" (<unk>: {unk['train']:.1%} of training, {unk['test']:.1%} of test tokens)",
        f"# Model: Elman (tanh) LanguageModel, embedding {s['embedding']}, hidden "
        f"{s['hidden']}, untied; windows of {s['bptt']} tokens from a zero state; Adam lr "
        f"{s['lr']}, batch {s['batch']}, gradient norm clipped at 1.0, {s['epochs']} epochs "
        f"(moduli variants: {schedule_phrase(s['epochs'], s['recovery'])}; strength "
        f"{args.strength}, inverted DoG); "
        f"dense-trained pruners: {s['rounds']} rounds of 1 fine-tuning epoch",
        "",
    ]
    log("\n".join(out))

    def make_net(seed):
        return LanguageModel(vocab_size=size, embedding_size=s["embedding"],
                             hidden_size=s["hidden"], cell="rnn_tanh", lr=s["lr"],
                             batch_size=s["batch"], max_epochs=s["epochs"], random_state=seed)

    def run_seed(seed):
        """One seed's perplexities, cached in results/cache so a stopped run resumes."""
        key = dict(s, seeds=None, seed=seed, strength=args.strength, data=Path(args.data).name)
        path = RESULTS / "cache" / (f"language_model_vocab{size}_hidden{s['hidden']}_"
                                    f"strength{args.strength:g}{regime}_seed{seed}.json")
        done = read_seed_cache(path, key) if cache else {}
        wanted = [f"{name} @ {sp:g}" for sp in s["sparsities"] for name in variants]
        if "dense" in done and all(w in done for w in wanted):
            log(f"  seed {seed}: read from {path.relative_to(RESULTS.parent.parent)}")
            return dict(done, cached=True)
        start = time.time()
        dense = make_net(seed).fit(X, y)
        result = {"dense": dict(ppl=dense.perplexity(X_test, y_test),
                                stream=dense.stream_perplexity(test, bptt=s["bptt"]),
                                zeroed=without_recurrence(dense).perplexity(X_test, y_test))}
        log(f"  seed {seed} dense: test perplexity {result['dense']['ppl']:.1f} (carried state "
            f"{result['dense']['stream']:.1f}; W_hh zeroed {result['dense']['zeroed']:.1f}) "
            f"({time.time() - start:.0f} s)")
        for sparsity in s["sparsities"]:
            for name in variants:
                label = f"{name} @ {sparsity:g}"
                if label in done:
                    result[label] = done[label]
                    continue
                start = time.time()
                model = fit_variant(name, dense, make_net(seed), X, y, sparsity=sparsity,
                                    strength=args.strength, hidden=s["hidden"],
                                    rounds=s["rounds"], recovery=s["recovery"], seed=seed)
                result[label] = dict(ppl=-model.score(X_test, y_test),
                                     sparsity=model.sparsity_["overall"])
                log(f"  seed {seed} {label}: test perplexity {result[label]['ppl']:.1f}, W_hh "
                    f"sparsity {result[label]['sparsity']:.4f} ({time.time() - start:.0f} s)")
                if cache:
                    write_seed_cache(path, key, dict(done, **result))
        return result

    cache = not (args.quick or args.no_cache)
    dense_ppl, dense_stream, zeroed, results, achieved = [], [], [], {}, {}
    cached = []
    for seed in s["seeds"]:
        result = run_seed(seed)
        if result.get("cached"):
            cached.append(seed)
        dense_ppl.append(result["dense"]["ppl"])
        dense_stream.append(result["dense"]["stream"])
        zeroed.append(result["dense"]["zeroed"])
        for sparsity in s["sparsities"]:
            for name in variants:
                entry = result[f"{name} @ {sparsity:g}"]
                results.setdefault((name, sparsity), []).append(entry["ppl"])
                achieved.setdefault((name, sparsity), []).append(entry["sparsity"])

    seeds = (f"mean ± sd over seeds {list(s['seeds'])}" if len(s["seeds"]) > 1
             else f"seed {s['seeds'][0]}")
    header = ["variant"] + [f"ppl @ {sp:g}" for sp in s["sparsities"]] + [
        f"ratio to dense @ {sp:g}" for sp in s["sparsities"]]
    rows = [["dense (no pruning)"] + [mean_sd(dense_ppl)] * len(s["sparsities"])
            + ["1.00"] * len(s["sparsities"])]
    for name in variants:
        rows.append([name] + [mean_sd(results[name, sp]) for sp in s["sparsities"]]
                    + [f"{np.mean(results[name, sp]) / np.mean(dense_ppl):.2f}"
                       for sp in s["sparsities"]])
    mean_achieved = {sp: np.mean([a for (_, target), values in achieved.items()
                                  if target == sp for a in values] or [np.nan])
                     for sp in s["sparsities"]}
    out.append(f"Test perplexity on test.txt (trained on valid.txt), {seeds}"
               + ("; W_hh sparsity achieved: " + ", ".join(
                   f"{sp:g} -> {mean_achieved[sp]:.4f}" for sp in s["sparsities"])
                  if variants else "") + ".\n")
    out.append(table(header, rows))
    out.append(f"\nReferences: dense with the state carried through test.txt (batch 10, "
               f"stream_perplexity) {mean_sd(dense_stream)}; dense with W_hh set to zero, not "
               f"retrained {mean_sd(zeroed)}; unigram of the training text (add-one) "
               f"{unigram_perplexity(train, test, size):.1f}.")
    if cached:
        out.append(f"\nSeeds {cached} were read from results/cache/, where an earlier run of "
                   f"this command with the same settings (e.g. with --seeds) stored them.")
    out.append(f"\nTotal wall time: {(time.time() - start_all) / 60:.1f} min; 1-min load "
               f"average at the end {os.getloadavg()[0]:.1f}.")
    text = "\n".join(out) + "\n"
    log("\n" + "\n".join(out[5:]))
    if not args.quick:
        name = "language_model" + ("" if variants else "_dense")
        if not args.quick and s["vocab"] != SCALES[args.scale]["vocab"]:
            name += f"_vocab{size}"
        if tuple(s["seeds"]) != SCALES[args.scale]["seeds"]:
            name += "_seeds" + "-".join(str(seed) for seed in s["seeds"])
        name += regime
        write_results(RESULTS / f"{name}.txt", text)


if __name__ == "__main__":
    main()
