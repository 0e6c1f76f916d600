"""Moduli spaces: where hidden units live and how far apart they are.

Each space samples points uniformly and computes the pairwise distance matrix
between two point sets.  Scales follow docs/methods/moduli.md section 2: flat spaces have side
``L = 10``, round spaces radius ``5``.

``pairwise`` is written once for both array libraries: NumPy in, NumPy out;
a ``torch.Tensor`` in, a tensor out that autograd differentiates (this is the
path used for trainable points).  The metrics avoid infinite gradients:
the geodesic angle is computed as ``2 * atan2(|a - b|, |a + b|)`` (equal to
``arccos(<a, b>)`` for unit vectors, but with bounded derivatives where
``<a, b> = +-1``), and every Euclidean norm is "safe": exactly zero, with zero
gradient, at the zero vector.  The flat spaces (torus, Klein bottle) also give the
periodic images of points (``reduce``, ``images``, ``nearest_image``), for drawing
connections that wrap around.

==========  ==========  =====================  ===================  =========
name        point_dim   metric                 diameter             trainable
==========  ==========  =====================  ===================  =========
circle      2           5 arccos(<a, b>)       5 pi                 yes
sphere      3           5 arccos(<a, b>)       5 pi                 yes
torus       k (dim)     wrapped Euclidean      sqrt(k) L / 2        yes
torus6      6           wrapped Euclidean      sqrt(6) L / 2        yes
klein       2           least image distance   L / sqrt(2)          yes
standard    1           discrete (0 / 1)       1                    no
==========  ==========  =====================  ===================  =========
"""

import functools
import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = [
    "FLAT_SIDE",
    "ROUND_RADIUS",
    "SPACE_NAMES",
    "Space",
    "Circle",
    "Sphere",
    "Torus",
    "Klein",
    "Standard",
    "get_space",
]

FLAT_SIDE = 10.0
ROUND_RADIUS = 5.0


def check_integer(value, name, low):
    """``value`` as an int ``>= low`` (booleans rejected); ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    return int(value)


def check_positive(value, name):
    """``value`` as a finite float ``> 0``; ValueError naming ``name``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
    return float(value)


def _safe_sqrt(squared, xp):
    """Square root that is exactly 0 with zero gradient at 0 (never NaN)."""
    positive = squared > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, squared, 1.0)), 0.0)


def _safe_norm(vectors, xp):
    """Euclidean norm over the last axis, safe at the zero vector."""
    return _safe_sqrt((vectors * vectors).sum(-1), xp)


class Space:
    """Base class of the moduli spaces.

    Attributes
    ----------
    name : str
        Registry name of the space.
    point_dim : int
        Number of coordinates of one point.
    diameter : float
        Largest distance between two points of the space.
    trainable : bool
        Whether points can be trainable parameters (the metric is differentiable
        in the coordinates almost everywhere).
    """

    name = "space"
    trainable = True

    def sample(self, n, random_state=None):
        """Sample ``n`` points uniformly on the space.

        Parameters
        ----------
        n : int
            Number of points, >= 0.
        random_state : int, RandomState instance or None
            Seed or generator (``sklearn.utils.check_random_state``).

        Returns
        -------
        points : ndarray of shape (n, point_dim)
        """
        return self._sample(check_integer(n, "n", 0), check_random_state(random_state))

    def pairwise(self, a, b=None):
        """Distance matrix between two point sets.

        Parameters
        ----------
        a : array-like or Tensor of shape (n_a, point_dim)
        b : array-like or Tensor of shape (n_b, point_dim), default=a

        Returns
        -------
        distances : ndarray or Tensor of shape (n_a, n_b)
            A tensor (differentiable) if ``a`` or ``b`` is a tensor, else an ndarray.
        """
        b = a if b is None else b
        ref = a if isinstance(a, torch.Tensor) else b if isinstance(b, torch.Tensor) else None
        xp = np if ref is None else torch
        return self._pairwise(self._points(a, "a", ref), self._points(b, "b", ref), xp)

    def _points(self, points, label, ref=None):
        """A float ndarray, or a tensor on ``ref``'s device, of shape (n, point_dim)."""
        if ref is None:
            points = np.asarray(points, dtype=float)
        else:
            dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
            points = torch.as_tensor(points, device=ref.device).to(dtype)
        if points.ndim != 2 or points.shape[1] != self.point_dim:
            raise ValueError(
                f"Points {label} of space {self.name!r} must have shape "
                f"(n, {self.point_dim}); got {tuple(points.shape)}."
            )
        return points


@dataclass(frozen=True)
class _Round(Space):
    """Unit sphere S^m scaled to ``radius``: ``d = radius * arccos(<a, b>)``.

    Points are non-zero vectors; inputs are normalised, so any non-zero vector stands
    for its direction.
    """

    radius: float = ROUND_RADIUS

    def __post_init__(self):
        object.__setattr__(self, "radius", check_positive(self.radius, "radius"))

    @property
    def diameter(self):
        return math.pi * self.radius

    def _pairwise(self, a, b, xp):
        a = self._normalise(a, xp)
        b = self._normalise(b, xp)
        chord = _safe_norm(a[:, None, :] - b[None, :, :], xp)
        cochord = _safe_norm(a[:, None, :] + b[None, :, :], xp)
        # For unit vectors |a - b| = 2 sin(t/2), |a + b| = 2 cos(t/2), t = arccos<a, b>.
        return self.radius * 2.0 * xp.arctan2(chord, cochord)

    def _normalise(self, points, xp):
        norms = xp.sqrt((points * points).sum(-1))[:, None]
        if xp is np:
            if np.any(norms == 0):
                raise ValueError(f"Points of space {self.name!r} must be non-zero vectors.")
            return points / norms
        return points / norms.clamp_min(torch.finfo(points.dtype).tiny)


@dataclass(frozen=True)
class Circle(_Round):
    """Circle of radius 5: unit vectors in R^2."""

    name = "circle"
    point_dim = 2

    def _sample(self, n, rng):
        angle = rng.uniform(0.0, 2.0 * math.pi, size=n)
        return np.column_stack([np.cos(angle), np.sin(angle)])


@dataclass(frozen=True)
class Sphere(_Round):
    """2-sphere of radius 5: unit vectors in R^3."""

    name = "sphere"
    point_dim = 3

    def _sample(self, n, rng):
        # Normalised isotropic Gaussians are uniform on the sphere.
        points = rng.standard_normal(size=(n, 3))
        return points / np.linalg.norm(points, axis=1, keepdims=True)


class _Flat(Space):
    """A flat space ``R^point_dim / G``: ``G`` is generated by the translations by ``side``
    along each axis (and, on the Klein bottle, a glide reflection); the fundamental
    domain is ``[0, side]^point_dim``."""

    def _sample(self, n, rng):
        # Lebesgue measure on a fundamental domain is the uniform measure.
        return rng.uniform(0.0, self.side, size=(n, self.point_dim))

    def reduce(self, points):
        """The points moved into the fundamental domain by the group, shape (n, point_dim)."""
        return self._reduce(self._points(points, "points"), np)

    def images(self, points):
        """Images of ``points`` under the ``3**point_dim`` group elements that map the
        fundamental domain onto itself or a neighbouring cell (shifts -1, 0, 1 per axis).

        Returns an ndarray of shape (3**point_dim, n, point_dim), ``O(3**point_dim n)``;
        entry ``(3**point_dim - 1) // 2`` is the identity.
        """
        points = self._points(points, "points")
        shifts = itertools.product((-1, 0, 1), repeat=self.point_dim)
        return np.stack([self._image(points, shift, np) for shift in shifts])

    def nearest_image(self, a, b):
        """The image of each ``b[k]`` nearest to ``a[k]``, with ``a`` and ``b`` first reduced
        into the fundamental domain: the segment from ``reduce(a)[k]`` to the result has
        length ``pairwise(a, b)[k, k]`` (the shortest connection, possibly leaving the
        domain).  Among :meth:`images` of ``reduce(b)``, ``O(3**point_dim n)``.

        Returns an ndarray of shape (n, point_dim).
        """
        a, b = self.reduce(a), self.reduce(b)
        images = self.images(b)
        nearest = np.argmin(((images - a[None]) ** 2).sum(-1), axis=0)
        return images[nearest, np.arange(len(b))]


@dataclass(frozen=True)
class Torus(_Flat):
    """Flat torus ``[0, side)^dim``.

    Per coordinate the wrap-around difference ``min(|a-b| mod L, L - |a-b| mod L)``,
    then the Euclidean norm.  Any real coordinates are accepted (they are read
    modulo ``side``).

    Parameters
    ----------
    dim : int, default=2
        Dimension k of the torus, >= 1.
    side : float, default=10
        Period L of every coordinate.
    """

    dim: int = 2
    side: float = FLAT_SIDE
    name = "torus"

    def __post_init__(self):
        object.__setattr__(self, "dim", check_integer(self.dim, "dim (the torus dimension k)", 1))
        object.__setattr__(self, "side", check_positive(self.side, "side"))

    @property
    def point_dim(self):
        return self.dim

    @property
    def diameter(self):
        return math.sqrt(self.dim) * self.side / 2.0

    def _reduce(self, points, xp):
        return points % self.side

    def _image(self, points, shift, xp):
        return points + self.side * np.asarray(shift, dtype=float)

    def _pairwise(self, a, b, xp):
        diff = a[:, None, :] - b[None, :, :]
        # Signed representative in [-L/2, L/2]; its absolute value is
        # min(|diff| mod L, L - |diff| mod L).  round() has zero gradient.
        wrapped = diff - self.side * xp.round(diff / self.side)
        return _safe_norm(wrapped, xp)


@dataclass(frozen=True)
class Klein(_Flat):
    """Flat Klein bottle: ``[0, L)^2`` with ``(x, 0) ~ (x, L)`` and ``(0, y) ~ (L, L - y)``.

    The distance is the least Euclidean distance from ``a`` to the images of ``b``
    under the group generated by ``t(x, y) = (x, y + L)`` and the glide reflection
    ``g(x, y) = (x + L, L - y)``.  Any real coordinates are accepted: points are
    first reduced into the closed square ``[0, L]^2`` by the group.

    Parameters
    ----------
    side : float, default=10
        Side L of the square.

    Notes
    -----
    Diameter ``L / sqrt(2)``.  Upper bound: for reduced ``a, b`` let
    ``u = a_x - b_x`` in ``[-L, L]``.  If ``|u| <= L/2``, the image ``b + (0, jL)``
    with the best ``j`` has y-gap ``<= L/2``, so squared distance
    ``<= (L/2)^2 + (L/2)^2``.  Otherwise the glide image
    ``(b_x + sign(u) L, L - b_y + jL)`` has x-gap ``L - |u| < L/2`` and, at the
    best ``j``, y-gap ``<= L/2``.  The bound is attained by ``(0, 0)`` and
    ``(L/2, L/2)``: every image of the latter is ``(L/2 + iL, +-L/2 + jL)``.
    """

    side: float = FLAT_SIDE
    name = "klein"
    point_dim = 2

    def __post_init__(self):
        object.__setattr__(self, "side", check_positive(self.side, "side"))

    @property
    def diameter(self):
        return self.side / math.sqrt(2.0)

    def _reduce(self, points, xp):
        """Map points into the closed square ``[0, L]^2`` by the group action."""
        L = self.side
        x, y = points[:, 0], points[:, 1]
        shifts = xp.floor(x / L)
        x = x - shifts * L
        # g^{-i} reflects y once per odd number of glides.
        y = xp.where(shifts % 2 == 1, L - y, y)
        return xp.stack([x, y - L * xp.floor(y / L)], -1)

    def _image(self, points, shift, xp):
        """``g^i t^j`` maps ``(x, y)`` to ``(x + iL, s_i(y) + jL)``, ``s_i`` flips y for odd i."""
        (i, j), L = shift, self.side
        y = points[:, 1] if i % 2 == 0 else L - points[:, 1]
        return xp.stack([points[:, 0] + i * L, y + j * L], -1)

    def _pairwise(self, a, b, xp):
        # The 9 images g^i t^j b, i, j in {-1, 0, 1}, suffice for a, b in [0, L]^2.
        # Every group element is g^i t^j and maps b to (b_x + iL, s_i(b_y) + jL),
        # s_i(y) = y for even i, L - y for odd i.  (1) x: with u = a_x - b_x in
        # [-L, L] and |i| >= 2, the image with i' = i - 2 sign(i) has the same
        # y-coordinates (same parity) and an x-gap |u - i'L| <= |u - iL| (for i = 2:
        # |u| <= L <= 2L - u), so some minimiser has |i| <= 1.  (2) y: s_i(b_y) lies in
        # [0, L], so v = a_y - s_i(b_y) lies in [-L, L], and min_j |v - jL| is
        # attained at j in {-1, 0, 1}.  Hence the 9 images give the least distance.
        a, b = self._reduce(a, xp), self._reduce(b, xp)
        shifts = itertools.product((-1, 0, 1), repeat=2)
        return functools.reduce(xp.minimum, (
            _safe_norm(a[:, None, :] - self._image(b, shift, xp)[None], xp) for shift in shifts))


@dataclass(frozen=True)
class Standard(Space):
    """Control "space" without geometry: every pair of distinct units weighs the same.

    Units have no points.  ``sample(n)`` returns their labels ``0..n-1`` as an
    ``(n, 1)`` float array (``random_state`` is not used) and ``pairwise`` is the
    discrete metric: 0 for equal labels, 1 otherwise.  The penalty of this space
    is the all-ones matrix (plain L1 / L2), see ``penalty_matrix``.
    ``trainable`` is False.
    """

    name = "standard"
    trainable = False
    point_dim = 1
    diameter = 1.0

    def _sample(self, n, rng):
        return np.arange(n, dtype=float)[:, None]

    def _pairwise(self, a, b, xp):
        differs = a[:, None, 0] != b[None, :, 0]
        return differs.astype(float) if xp is np else differs.to(a.dtype)


_SPACE_FACTORIES = {
    "circle": (Circle, ("radius",)),
    "klein": (Klein, ("side",)),
    "sphere": (Sphere, ("radius",)),
    "standard": (Standard, ()),
    "torus": (Torus, ("dim", "side")),
    "torus6": (lambda **p: Torus(dim=6, **p), ("side",)),
}
SPACE_NAMES = tuple(sorted(_SPACE_FACTORIES))


def get_space(name, **params):
    """Build a moduli space by name.

    Parameters
    ----------
    name : {"circle", "klein", "sphere", "standard", "torus", "torus6"} or Space
        Space name; a ``Space`` instance is returned unchanged (no params allowed).
    **params
        Space parameters: ``radius`` (circle, sphere), ``side`` (torus, torus6,
        klein), ``dim`` (torus only; ``torus6`` fixes it to 6).

    Returns
    -------
    space : Space
    """
    if isinstance(name, Space):
        if params:
            raise ValueError(
                f"Parameters {sorted(params)} cannot be applied to an existing space {name!r}."
            )
        return name
    if not isinstance(name, str) or name not in _SPACE_FACTORIES:
        raise ValueError(f"Unknown moduli space {name!r}; valid names are {list(SPACE_NAMES)}.")
    factory, accepted = _SPACE_FACTORIES[name]
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        raise ValueError(
            f"Moduli space {name!r} got unexpected parameter(s) {unexpected}; "
            f"it accepts {list(accepted)}."
        )
    return factory(**params)

