"""Brute-force reference for the lattice engine (small n only, n <= 8).

Everything here is enumeration, written to be obviously correct rather than fast:
build every element of the lattice explicitly, order them by inclusion, count covers.
An element is meet-irreducible iff it has exactly one upper cover, join-irreducible
iff it has exactly one lower cover.  Sets are Python ints used as bitmasks.
"""

from itertools import combinations


def _subsets(n):
    for size in range(n + 1):
        for chosen in combinations(range(n), size):
            yield chosen


def _is_subset(a, b):
    return a & b == a


def _upper_covers(element, elements):
    above = [y for y in elements if y != element and _is_subset(element, y)]
    return [y for y in above if not any(z != y and _is_subset(z, y) for z in above)]


def _lower_covers(element, elements):
    below = [y for y in elements if y != element and _is_subset(y, element)]
    return [y for y in below if not any(z != y and _is_subset(y, z) for z in below)]


# ----------------------------------------------------------------------------- context


def concept_extents(adjacency):
    """Extents of all formal concepts; objects g, attributes m, g I m iff adjacency[m][g]."""
    n = len(adjacency)
    everything = (1 << n) - 1

    def extent(attributes):  # objects having every attribute
        result = everything
        for m in attributes:
            result &= sum(1 << g for g in range(n) if adjacency[m][g])
        return result

    def intent(objects):  # attributes shared by every object
        return [m for m in range(n) if all(adjacency[m][g] for g in range(n) if objects >> g & 1)]

    # Every concept is (B', B'') for B its intent, so closing every subset of M finds all.
    return sorted({extent(intent(extent(chosen))) for chosen in _subsets(n)})


def context_meet_irreducible(adjacency):
    """Attribute concept of every neuron m has exactly one upper cover."""
    n = len(adjacency)
    extents = concept_extents(adjacency)
    verdict = []
    for m in range(n):
        attribute_extent = sum(1 << g for g in range(n) if adjacency[m][g])
        assert attribute_extent in extents
        verdict.append(len(_upper_covers(attribute_extent, extents)) == 1)
    return verdict


def context_join_irreducible(adjacency):
    """Object concept of every neuron g has exactly one lower cover."""
    n = len(adjacency)
    extents = concept_extents(adjacency)
    verdict = []
    for g in range(n):
        driving = [m for m in range(n) if adjacency[m][g]]  # g' (intent of g)
        object_extent = (1 << n) - 1  # g'' = objects having every attribute of g'
        for m in driving:
            object_extent &= sum(1 << h for h in range(n) if adjacency[m][h])
        assert object_extent in extents
        verdict.append(len(_lower_covers(object_extent, extents)) == 1)
    return verdict


# ------------------------------------------------------------------------ reachability


def reachability(adjacency):
    """reach[i][j]: j reachable from i (reflexive), by repeated relaxation."""
    n = len(adjacency)
    reach = [[i == j or bool(adjacency[i][j]) for j in range(n)] for i in range(n)]
    for k in range(n):  # Warshall
        for i in range(n):
            for j in range(n):
                if reach[i][k] and reach[k][j]:
                    reach[i][j] = True
    return reach


def components(adjacency):
    """Strongly connected components as sorted tuples of neurons, plus each neuron's one."""
    n = len(adjacency)
    reach = reachability(adjacency)
    classes = sorted({tuple(j for j in range(n) if reach[i][j] and reach[j][i]) for i in range(n)})
    owner = [next(c for c, members in enumerate(classes) if i in members) for i in range(n)]
    return classes, owner


def _macneille(adjacency):
    """Elements (component indices), x <= y relation, all cuts, and the principal cuts."""
    reach = reachability(adjacency)
    classes, owner = components(adjacency)
    k = len(classes)
    leq = [[reach[classes[x][0]][classes[y][0]] for y in range(k)] for x in range(k)]

    def upper(subset):
        return [y for y in range(k) if all(leq[s][y] for s in subset)]

    def lower(subset):
        return sum(1 << z for z in range(k) if all(leq[z][u] for u in subset))

    cuts = sorted({lower(upper(chosen)) for chosen in _subsets(k)})
    principal = [lower([x]) for x in range(k)]
    assert all(p in cuts for p in principal)
    return owner, cuts, principal


def reachability_meet_irreducible(adjacency):
    """Principal cut of every neuron's component has exactly one upper cover."""
    owner, cuts, principal = _macneille(adjacency)
    return [len(_upper_covers(principal[c], cuts)) == 1 for c in owner]


def reachability_join_irreducible(adjacency):
    """Principal cut of every neuron's component has exactly one lower cover."""
    owner, cuts, principal = _macneille(adjacency)
    return [len(_lower_covers(principal[c], cuts)) == 1 for c in owner]


ORACLES = {
    ("context", "meet"): context_meet_irreducible,
    ("context", "join"): context_join_irreducible,
    ("reachability", "meet"): reachability_meet_irreducible,
    ("reachability", "join"): reachability_join_irreducible,
}


# ---------------------------------------------- formula reference for medium n (no lattice)


def context_meet_irreducible_by_sets(adjacency):
    """docs/methods/lattice.md 3(a) literally, with Python sets: m' != meet of strict supersets."""
    n = len(adjacency)
    everything = frozenset(range(n))
    extents = [frozenset(g for g in range(n) if adjacency[m][g]) for m in range(n)]
    verdict = []
    for mine in extents:
        intersection = everything
        for other in extents:
            if mine < other:
                intersection = intersection & other
        verdict.append(intersection != mine)
    return verdict
