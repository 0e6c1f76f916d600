"""Time the meet-irreducible verdict of latticeprune.lattice against n, and against networkx.

Regenerate the committed table (from the repository root):

    python benchmarks/lattice_scaling.py

Graphs (seeded):
- "random": every connection present with probability 0.05 (what the pruner's
  ``binary_adjacency(s, 0.95)`` builds on a dense weight matrix, without the n x n float
  matrix). Such graphs are strongly connected, so the reachability poset is a single element.
- "DAG": a randomly relabelled strictly upper-triangular random graph of density 0.05,
  so every neuron is its own component: the worst case for the reachability closure.

Baseline at n = 512, in the same run: what a user would write with networkx and Python
sets, using the same closed-form criteria of docs/methods/lattice.md (no concept enumeration):
context: extents as sets of ``G.successors(m)``, intersect the strict supersets of each
extent; reachability: ``nx.condensation``, ancestor sets of every component, intersect
the down-sets of all ``y > x`` and compare with the down-set of ``x``.  Both verdicts
are checked to be identical before timing is reported.

Sizes above 4,096 are timed once (no warm-up). The peak memory of the context verdict on
the "random" graph (tracemalloc, numpy's allocations, the input excluded) is its own column.
"""

import os
import platform
import statistics
import sys
import time
import tracemalloc

import networkx as nx
import numpy as np
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits  # installed with scikit-learn

from latticeprune.lattice import meet_irreducible

SIZES = (256, 512, 1024, 2048, 4096, 16384)
LARGE = 4096  # sizes above are timed once
BASELINE_SIZE = 512
EXTRA_BASELINES = ((2048, "context", "random"),)  # the trend of the set-based baseline
DENSITY = 0.05
REPEATS = 5
ABBREVIATION = {"context": "ctx", "reachability": "reach"}
OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "lattice_scaling.txt")


def bernoulli(n, rng, density):
    """An n x n boolean matrix of independent entries, drawn in float32 row blocks."""
    return np.vstack([rng.random((min(1024, n - i), n), dtype=np.float32) < density
                      for i in range(0, n, 1024)])


def random_graph(n, rng):
    return bernoulli(n, rng, DENSITY)


def random_dag(n, rng):
    upper = np.triu(bernoulli(n, rng, 2 * DENSITY * n / (n - 1)), 1)
    permutation = rng.permutation(n)
    return upper[np.ix_(permutation, permutation)]


def networkx_context(adjacency):
    graph = nx.from_numpy_array(adjacency.astype(int), create_using=nx.DiGraph)
    everything = frozenset(graph.nodes)
    extents = {m: frozenset(graph.successors(m)) for m in graph.nodes}
    verdict = np.zeros(len(adjacency), dtype=bool)
    for m, mine in extents.items():
        intersection = everything
        for other in extents.values():
            if mine < other:
                intersection = intersection & other
        verdict[m] = intersection != mine
    return verdict


def networkx_reachability(adjacency):
    graph = nx.from_numpy_array(adjacency.astype(int), create_using=nx.DiGraph)
    condensation = nx.condensation(graph)
    mapping = condensation.graph["mapping"]
    down = {x: frozenset(nx.ancestors(condensation, x)) | {x} for x in condensation.nodes}
    maximal = [x for x in condensation.nodes if condensation.out_degree(x) == 0]
    element_verdict = {}
    for x in condensation.nodes:
        above = nx.descendants(condensation, x)
        if not above:
            element_verdict[x] = len(maximal) > 1
            continue
        lower_bounds = frozenset(condensation.nodes)
        for y in above:
            lower_bounds = lower_bounds & down[y]
        element_verdict[x] = lower_bounds != down[x]
    return np.array([element_verdict[mapping[i]] for i in range(len(adjacency))])


def median_time(func, *args, repeats=REPEATS):
    large = len(args[0]) > LARGE
    result = None if large else func(*args)  # warm-up (BLAS threads, caches), not timed
    repeats = 1 if large else repeats
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = func(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    load_at_start = os.getloadavg()[0]
    rng = np.random.default_rng(2025)
    graphs = {n: {"random": random_graph(n, rng), "DAG": random_dag(n, rng)} for n in SIZES}
    cases = [("context", "random"), ("context", "DAG"), ("reachability", "random"),
             ("reachability", "DAG")]

    lines = [
        "# Meet-irreducible verdict of latticeprune.lattice: median wall time (s) of "
        f"{REPEATS} runs",
        "# Regenerate: python benchmarks/lattice_scaling.py",
        f"# Machine: {platform.machine()}, {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, numpy {np.__version__}, networkx {nx.__version__}",
        f"# Graphs: 'random' = independent connections, 'DAG' = relabelled random upper "
        f"triangle; density {DENSITY}; n > {LARGE}: one run, no warm-up",
        "# Columns: seconds for meet_irreducible(adjacency, order) per order/graph (default",
        "# BLAS threads; 'ctx rnd 1thr' = context on 'random' with BLAS limited to one thread),",
        "# then the number of meet-irreducible neurons (context/reachability) per graph family",
        "# and the peak memory (MiB, tracemalloc) of the context verdict on 'random'",
        "",
        f"{'n':>5} {'edges random':>13} {'edges DAG':>10} "
        + " ".join(f"{ABBREVIATION[order] + ' ' + family:>13}" for order, family in cases)
        + f" {'ctx rnd 1thr':>13} {'SCCs random':>12} {'irred. random':>14} {'irred. DAG':>12}"
        + f" {'ctx MiB':>8}",
    ]
    ours = {}
    for n in SIZES:
        row = []
        for order, family in cases:
            seconds, verdict = median_time(meet_irreducible, graphs[n][family], order)
            ours[n, order, family] = (seconds, verdict)
            row.append(f"{seconds:13.4f}")
        with threadpool_limits(limits=1):  # BLAS on one thread: immune to CPU contention
            seconds, verdict = median_time(meet_irreducible, graphs[n]["random"], "context")
        ours[n, "context", "random", "1 thread"] = (seconds, verdict)
        row.append(f"{seconds:13.4f}")
        tracemalloc.start()
        meet_irreducible(graphs[n]["random"], "context")
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        sccs, _ = connected_components(graphs[n]["random"], directed=True, connection="strong")
        irreducible = {
            family: "/".join(str(ours[n, order, family][1].sum()) for order in ABBREVIATION)
            for family in ("random", "DAG")
        }
        line = (
            f"{n:>5} {graphs[n]['random'].sum():>13} {graphs[n]['DAG'].sum():>10} "
            + " ".join(row)
            + f" {sccs:>12} {irreducible['random']:>14} {irreducible['DAG']:>12} {peak:8.0f}"
        )
        lines.append(line)
        print(line, flush=True)

    first_baseline_line = len(lines) + 1
    lines += [
        "",
        f"# networkx + Python-set baseline at n = {BASELINE_SIZE} (same run, identical verdicts)",
        f"{'case':>26} {'networkx (s)':>13} {'latticeprune (s)':>17} {'speed-up':>9}",
    ]
    baselines = {"context": networkx_context, "reachability": networkx_reachability}
    compared = [(BASELINE_SIZE, order, family) for order, family in cases]
    compared.insert(1, (BASELINE_SIZE, "context", "random", "1 thread"))
    compared += list(EXTRA_BASELINES)
    for key in compared:
        n, order, family = key[:3]
        seconds, verdict = median_time(baselines[order], graphs[n][family])
        our_seconds, our_verdict = ours[key]
        if not np.array_equal(verdict, our_verdict):
            sys.exit(f"verdicts differ from the networkx baseline: {order}, {family}, n={n}")
        label = " ".join(map(str, key[1:])) + ("" if n == BASELINE_SIZE else f" n={n}")
        lines.append(
            f"{label:>26} {seconds:13.4f} {our_seconds:17.4f} {seconds / our_seconds:8.0f}x"
        )
    lines.append(
        f"# 1-min load average at start / end: {load_at_start:.2f} / {os.getloadavg()[0]:.2f}"
        " (the machine is shared; timings are medians)"
    )
    print("\n".join(lines[first_baseline_line:]))
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    with open(OUTPUT, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
