"""Tests of the moduli-regularisation core: spaces, inhibitors, penalty (docs/methods/moduli.md 1-4)."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latticeprune.moduli import (
    INHIBITOR_NAMES,
    SPACE_NAMES,
    Torus,
    get_inhibitor,
    get_space,
    invert,
    moduli_penalty,
    penalty_from_points,
    penalty_matrix,
    permute,
)

L = 10.0  # side of the flat spaces
RADIUS = 5.0  # radius of the round spaces

# Diameters, stated independently of the implementation:
# - circle, sphere: antipodal points, half a great circle = pi * 5.
# - torus^k: every wrapped coordinate gap is at most L / 2, so sqrt(k) * L / 2.
# - klein: L / sqrt(2).  For reduced a, b with x-gap u: if |u| <= L/2 the
#   vertical translate of b with y-gap <= L/2 is within sqrt(2) L / 2; else the
#   glide image (b_x +- L, L - b_y + jL) has x-gap L - |u| < L/2 and y-gap <= L/2
#   for the right j.  Attained by (0, 0), (L/2, L/2): all images of (L/2, L/2)
#   are (L/2 + iL, +-L/2 + jL).
# - standard: the discrete metric, 1.
DIAMETERS = {
    "circle": math.pi * RADIUS,
    "sphere": math.pi * RADIUS,
    "torus": math.sqrt(2) * L / 2,
    "torus6": math.sqrt(6) * L / 2,
    "klein": L / math.sqrt(2),
    "standard": 1.0,
}
POINT_DIMS = {"circle": 2, "sphere": 3, "torus": 2, "torus6": 6, "klein": 2, "standard": 1}
TRAINABLE = [name for name in SPACE_NAMES if name != "standard"]
TOL = 1e-9
HYPOTHESIS = settings(max_examples=60, deadline=None)

coordinate = st.floats(-25.0, 25.0, allow_nan=False, allow_infinity=False)
in_square = st.floats(0.0, L, allow_nan=False, exclude_max=True)


def nonzero_vector(dim):
    return st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=dim, max_size=dim).filter(
        lambda v: np.linalg.norm(v) > 1e-3
    )


def point_strategy(name):
    """Points anywhere the space accepts them (outside the fundamental domain too)."""
    if name in ("circle", "sphere"):
        return nonzero_vector(POINT_DIMS[name])
    if name == "standard":
        return st.integers(0, 3).map(lambda label: [float(label)])
    dim = POINT_DIMS[name]
    return st.lists(coordinate, min_size=dim, max_size=dim)


# ----------------------------------------------------------------------------- spaces


def test_registry_names_and_scales():
    assert set(SPACE_NAMES) == set(DIAMETERS)
    assert get_space("torus") == Torus(dim=2, side=10.0)
    assert get_space("torus6") == Torus(dim=6, side=10.0)
    assert get_space("torus", dim=3).point_dim == 3
    assert get_space("klein").side == L
    assert get_space("circle").radius == RADIUS and get_space("sphere").radius == RADIUS
    space = get_space("klein")
    assert get_space(space) is space


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_space_attributes(name):
    space = get_space(name)
    assert space.point_dim == POINT_DIMS[name]
    assert space.diameter == pytest.approx(DIAMETERS[name])
    assert space.trainable is (name != "standard")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_shape_domain_and_seed(name):
    space = get_space(name)
    points = space.sample(50, random_state=3)
    assert points.shape == (50, POINT_DIMS[name])
    np.testing.assert_array_equal(points, space.sample(50, random_state=3))
    if name in ("circle", "sphere"):
        np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0)
    elif name == "standard":
        np.testing.assert_array_equal(points[:, 0], np.arange(50))
    else:
        assert points.min() >= 0 and points.max() < L
        assert not np.array_equal(points, space.sample(50, random_state=4))
    assert space.sample(0, 0).shape == (0, POINT_DIMS[name])


@pytest.mark.parametrize("name", ["circle", "sphere", "torus", "torus6", "klein"])
def test_sample_is_uniform_by_moments(name):
    points = get_space(name).sample(20000, random_state=0)
    if name in ("circle", "sphere"):
        # Uniform directions: mean 0, E[x_m^2] = 1 / dim.
        np.testing.assert_allclose(points.mean(axis=0), 0.0, atol=0.02)
        np.testing.assert_allclose((points**2).mean(axis=0), 1 / points.shape[1], atol=0.02)
    else:
        # Uniform on [0, L): mean L / 2, variance L^2 / 12.
        np.testing.assert_allclose(points.mean(axis=0), L / 2, atol=0.1)
        np.testing.assert_allclose(points.var(axis=0), L**2 / 12, rtol=0.03)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_metric_symmetric_zero_diagonal_bounded(name):
    space = get_space(name)
    a = space.sample(40, random_state=0)
    b = space.sample(25, random_state=1)
    assert space.pairwise(a, b).shape == (40, 25)
    D = space.pairwise(a)
    np.testing.assert_allclose(D, D.T, atol=TOL)
    np.testing.assert_array_equal(np.diag(D), 0.0)
    assert D.min() >= 0
    assert D.max() <= DIAMETERS[name] + TOL
    np.testing.assert_allclose(space.pairwise(a, b), space.pairwise(b, a).T, atol=TOL)


@pytest.mark.parametrize(
    "name, a, b",
    [
        ("circle", [1, 0], [-1, 0]),
        ("sphere", [0, 0, 1], [0, 0, -1]),
        ("torus", [0, 0], [5, 5]),
        ("torus6", [0] * 6, [5] * 6),
        ("klein", [0, 0], [5, 5]),
        ("standard", [0], [1]),
    ],
)
def test_diameter_is_attained(name, a, b):
    distance = get_space(name).pairwise([a], [b])[0, 0]
    assert distance == pytest.approx(DIAMETERS[name], abs=1e-12)


@pytest.mark.parametrize("name", SPACE_NAMES)
@HYPOTHESIS
@given(data=st.data())
def test_triangle_inequality_and_metric_axioms(name, data):
    strategy = point_strategy(name)
    points = np.array([data.draw(strategy) for _ in range(3)], dtype=float)
    D = get_space(name).pairwise(points)
    np.testing.assert_allclose(D, D.T, atol=TOL)
    np.testing.assert_allclose(np.diag(D), 0.0, atol=TOL)
    assert D.max() <= DIAMETERS[name] + TOL
    for i, j, k in itertools.permutations(range(3)):
        assert D[i, k] <= D[i, j] + D[j, k] + TOL


def test_round_metrics_match_arccos_and_angles():
    circle, sphere = get_space("circle"), get_space("sphere")
    for space in (circle, sphere):
        a, b = space.sample(30, 0), space.sample(20, 1)
        expected = RADIUS * np.arccos(np.clip(a @ b.T, -1, 1))
        np.testing.assert_allclose(space.pairwise(a, b), expected, atol=1e-7)
    theta = np.array([0.0, 0.5, 3.0, 6.0])
    points = np.column_stack([np.cos(theta), np.sin(theta)])
    gap = np.abs(theta[:, None] - theta[None, :]) % (2 * np.pi)
    expected = RADIUS * np.minimum(gap, 2 * np.pi - gap)
    np.testing.assert_allclose(circle.pairwise(points), expected, atol=1e-12)
    # A quarter turn is a quarter of the circumference 2 pi 5.
    assert circle.pairwise([[1, 0]], [[0, 1]])[0, 0] == pytest.approx(2 * np.pi * 5 / 4)


@pytest.mark.parametrize("name", ["circle", "sphere"])
@HYPOTHESIS
@given(data=st.data())
def test_round_metrics_invariant_under_rotation_and_scaling(name, data):
    # Points are directions: positive scaling is the identification; rotations
    # are isometries of the round metric.
    dim = POINT_DIMS[name]
    a = np.array(data.draw(nonzero_vector(dim)))
    b = np.array(data.draw(nonzero_vector(dim)))
    scale = data.draw(st.floats(0.1, 10.0))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    space = get_space(name)
    d = space.pairwise([a], [b])[0, 0]
    assert space.pairwise([rotation @ a], [rotation @ b])[0, 0] == pytest.approx(d, abs=1e-7)
    assert space.pairwise([scale * a], [b])[0, 0] == pytest.approx(d, abs=1e-7)


def test_torus_hand_values_and_brute_force():
    torus = get_space("torus")
    # Gaps (8, 7) wrap to (2, 3): sqrt(4 + 9).
    assert torus.pairwise([[1, 1]], [[9, 8]])[0, 0] == pytest.approx(math.sqrt(13))
    a, b = torus.sample(30, 0), torus.sample(30, 1)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=2))) * L
    images = b[:, None, :] + shifts[None, :, :]  # (n_b, 9, 2)
    brute = np.linalg.norm(a[:, None, None, :] - images[None], axis=-1).min(axis=-1)
    np.testing.assert_allclose(torus.pairwise(a, b), brute, atol=1e-12)


@pytest.mark.parametrize("name", ["torus", "torus6"])
@HYPOTHESIS
@given(data=st.data())
def test_torus_invariant_under_every_period(name, data):
    torus = get_space(name)
    k = torus.dim
    a = np.array(data.draw(st.lists(in_square, min_size=k, max_size=k)))
    b = np.array(data.draw(st.lists(in_square, min_size=k, max_size=k)))
    d = torus.pairwise([a], [b])[0, 0]
    for m in range(k):
        period = np.zeros(k)
        period[m] = L
        assert torus.pairwise([a + period], [b])[0, 0] == pytest.approx(d, abs=1e-9)
        assert torus.pairwise([a], [b - period])[0, 0] == pytest.approx(d, abs=1e-9)
    shift = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=k, max_size=k))) * L
    assert torus.pairwise([a + shift], [b])[0, 0] == pytest.approx(d, abs=1e-9)


def glide(point, times=1):
    """g(x, y) = (x + L, L - y), applied ``times`` times (negative: inverse)."""
    x, y = point
    for _ in range(abs(times)):
        x, y = (x + L, L - y) if times > 0 else (x - L, L - y)
    return np.array([x, y])


def test_klein_hand_values():
    klein = get_space("klein")
    # (9, 9) glides to (9 - 10, 10 - 9) = (-1, 1): distance 2 (the torus would give sqrt(8)).
    assert klein.pairwise([[1, 1]], [[9, 9]])[0, 0] == pytest.approx(2.0)
    # (9, 2) glides to (-1, 8), translated to (-1, -2): sqrt(2^2 + 4^2) = sqrt(20).
    assert klein.pairwise([[1, 2]], [[9, 2]])[0, 0] == pytest.approx(math.sqrt(20))
    # (9, 2) -> (-1, -2) vs (1, 1): sqrt(4 + 9).
    assert klein.pairwise([[1, 1]], [[9, 2]])[0, 0] == pytest.approx(math.sqrt(13))
    # Identified boundary points are at distance 0.
    assert klein.pairwise([[0, 3]], [[L, L - 3]])[0, 0] == pytest.approx(0, abs=1e-12)
    assert klein.pairwise([[4, 0]], [[4, L]])[0, 0] == pytest.approx(0, abs=1e-12)


def test_klein_matches_brute_force_over_the_group():
    klein = get_space("klein")
    rng = np.random.default_rng(0)
    a = rng.uniform(-2 * L, 3 * L, size=(15, 2))
    b = rng.uniform(-2 * L, 3 * L, size=(15, 2))
    a[:8], b[:8] = klein.sample(8, 1), klein.sample(8, 2)
    brute = np.full((15, 15), np.inf)
    for i in range(-8, 9):
        for j in range(-8, 9):
            images = np.array([glide(p, i) + [0, j * L] for p in b])
            dist = np.linalg.norm(a[:, None, :] - images[None, :, :], axis=-1)
            brute = np.minimum(brute, dist)
    np.testing.assert_allclose(klein.pairwise(a, b), brute, atol=1e-9)


@HYPOTHESIS
@given(
    a=st.tuples(in_square, in_square),
    b=st.tuples(in_square, in_square),
    glides=st.integers(-3, 3),
    lifts=st.integers(-3, 3),
)
def test_klein_invariant_under_identifications(a, b, glides, lifts):
    klein = get_space("klein")
    d = klein.pairwise([a], [b])[0, 0]
    moved = glide(b, glides) + [0, lifts * L]  # any element g^i t^j of the group
    assert klein.pairwise([a], [moved])[0, 0] == pytest.approx(d, abs=1e-9)
    assert klein.pairwise([glide(a, 1)], [b])[0, 0] == pytest.approx(d, abs=1e-9)
    assert klein.pairwise([a], [np.add(b, [0, L])])[0, 0] == pytest.approx(d, abs=1e-9)


@pytest.mark.parametrize("name", ["torus", "klein"])
def test_flat_reduce_images_and_nearest_image(name):
    space = get_space(name)
    rng = np.random.default_rng(5)
    a = rng.uniform(-2 * L, 3 * L, size=(40, 2))
    b = rng.uniform(-2 * L, 3 * L, size=(40, 2))
    reduced = space.reduce(a)
    assert reduced.shape == (40, 2) and reduced.min() >= 0 and reduced.max() <= L
    np.testing.assert_allclose(np.diag(space.pairwise(a, reduced)), 0, atol=1e-9)
    images = space.images(b)
    assert images.shape == (9, 40, 2)
    np.testing.assert_array_equal(images[4], b)  # the identity
    for image in images:  # every image is the same point of the space
        np.testing.assert_allclose(np.diag(space.pairwise(b, image)), 0, atol=1e-9)
    nearest = space.nearest_image(a, b)
    np.testing.assert_allclose(np.diag(space.pairwise(nearest, b)), 0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(nearest - reduced, axis=1),
                               np.diag(space.pairwise(a, b)), atol=1e-9)


def test_nearest_image_hand_values():
    # Klein: (9, 9) glides to (-1, 1), at distance 2 from (1, 1); the torus wraps to (-1, -1).
    np.testing.assert_allclose(get_space("klein").nearest_image([[1, 1]], [[9, 9]]), [[-1, 1]])
    np.testing.assert_allclose(get_space("torus").nearest_image([[1, 1]], [[9, 9]]), [[-1, -1]])
    np.testing.assert_allclose(get_space("klein").reduce([[-1, 1], [3, 12]]), [[9, 9], [3, 2]])
    assert get_space("torus", dim=3).images(np.zeros((2, 3))).shape == (27, 2, 3)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        get_space("klein").nearest_image(np.ones((2, 3)), np.ones((2, 3)))


def test_standard_is_discrete_metric():
    standard = get_space("standard")
    labels = standard.sample(4, random_state=0)
    np.testing.assert_array_equal(standard.pairwise(labels), 1 - np.eye(4))


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_torch_pairwise_matches_numpy(name):
    space = get_space(name)
    a, b = space.sample(12, 0), space.sample(7, 1)
    result = space.pairwise(torch.tensor(a), torch.tensor(b))
    assert isinstance(result, torch.Tensor) and result.dtype == torch.float64
    np.testing.assert_allclose(result.numpy(), space.pairwise(a, b), atol=1e-12)


# ------------------------------------------------------------------------- inhibitors


def test_inhibitor_hand_values():
    d = np.array([0.0, 1.0, 2.0, 2.5, 5.0])
    np.testing.assert_allclose(get_inhibitor("square")(d), [0, 1, 4, 6.25, 25])
    # gauss: 100 exp(-d^2/3); at 1: 100 e^{-1/3} = 71.6531310573789.
    np.testing.assert_allclose(
        get_inhibitor("gauss")(d[:2]), [100.0, 71.6531310573789], rtol=1e-12
    )
    assert get_inhibitor("gauss")(2.0) == pytest.approx(100 * math.exp(-4 / 3))
    # DoG: 100 (exp(-d^2/5) - exp(-4 d^2)); at 0: 100 (1 - 1) = 0;
    # at 1: 100 (e^{-0.2} - e^{-4}) = 100 (0.818730753077982 - 0.018315638888734).
    dog = get_inhibitor("DoG")
    assert dog(0.0) == 0.0
    assert dog(1.0) == pytest.approx(100 * (0.818730753077982 - 0.018315638888734), rel=1e-12)
    assert dog(2.0) == pytest.approx(100 * (math.exp(-0.8) - math.exp(-16)))
    # ripple: 100 exp(-d/5) cos^2(pi d/5); cos(pi/5) = (1 + sqrt 5)/4.
    ripple = get_inhibitor("ripple")
    assert ripple(0.0) == pytest.approx(100.0)
    assert ripple(1.0) == pytest.approx(100 * math.exp(-0.2) * ((1 + math.sqrt(5)) / 4) ** 2)
    assert ripple(2.5) == pytest.approx(0.0, abs=1e-12)  # first zero: cos(pi/2)
    assert ripple(5.0) == pytest.approx(100 * math.exp(-1))  # cos^2(pi) = 1
    assert ripple(10.0) == pytest.approx(100 * math.exp(-2))
    # Decaying: the envelope bounds it.
    grid = np.linspace(0, 20, 401)
    assert np.all(ripple(grid) <= 100 * np.exp(-grid / 5) + 1e-12)
    assert np.all(ripple(grid) >= 0)


@pytest.mark.parametrize("name", INHIBITOR_NAMES)
def test_inhibitor_torch_matches_numpy(name):
    d = np.linspace(0, 12, 50)
    inhibitor = get_inhibitor(name)
    result = inhibitor(torch.tensor(d))
    assert isinstance(result, torch.Tensor)
    np.testing.assert_allclose(result.numpy(), inhibitor(d), rtol=1e-12, atol=1e-12)


def test_invert():
    R = np.array([[0.0, 2.0], [3.0, 1.0]])
    np.testing.assert_array_equal(invert(R), [[3, 1], [0, 2]])
    tensor = invert(torch.tensor(R))
    assert tensor.shape == (2, 2)
    np.testing.assert_array_equal(tensor.numpy(), [[3, 1], [0, 2]])


def test_permute_keeps_multiset_and_is_seeded():
    R = np.arange(36.0).reshape(6, 6)
    shuffled = permute(R, random_state=0)
    assert shuffled.shape == R.shape
    np.testing.assert_array_equal(np.sort(shuffled, axis=None), np.sort(R, axis=None))
    assert not np.array_equal(shuffled, R)
    np.testing.assert_array_equal(shuffled, permute(R, random_state=0))
    assert not np.array_equal(shuffled, permute(R, random_state=1))
    tensor = permute(torch.tensor(R), random_state=0)
    np.testing.assert_array_equal(tensor.numpy(), shuffled)


# ----------------------------------------------------------------------- penalty matrix


def dog_by_hand(d):
    return 100 * (np.exp(-(d**2) / 5) - np.exp(-4 * d**2))


def test_penalty_matrix_default_is_inverted_dog_on_torus():
    R, points = penalty_matrix(20, random_state=0, return_points=True)
    assert R.shape == (20, 20) and points.shape == (20, 2)
    raw = dog_by_hand(get_space("torus").pairwise(points))
    np.testing.assert_allclose(R, raw.max() - raw, atol=1e-12)
    np.testing.assert_allclose(R, R.T)
    # DoG(0) = 0, so every diagonal entry of the inverted matrix is max(raw).
    np.testing.assert_allclose(np.diag(R), raw.max())
    assert R.min() == pytest.approx(0.0)


@pytest.mark.parametrize("moduli", TRAINABLE)
@pytest.mark.parametrize("inhibitor", INHIBITOR_NAMES)
def test_penalty_matrix_every_space_and_inhibitor(moduli, inhibitor):
    R, points = penalty_matrix(
        15, moduli, inhibitor, invert=False, random_state=1, return_points=True
    )
    expected = get_inhibitor(inhibitor)(get_space(moduli).pairwise(points))
    np.testing.assert_allclose(R, expected, atol=1e-12)
    assert R.min() >= 0  # every inhibitor is non-negative
    inverted = penalty_matrix(15, moduli, inhibitor, invert=True, random_state=1)
    np.testing.assert_allclose(inverted, R.max() - R, atol=1e-12)


def test_penalty_matrix_seeds():
    same = penalty_matrix(12, "klein", "gauss", random_state=5)
    np.testing.assert_array_equal(same, penalty_matrix(12, "klein", "gauss", random_state=5))
    assert not np.allclose(same, penalty_matrix(12, "klein", "gauss", random_state=6))


def test_penalty_matrix_permute():
    plain = penalty_matrix(10, random_state=2)
    shuffled = penalty_matrix(10, permute=True, random_state=2)
    assert shuffled.shape == (10, 10)
    np.testing.assert_array_equal(np.sort(shuffled, axis=None), np.sort(plain, axis=None))
    assert not np.array_equal(shuffled, plain)
    assert not np.allclose(shuffled, shuffled.T)  # no longer symmetric
    np.testing.assert_array_equal(shuffled, penalty_matrix(10, permute=True, random_state=2))


@pytest.mark.parametrize("inhibitor", INHIBITOR_NAMES)
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=2)))
def test_standard_penalty_is_all_ones(inhibitor, flags):
    invert_flag, permute_flag = flags
    R = penalty_matrix(7, "standard", inhibitor, invert_flag, permute_flag, random_state=0)
    np.testing.assert_array_equal(R, np.ones((7, 7)))


def test_penalty_matrix_space_params_and_two_embeddings():
    _, points = penalty_matrix(5, "torus", dim=3, return_points=True, random_state=0)
    assert points.shape == (5, 3)
    _, points = penalty_matrix(5, "torus6", return_points=True, random_state=0)
    assert points.shape == (5, 6)
    R, (pre, post) = penalty_matrix(
        6, "circle", "gauss", invert=False, two_embeddings=True, return_points=True,
        random_state=0,
    )
    gauss = 100 * np.exp(-get_space("circle").pairwise(pre, post) ** 2 / 3)
    np.testing.assert_allclose(R, gauss, atol=1e-12)  # R[i, j]: pre i, post j
    assert not np.allclose(R, R.T)


# ----------------------------------------------------------------------- torch penalty


def penalty_by_loop(weight, R, n_gates, norm):
    n = R.shape[0]
    total = 0.0
    for g in range(n_gates):
        for i in range(n):  # presynaptic
            for j in range(n):  # postsynaptic
                total += R[i, j] * abs(weight[g * n + j, i]) ** norm
    return total / (n_gates * n * n)


@pytest.mark.parametrize("n_gates", [1, 3, 4])
@pytest.mark.parametrize("norm", [1, 2])
def test_moduli_penalty_value_and_orientation(n_gates, norm):
    rng = np.random.default_rng(n_gates)
    R = rng.uniform(0, 5, size=(4, 4))  # deliberately not symmetric
    weight = rng.standard_normal((n_gates * 4, 4))
    value = moduli_penalty(torch.tensor(weight), R, n_gates=n_gates, norm=norm)
    assert value.item() == pytest.approx(penalty_by_loop(weight, R, n_gates, norm), rel=1e-12)
    # A single pair (0 -> 1) selects W[g*n + 1, 0] in every gate block.
    single = np.zeros((4, 4))
    single[0, 1] = 1.0
    picked = np.abs(weight[[g * 4 + 1 for g in range(n_gates)], 0]) ** norm
    value = moduli_penalty(torch.tensor(weight), single, n_gates=n_gates, norm=norm)
    assert value.item() == pytest.approx(picked.sum() / weight.size, rel=1e-12)


def test_weight_hh_orientation_matches_torch_rnn():
    # W_hh[j, i] carries unit i to unit j: put a weight at [1, 0], start at e_0.
    rnn = torch.nn.RNN(1, 3, bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_ih_l0.zero_()
        rnn.weight_hh_l0.zero_()
        rnn.weight_hh_l0[1, 0] = 1.0
    _, h = rnn(torch.zeros(1, 1, 1), torch.tensor([[[1.0, 0.0, 0.0]]]))
    np.testing.assert_allclose(h[0, 0].detach().numpy(), [0.0, math.tanh(1.0), 0.0], atol=1e-7)


@pytest.mark.parametrize("n_gates", [1, 3, 4])
@pytest.mark.parametrize("norm", [1, 2])
def test_moduli_penalty_gradcheck(n_gates, norm):
    generator = torch.Generator().manual_seed(n_gates * 10 + norm)
    n = 5
    R = torch.rand(n, n, generator=generator, dtype=torch.float64) * 10
    magnitude = 0.2 + torch.rand(n_gates * n, n, generator=generator, dtype=torch.float64)
    sign = torch.randint(0, 2, (n_gates * n, n), generator=generator) * 2 - 1
    weight = (magnitude * sign).requires_grad_()  # |W| >= 0.2: away from the kink at 0
    assert torch.autograd.gradcheck(
        lambda w: moduli_penalty(w, R, n_gates=n_gates, norm=norm), (weight,)
    )


@pytest.mark.parametrize("moduli", TRAINABLE)
def test_penalty_from_points_gradcheck(moduli):
    space = get_space(moduli)
    points = torch.tensor(space.sample(6, random_state=0), requires_grad=True)
    weight = torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def loss(p):
        return moduli_penalty(weight, penalty_from_points(p, space, "gauss", invert=False))

    assert torch.autograd.gradcheck(loss, (points,))


@pytest.mark.parametrize("moduli", TRAINABLE)
@pytest.mark.parametrize("inhibitor", INHIBITOR_NAMES)
def test_trainable_points_gradient_is_finite(moduli, inhibitor):
    space = get_space(moduli)
    points = space.sample(8, random_state=0)
    points[1] = points[0]  # coincident units
    if moduli in ("circle", "sphere"):
        points[3] = -points[2]  # antipodal units: arccos(-1)
    else:
        points[3] = points[2] + L / 2  # cut locus of the wrap-around
    points = torch.tensor(points, requires_grad=True)
    R = penalty_from_points(points, moduli, inhibitor, invert=True)
    weight = torch.randn(4 * 8, 8, dtype=torch.float64)
    moduli_penalty(weight, R, n_gates=4).backward()
    assert torch.isfinite(points.grad).all()
    assert points.grad.abs().sum() > 0


def test_standard_penalty_from_points_is_constant():
    labels = torch.tensor(get_space("standard").sample(4), requires_grad=True)
    R = penalty_from_points(labels, "standard", "DoG")
    np.testing.assert_array_equal(R.detach().numpy(), np.ones((4, 4)))
    assert not get_space("standard").trainable


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ["hyperbolic", "Torus", 3, None])
def test_unknown_space_lists_valid_names(bad):
    with pytest.raises(ValueError, match="circle.*klein.*sphere.*standard.*torus.*torus6"):
        get_space(bad)
    with pytest.raises(ValueError, match="valid names"):
        penalty_matrix(4, moduli=bad)


@pytest.mark.parametrize("dim", [0, -1, 2.5, True, "2"])
def test_bad_torus_dimension(dim):
    with pytest.raises(ValueError, match="dim"):
        get_space("torus", dim=dim)
    with pytest.raises(ValueError, match="dim"):
        penalty_matrix(4, "torus", dim=dim)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("torus6", {"dim": 3}, "dim"),
        ("circle", {"dim": 2}, "dim"),
        ("standard", {"side": 1.0}, "side"),
        ("klein", {"side": 0}, "side"),
        ("torus", {"side": -1.0}, "side"),
        ("circle", {"radius": float("nan")}, "radius"),
        ("sphere", {"radius": 0}, "radius"),
    ],
)
def test_bad_space_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_space(name, **params)


def test_bad_space_arguments():
    with pytest.raises(ValueError, match="dim"):
        get_space(get_space("torus"), dim=3)
    with pytest.raises(ValueError, match="n must be"):
        get_space("torus").sample(-1)
    with pytest.raises(ValueError, match="n must be"):
        get_space("torus").sample(2.5)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        get_space("circle").pairwise(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        get_space("torus6").pairwise(np.ones(6))
    with pytest.raises(ValueError, match="non-zero"):
        get_space("sphere").pairwise(np.zeros((1, 3)))


@pytest.mark.parametrize("bad", ["dog", "mexican", None])
def test_unknown_inhibitor_lists_valid_names(bad):
    with pytest.raises(ValueError, match="DoG.*gauss.*ripple.*square"):
        get_inhibitor(bad)
    with pytest.raises(ValueError, match="inhibitor"):
        penalty_matrix(4, inhibitor=bad)
    with pytest.raises(ValueError, match="inhibitor"):
        penalty_matrix(4, "standard", inhibitor=bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n must be"),
        ({"n": 2.0}, "n must be"),
        ({"n": 3, "invert": "yes"}, "invert"),
        ({"n": 3, "permute": 1}, "permute"),
        ({"n": 3, "two_embeddings": None}, "two_embeddings"),
    ],
)
def test_bad_penalty_matrix_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        penalty_matrix(**kwargs)


@pytest.mark.parametrize(
    "weight, R, kwargs, match",
    [
        (np.ones((3, 3)), np.ones((3, 3)), {}, "torch.Tensor"),
        (torch.ones(3), np.ones((3, 3)), {}, "2-D"),
        (torch.ones(3, 3), np.ones((3, 2)), {}, "square"),
        (torch.ones(9, 3), np.ones((3, 3)), {"n_gates": 4}, r"\(12, 3\)"),
        (torch.ones(3, 3), np.ones((3, 3)), {"n_gates": 0}, "n_gates"),
        (torch.ones(3, 3), np.ones((3, 3)), {"norm": 3}, "norm"),
        (torch.ones(3, 3), np.ones((3, 3)), {"norm": True}, "norm"),
    ],
)
def test_bad_moduli_penalty_arguments(weight, R, kwargs, match):
    with pytest.raises(ValueError, match=match):
        moduli_penalty(weight, R, **kwargs)
