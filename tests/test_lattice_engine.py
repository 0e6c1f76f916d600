"""Property and example tests of latticeprune.lattice against the brute-force oracle."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import lattice_oracle as oracle
from latticeprune.lattice import (
    CENTRALITIES,
    ORDERS,
    binary_adjacency,
    centrality,
    check_levels,
    dag_depth,
    filtration_levels,
    hasse_diagram,
    irreducibility_persistence,
    join_irreducible,
    meet_irreducible,
    reachability_closure,
    removal_order,
    structural_removals,
)

VERDICTS = {"meet": meet_irreducible, "join": join_irreducible}
CASES = [(order, kind) for order in ORDERS for kind in VERDICTS]


@st.composite
def adjacencies(draw, max_n=8):
    """Random 0/1 matrices: dense, sparse (AND of two), acyclic (permuted triangle)."""
    n = draw(st.integers(1, max_n))
    matrix = draw(arrays(bool, (n, n)))
    shape = draw(st.sampled_from(["plain", "sparse", "acyclic", "dense"]))
    if shape == "sparse":
        matrix &= draw(arrays(bool, (n, n)))
    elif shape == "dense":
        matrix |= draw(arrays(bool, (n, n)))
    elif shape == "acyclic":
        permutation = np.array(draw(st.permutations(range(n))), dtype=int)
        matrix = np.triu(matrix, 1)[np.ix_(permutation, permutation)]
    return matrix


def expected(adjacency, order, kind):
    return np.array(oracle.ORACLES[order, kind](np.asarray(adjacency).tolist()), dtype=bool)


def check_against_oracle(adjacency, order, kind):
    got = VERDICTS[kind](adjacency, order=order)
    assert got.dtype == bool and got.shape == (len(adjacency),)
    np.testing.assert_array_equal(got, expected(adjacency, order, kind))
    return got


# ------------------------------------------------------------------- oracle properties


@pytest.mark.parametrize("order,kind", CASES)
@settings(max_examples=300, deadline=None)
@given(adjacency=adjacencies())
def test_verdict_matches_brute_force_lattice(adjacency, order, kind):
    check_against_oracle(adjacency, order, kind)


@settings(max_examples=60, deadline=None)
@given(adjacency=adjacencies())
def test_inputs_as_int_float_and_bool_agree(adjacency):
    for order in ORDERS:
        reference = meet_irreducible(adjacency, order=order)
        np.testing.assert_array_equal(meet_irreducible(adjacency.astype(int), order), reference)
        np.testing.assert_array_equal(
            meet_irreducible(adjacency.astype(float).tolist(), order), reference
        )


@settings(max_examples=60, deadline=None)
@given(adjacency=adjacencies(), data=st.data())
def test_verdict_is_equivariant_under_relabelling(adjacency, data):
    n = len(adjacency)
    permutation = np.array(data.draw(st.permutations(range(n))), dtype=int)
    relabelled = adjacency[np.ix_(permutation, permutation)]
    for order, kind in CASES:
        verdict = VERDICTS[kind](adjacency, order=order)
        np.testing.assert_array_equal(VERDICTS[kind](relabelled, order=order), verdict[permutation])


def test_medium_context_matches_set_formula():
    rng = np.random.default_rng(7)
    for n, density in [(60, 0.05), (120, 0.02), (200, 0.1)]:
        adjacency = rng.random((n, n)) < density
        adjacency[:3] = adjacency[3]  # duplicate extents
        adjacency[5] = True  # a full row (the top)
        got = meet_irreducible(adjacency)
        want = oracle.context_meet_irreducible_by_sets(adjacency.tolist())
        np.testing.assert_array_equal(got, want)
        assert 0 < got.sum() < n


def test_medium_reachability_dual_of_reversed_graph():
    rng = np.random.default_rng(3)
    adjacency = rng.random((150, 150)) < 0.01
    np.testing.assert_array_equal(
        join_irreducible(adjacency, "reachability"),
        meet_irreducible(adjacency.T, "reachability"),
    )


def dense_context_meet_irreducible(adjacency):
    """The former dense verdict (two BLAS products over the distinct extents)."""
    extents = np.asarray(adjacency, dtype=bool)
    _, first, inverse = np.unique(extents, axis=0, return_index=True, return_inverse=True)
    E = extents[first].astype(np.float32)
    size = E.sum(axis=1)
    strict = (E @ E.T == size[:, None]) & (size[:, None] < size[None, :])
    verdict = size < extents.shape[1]
    rows = np.flatnonzero(strict.any(axis=1))
    missing = strict[rows].astype(np.float32) @ (1 - E)
    verdict[rows] = np.count_nonzero(missing == 0, axis=1) > size[rows]
    return verdict[inverse.reshape(-1)]


@pytest.mark.parametrize("n, density", [(300, 0.3), (700, 0.05), (1000, 0.6), (2048, 0.05)])
def test_sparse_context_verdict_equals_the_dense_products(n, density):
    rng = np.random.default_rng(n)
    for adjacency in (rng.random((n, n)) < density,
                      np.triu(rng.random((n, n)) < 2 * density, 1)[rng.permutation(n)]):
        adjacency[:4] = adjacency[4]  # duplicate extents
        adjacency[7] = False  # an empty extent
        adjacency[9, : n // 2] = adjacency[11, n // 3 :] = True  # large nested extents
        adjacency[10] = adjacency[9] | adjacency[11]
        np.testing.assert_array_equal(meet_irreducible(adjacency),
                                      dense_context_meet_irreducible(adjacency))
        np.testing.assert_array_equal(join_irreducible(adjacency),
                                      dense_context_meet_irreducible(adjacency.T))


def test_context_verdict_does_not_depend_on_block_sizes(monkeypatch):
    from latticeprune.lattice import context

    rng = np.random.default_rng(5)
    adjacency = rng.random((200, 200)) < 0.08
    adjacency[3] = False
    adjacency[5, :120] = adjacency[6, :60] = True
    want = dense_context_meet_irreducible(adjacency)
    for pairs, block_bytes in ((7, 40), (1, 1), (1 << 22, 1 << 26)):
        monkeypatch.setattr(context, "_PAIRS", pairs)
        monkeypatch.setattr(context, "_BLOCK_BYTES", block_bytes)
        np.testing.assert_array_equal(meet_irreducible(adjacency), want)


# ----------------------------------------------------------------------- explicit cases


def test_duplicate_extents_share_the_verdict():
    adjacency = np.array(
        [
            [0, 1, 1, 0, 0],
            [0, 1, 1, 0, 0],  # same extent as neuron 0
            [0, 0, 0, 1, 1],
            [0, 0, 0, 1, 1],  # same extent as neuron 2
            [1, 1, 1, 0, 0],
        ]
    )
    for order, kind in CASES:
        check_against_oracle(adjacency, order, kind)
    verdict = meet_irreducible(adjacency)
    assert verdict[0] == verdict[1] and verdict[2] == verdict[3]
    # {1,2} is covered only by {0,1,2}; {3,4} only by the top G; {0,1,2} only by G.
    np.testing.assert_array_equal(verdict, [True, True, True, True, True])


def test_full_row_is_the_top_and_not_meet_irreducible():
    adjacency = np.array([[1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    verdict = check_against_oracle(adjacency, "context", "meet")
    assert not verdict[0]  # m' = G
    assert verdict[1] and verdict[2]  # singletons, each covered by G only
    # The empty extent {} has strict supersets {1}, {2}, G whose meet is {} -> reducible.
    assert not verdict[3]


def test_empty_rows_and_columns():
    adjacency = np.zeros((5, 5), dtype=int)
    adjacency[0, 1] = adjacency[1, 2] = adjacency[2, 0] = 1  # a 3-cycle; 3, 4 are isolated
    for order, kind in CASES:
        check_against_oracle(adjacency, order, kind)
    # Reachability: three elements {0,1,2}, {3}, {4} form an antichain: M3, all irreducible.
    assert meet_irreducible(adjacency, "reachability").all()
    assert join_irreducible(adjacency, "reachability").all()


def test_isolated_neuron_next_to_a_chain():
    adjacency = np.zeros((4, 4), dtype=int)
    adjacency[0, 1] = adjacency[1, 2] = 1  # chain 0 < 1 < 2, neuron 3 isolated
    for order, kind in CASES:
        check_against_oracle(adjacency, order, kind)
    # Completion: bottom < 0 < 1 < 2 < top and bottom < 3 < top; every neuron's element
    # has exactly one upper cover (2 and 3 are each covered by the new top only).
    np.testing.assert_array_equal(meet_irreducible(adjacency, "reachability"), [True] * 4)


def test_chain_reachability_is_a_total_order():
    n = 6
    adjacency = np.eye(n, k=1, dtype=int)
    meet = meet_irreducible(adjacency, "reachability")
    join = join_irreducible(adjacency, "reachability")
    np.testing.assert_array_equal(meet, [True] * (n - 1) + [False])  # the top is not
    np.testing.assert_array_equal(join, [False] + [True] * (n - 1))  # the bottom is not


def test_diamond_reachability():
    adjacency = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(meet_irreducible(adjacency, "reachability"), [0, 1, 1, 0])
    np.testing.assert_array_equal(join_irreducible(adjacency, "reachability"), [0, 1, 1, 0])


def test_contranominal_scale_every_attribute_is_a_coatom():
    adjacency = 1 - np.eye(6, dtype=int)  # 2**6 concepts
    assert meet_irreducible(adjacency).all()
    assert join_irreducible(adjacency).all()
    check_against_oracle(adjacency, "context", "meet")


@pytest.mark.parametrize("n", [1, 2, 5])
def test_empty_graph(n):
    adjacency = np.zeros((n, n), dtype=int)
    for order, kind in CASES:
        check_against_oracle(adjacency, order, kind)
    # Context: a 2-element lattice; attribute concepts (empty extents) are its bottom,
    # object concepts (empty intents) its top, each with exactly one cover.
    assert meet_irreducible(adjacency).all() and join_irreducible(adjacency).all()
    # Reachability: an antichain of n elements; a single element is the top and bottom.
    assert meet_irreducible(adjacency, "reachability").all() == (n > 1)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_complete_graph(n):
    adjacency = np.ones((n, n), dtype=int)
    for order, kind in CASES:
        check_against_oracle(adjacency, order, kind)
        assert not VERDICTS[kind](adjacency, order=order).any()  # a one-element lattice


def test_zero_neurons():
    for order, kind in CASES:
        assert VERDICTS[kind](np.zeros((0, 0)), order=order).shape == (0,)
    diagram = hasse_diagram(np.zeros((0, 0)))
    assert diagram.edges.shape == (0, 2) and diagram.n_components == 0


def test_sparse_matrix_input():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    adjacency = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    for order in ORDERS:
        np.testing.assert_array_equal(
            meet_irreducible(scipy_sparse.csr_array(adjacency), order),
            meet_irreducible(adjacency, order),
        )


# -------------------------------------------------------------- hasse diagram, closure


def networkx_hasse(adjacency):
    """Cover edges as pairs of neuron frozensets, via networkx."""
    graph = nx.from_numpy_array(np.asarray(adjacency, dtype=int), create_using=nx.DiGraph)
    condensation = nx.condensation(graph)
    reduction = nx.transitive_reduction(condensation)
    members = nx.get_node_attributes(condensation, "members")
    return {(frozenset(members[u]), frozenset(members[v])) for u, v in reduction.edges}


def our_hasse(adjacency):
    diagram = hasse_diagram(adjacency)
    members = [frozenset(np.flatnonzero(diagram.labels == c)) for c in range(diagram.n_components)]
    assert all(members)
    return diagram, {(members[x], members[y]) for x, y in diagram.edges}


@settings(max_examples=100, deadline=None)
@given(adjacency=adjacencies())
def test_hasse_diagram_matches_networkx_transitive_reduction(adjacency):
    diagram, edges = our_hasse(adjacency)
    assert edges == networkx_hasse(adjacency)
    assert np.all(diagram.edges[:, 0] < diagram.edges[:, 1])  # topological numbering


@pytest.mark.parametrize("density", [0.01, 0.03, 0.2])
def test_hasse_and_closure_on_larger_graphs(density):
    rng = np.random.default_rng(11)
    adjacency = rng.random((80, 80)) < density
    _, edges = our_hasse(adjacency)
    assert edges == networkx_hasse(adjacency)
    closure, labels = reachability_closure(adjacency)
    graph = nx.from_numpy_array(adjacency.astype(int), create_using=nx.DiGraph)
    reach = nx.transitive_closure(graph, reflexive=True)
    for i in range(80):
        for j in range(80):
            assert closure[labels[i], labels[j]] == reach.has_edge(i, j)


@settings(max_examples=100, deadline=None)
@given(adjacency=adjacencies())
def test_dag_depth_of_hasse_diagram_is_the_longest_chain(adjacency):
    diagram = hasse_diagram(adjacency)
    depth = dag_depth(diagram.n_components, diagram.edges)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(diagram.n_components))
    graph.add_edges_from(diagram.edges.tolist())
    want = {}
    for node in nx.topological_sort(graph):  # longest chain ending at node
        want[node] = max((want[p] + 1 for p in graph.predecessors(node)), default=0)
    np.testing.assert_array_equal(depth, [want[node] for node in range(len(depth))])


def test_dag_depth_examples_and_errors():
    np.testing.assert_array_equal(dag_depth(5, [(0, 1), (1, 2), (0, 2), (0, 2), (3, 2)]),
                                  [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(dag_depth(3, []), [0, 0, 0])
    assert dag_depth(0, np.zeros((0, 2), dtype=int)).shape == (0,)
    with pytest.raises(ValueError, match="cycle"):
        dag_depth(3, [(0, 1), (1, 2), (2, 1)])
    for edges in ([(0, 3)], [(-1, 0)], [(0, 1, 2)], [(0.0, 1.0)]):
        with pytest.raises(ValueError, match="edges"):
            dag_depth(3, edges)
    for n_nodes in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_nodes"):
            dag_depth(n_nodes, [])


def test_lattice_modules_import_without_a_cycle():
    import ast
    import pathlib

    import latticeprune.lattice as package

    folder = pathlib.Path(package.__file__).parent
    graph = nx.DiGraph()
    for path in folder.glob("*.py"):
        graph.add_node(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                graph.add_edge(path.stem, node.module.split(".")[0])
    graph.remove_node("__init__")
    assert set(graph) >= {"adjacency", "centrality", "context", "reachability", "rule"}
    assert nx.is_directed_acyclic_graph(graph), list(nx.simple_cycles(graph))
    assert set(package.__all__) >= {
        "CENTRALITIES", "ORDERS", "HasseDiagram", "binary_adjacency", "centrality",
        "check_adjacency", "filtration_levels", "hasse_diagram", "irreducibility_persistence",
        "join_irreducible", "meet_irreducible", "reachability_closure", "removal_order",
        "structural_removals"}


def test_bitset_reductions_do_not_depend_on_block_size(monkeypatch):
    from latticeprune.lattice import reachability

    rng = np.random.default_rng(12)
    dag = np.triu(rng.random((90, 90)) < 0.1, 1)
    dag[40:45, 40:45] = True  # one strongly connected component among singletons
    results = []
    for block_bytes in (1 << 26, 8, 64):
        monkeypatch.setattr(reachability, "_BLOCK_BYTES", block_bytes)
        diagram = hasse_diagram(dag)
        results.append(
            (
                meet_irreducible(dag, "reachability"),
                join_irreducible(dag, "reachability"),
                diagram.edges,
                reachability_closure(dag)[0],
            )
        )
    for other in results[1:]:
        for want, got in zip(results[0], other):
            np.testing.assert_array_equal(got, want)


# -------------------------------------------------------------------------- centrality


def disconnected_weights():
    weights = np.zeros((7, 7))
    weights[0, 1], weights[1, 0], weights[1, 2] = 2.0, 1.0, 0.5  # 2 is dangling
    weights[3, 4], weights[4, 5], weights[5, 3] = 1.0, 3.0, 0.25  # a separate cycle
    return weights  # neuron 6 is isolated


@pytest.mark.parametrize("kind", CENTRALITIES)
@pytest.mark.parametrize("weights", [disconnected_weights(), np.zeros((4, 4)), np.eye(3)])
def test_centrality_is_a_finite_distribution_on_degenerate_graphs(kind, weights):
    values = centrality(weights, kind=kind)
    assert values.shape == (len(weights),)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)
    assert values.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(values, centrality(weights.copy(), kind=kind))


def test_centrality_of_all_zero_matrix_is_uniform():
    for kind in CENTRALITIES:
        np.testing.assert_allclose(centrality(np.zeros((5, 5)), kind), np.full(5, 0.2))


def _networkx_vector(result, n):
    return np.array([result[i] for i in range(n)])


@pytest.mark.parametrize("weights", ["connected", "disconnected"])
def test_pagerank_matches_networkx(weights):
    rng = np.random.default_rng(5)
    if weights == "connected":
        matrix = rng.random((40, 40)) * (rng.random((40, 40)) < 0.3)
        matrix[np.arange(40), (np.arange(40) + 1) % 40] = 1.5  # a Hamiltonian cycle
    else:
        matrix = disconnected_weights()
    graph = nx.from_numpy_array(matrix, create_using=nx.DiGraph)
    for damping in (0.85, 0.5):
        result = nx.pagerank(graph, alpha=damping, tol=1e-14, max_iter=10_000)
        want = _networkx_vector(result, len(matrix))
        np.testing.assert_allclose(centrality(matrix, damping=damping), want, atol=1e-6)


def test_eigenvector_matches_networkx_on_strongly_connected_graph():
    rng = np.random.default_rng(6)
    matrix = rng.random((30, 30)) * (rng.random((30, 30)) < 0.3)
    matrix[np.arange(30), (np.arange(30) + 1) % 30] = 1.0
    graph = nx.from_numpy_array(matrix, create_using=nx.DiGraph)
    result = nx.eigenvector_centrality(graph, weight="weight", tol=1e-14, max_iter=10_000)
    want = _networkx_vector(result, 30)
    np.testing.assert_allclose(centrality(matrix, "eigenvector"), want / want.sum(), atol=1e-8)


def test_degree_is_normalised_weighted_in_plus_out_degree():
    matrix = disconnected_weights()
    graph = nx.from_numpy_array(matrix, create_using=nx.DiGraph)
    want = _networkx_vector(dict(graph.degree(weight="weight")), len(matrix))
    np.testing.assert_allclose(centrality(matrix, "degree"), want / want.sum())


def test_pagerank_damping_zero_is_uniform():
    np.testing.assert_allclose(centrality(disconnected_weights(), damping=0.0), np.full(7, 1 / 7))


# ------------------------------------------------------- adjacency, filtration, persistence


@pytest.mark.parametrize("backbone", [0.0, 0.5, 0.9, 0.95, 0.99])
def test_binary_adjacency_keeps_the_top_fraction(backbone):
    rng = np.random.default_rng(1)
    strength = rng.random((60, 60))
    strength[rng.random((60, 60)) < 0.3] = 0.0  # absent connections
    existing = strength > 0
    adjacency = binary_adjacency(strength, backbone)
    assert adjacency.dtype == bool
    assert not adjacency[~existing].any()  # a zero strength is never an edge
    kept = adjacency.sum()
    assert abs(kept - (1 - backbone) * existing.sum()) <= 1
    if 0 < kept < existing.sum():
        assert strength[adjacency].min() > strength[existing & ~adjacency].max()


def test_binary_adjacency_density_on_dense_strengths():
    strength = np.random.default_rng(2).random((100, 100)) + 0.01
    assert binary_adjacency(strength, 0.95).mean() == pytest.approx(0.05, abs=1e-4)


def test_binary_adjacency_without_connections_and_with_ties():
    assert not binary_adjacency(np.zeros((3, 3)), 0.5).any()
    ties = np.ones((4, 4))
    assert binary_adjacency(ties, 0.9).all()  # ties at tau are all kept


def test_filtration_levels_default():
    levels = filtration_levels()
    assert levels.shape == (10,)
    assert levels[0] == pytest.approx(0.9) and levels[-1] == pytest.approx(0.99)
    assert np.all(np.diff(levels) > 0)
    ratio = (1 - levels[1:]) / (1 - levels[:-1])
    np.testing.assert_allclose(ratio, ratio[0])  # even steps in log-density
    np.testing.assert_allclose(filtration_levels(3, 0.5, 0.875), [0.5, 0.75, 0.875])
    np.testing.assert_array_equal(filtration_levels(1, 0.8, 0.9), [0.8])


def test_check_levels():
    np.testing.assert_array_equal(check_levels(None), filtration_levels())
    np.testing.assert_array_equal(check_levels(0.5), [0.5])
    levels = check_levels([0, 0.25, 0.999])
    assert levels.dtype == np.float64
    np.testing.assert_array_equal(levels, [0, 0.25, 0.999])
    for bad in ([], [1.0], [-0.5, 0.5], [[0.5]], ["a"], [np.nan], "0.5x"):
        with pytest.raises(ValueError, match=r"`levels`.*\[0, 1\)"):
            check_levels(bad)


@pytest.mark.parametrize("order", ORDERS)
def test_persistence_is_the_fraction_of_irreducible_levels(order):
    rng = np.random.default_rng(4)
    strength = rng.random((40, 40))
    levels = filtration_levels(5)
    persistence = irreducibility_persistence(strength, levels, order=order)
    assert np.all((persistence >= 0) & (persistence <= 1))
    np.testing.assert_allclose(persistence * 5, np.round(persistence * 5))
    counts = sum(meet_irreducible(strength >= np.quantile(strength, q), order) for q in levels)
    np.testing.assert_allclose(persistence, counts / 5)
    assert 0 < persistence.mean() < 1
    single = irreducibility_persistence(strength, [0.9], order=order)
    np.testing.assert_array_equal(single, meet_irreducible(binary_adjacency(strength, 0.9), order))


# --------------------------------------------------------------------------- pruning rule


@st.composite
def pruning_inputs(draw):
    n = draw(st.integers(1, 7))
    strength = draw(
        arrays(float, (n, n), elements=st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.0, 0.25]))
    )
    protected = draw(arrays(bool, n))
    values = draw(arrays(float, n, elements=st.sampled_from([0.0, 0.1, 0.2, 0.5])))
    return strength, protected, values


@settings(max_examples=150, deadline=None)
@given(inputs=pruning_inputs())
def test_removal_order_binary(inputs):
    strength, protected, values = inputs
    n = len(strength)
    order = removal_order(strength, protected, values)
    existing = np.flatnonzero(strength.ravel() > 0)
    assert sorted(order.tolist()) == existing.tolist()  # a permutation of existing ones
    source = order // n
    first = ~protected[source]
    n_first = first.sum()
    assert first[:n_first].all() and not first[n_first:].any()  # unprotected rows first
    flat = strength.ravel()[order]
    key_first = values[source[:n_first]] * flat[:n_first]
    assert np.all(np.diff(key_first) >= 0)
    assert np.all(np.diff(flat[n_first:]) >= 0)
    # Deterministic ties: equal (key, strength) pairs come in increasing flat index.
    for group, primary in ((slice(0, n_first), key_first), (slice(n_first, None), flat[n_first:])):
        triples = list(zip(primary, flat[group], order[group]))
        assert triples == sorted(triples)
    np.testing.assert_array_equal(order, removal_order(strength, protected, values))


@settings(max_examples=100, deadline=None)
@given(inputs=pruning_inputs())
def test_removal_order_graded_is_lexicographic(inputs):
    strength, protected, values = inputs
    n = len(strength)
    persistence = np.linspace(0, 1, n)[::-1] * protected  # some ties at 0
    order = removal_order(strength, persistence, values, graded=True)
    assert sorted(order.tolist()) == np.flatnonzero(strength.ravel() > 0).tolist()
    keys = [(persistence[i // n], values[i // n], strength.ravel()[i], i) for i in order]
    assert keys == sorted(keys)


def test_removal_order_ties_follow_flat_index():
    strength = np.ones((3, 3))
    order = removal_order(strength, np.array([False, True, False]), np.ones(3))
    np.testing.assert_array_equal(order, [0, 1, 2, 6, 7, 8, 3, 4, 5])


def test_removal_order_prefers_low_centrality_times_strength():
    strength = np.array([[0.0, 4.0], [1.0, 0.0]])
    order = removal_order(strength, np.array([False, False]), np.array([0.1, 1.0]))
    np.testing.assert_array_equal(order, [1, 2])  # 0.1 * 4 < 1.0 * 1


@settings(max_examples=100, deadline=None)
@given(inputs=pruning_inputs(), quantile=st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]))
def test_structural_removals_are_exactly_low_centrality_unprotected_rows(inputs, quantile):
    strength, protected, values = inputs
    n = len(strength)
    threshold = np.quantile(values, quantile)
    want = [
        i * n + j
        for i in range(n)
        for j in range(n)
        if strength[i, j] > 0 and not protected[i] and values[i] < threshold
    ]
    got = structural_removals(strength, protected, values, quantile)
    assert got.tolist() == want


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("func", [meet_irreducible, join_irreducible, hasse_diagram])
@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 3)), np.zeros(4), np.zeros((2, 2, 2)), np.array([[0, 2], [1, 0]]),
     np.array([[0, np.nan], [1, 0]]), np.array([[0, 0.5], [1, 0]]), np.array([["a"]])],
)
def test_invalid_adjacency(func, bad):
    with pytest.raises(ValueError, match="adjacency"):
        func(bad)


@pytest.mark.parametrize("func", [meet_irreducible, join_irreducible])
def test_unknown_order(func):
    with pytest.raises(ValueError, match=r"`order`.*\['context', 'reachability'\]"):
        func(np.zeros((2, 2)), order="lattice")
    with pytest.raises(ValueError, match="order"):
        irreducibility_persistence(np.ones((2, 2)), [0.5], order="poset")


def test_centrality_errors():
    with pytest.raises(ValueError, match=r"`kind`.*pagerank.*degree.*eigenvector"):
        centrality(np.ones((2, 2)), kind="betweenness")
    for damping in (1.0, -0.1, 1.5, "0.85", True):
        with pytest.raises(ValueError, match="damping"):
            centrality(np.ones((2, 2)), damping=damping)
    for bad in (-np.ones((2, 2)), np.full((2, 2), np.inf), np.ones((2, 3))):
        with pytest.raises(ValueError, match="weights"):
            centrality(bad)


def test_adjacency_and_filtration_errors():
    for backbone in (1.0, -0.1, 2, "0.9", None):
        with pytest.raises(ValueError, match="backbone"):
            binary_adjacency(np.ones((2, 2)), backbone)
    for strength in (-np.ones((2, 2)), np.ones((2, 3)), np.array([[np.nan, 1], [1, 1]])):
        with pytest.raises(ValueError, match="strength"):
            binary_adjacency(strength, 0.5)
    for n_levels in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_levels"):
            filtration_levels(n_levels)
    with pytest.raises(ValueError, match="low"):
        filtration_levels(5, low=0.99, high=0.9)
    with pytest.raises(ValueError, match="high"):
        filtration_levels(5, low=0.5, high=1.0)
    for levels in ([], [1.0], [-0.5, 0.5]):
        with pytest.raises(ValueError, match="levels"):
            irreducibility_persistence(np.ones((2, 2)), levels)


def test_rule_errors():
    strength, protected, values = np.ones((3, 3)), np.zeros(3, dtype=bool), np.ones(3)
    with pytest.raises(ValueError, match="protected"):
        removal_order(strength, np.zeros(2, dtype=bool), values)
    with pytest.raises(ValueError, match="graded=True"):
        removal_order(strength, np.array([0.5, 0.0, 1.0]), values)
    with pytest.raises(ValueError, match="protected"):
        removal_order(strength, np.array([0.5, 0.0, 1.5]), values, graded=True)
    with pytest.raises(ValueError, match="centrality"):
        removal_order(strength, protected, -values)
    with pytest.raises(ValueError, match="centrality"):
        removal_order(strength, protected, np.ones(4))
    with pytest.raises(ValueError, match="graded"):
        removal_order(strength, protected, values, graded="yes")
    with pytest.raises(ValueError, match="strength"):
        removal_order(-strength, protected, values)
    for quantile in (-0.1, 1.5, None):
        with pytest.raises(ValueError, match="centrality_quantile"):
            structural_removals(strength, protected, values, quantile)
