"""Path integration in a square box: the navigation task of the moduli paper.

An agent runs smooth random trajectories in a square box; a recurrent net
receives its velocity, starts from an encoding of the start position's
place-cell code, and must predict the place-cell code at every step. This is
the set-up of the grid-cell RNNs of Sorscher et al. (NeurIPS 2019, the
"grid-pattern-formation" code), used in section 6 of the moduli method
(``docs/methods/moduli.md``).

Coordinates are in metres with the origin at the centre of the box, which
spans ``[-box_size / 2, box_size / 2]`` on both axes.
"""

import numbers

import numpy as np
from scipy.special import softmax
from sklearn.utils import Bunch, check_random_state, check_scalar

__all__ = ["make_navigation_task", "make_place_cell_centres", "place_cell_codes",
           "decode_position", "position_error_cm"]

# Wall avoidance of the standard generator: inside this band (m) and heading
# towards the nearest wall, the agent turns parallel to the wall and slows down.
_WALL_SLOWDOWN = 0.25
_INPUT_FORMATS = ("velocity", "speed_heading")

_DESCR = """\
Navigation (path integration) task (latticeprune)
-------------------------------------------------

{n_samples} random trajectories of {n_steps} steps (dt = {dt} s) in a square box
of side {box_size} m (coordinates in metres, origin at the centre). Inputs:
{input_desc}. Initial state: the place-cell code of the start position.
Targets: the place-cell code at each step over {n_place_cells} place cells with
{tuning} tuning of width {width} m, normalised to sum to one (softmax).
Decode positions with decode_position (mean of the top-k cell centres).
"""


def _to_numpy(array):
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _check_positive(value, name):
    return float(check_scalar(value, name, numbers.Real, min_val=0.0, include_boundaries="neither"))


def make_place_cell_centres(n_place_cells=512, box_size=2.2, random_state=0):
    """Draw place-cell centres uniformly in the box.

    Parameters
    ----------
    n_place_cells : int, default=512
    box_size : float, default=2.2
        Side of the square box in metres.
    random_state : int, RandomState instance or None, default=0
        A fixed seed by default, so that every data set of the same size shares one environment.

    Returns
    -------
    centres : ndarray of float32, shape (n_place_cells, 2)
        Centres in metres, in ``[-box_size / 2, box_size / 2]^2``.
    """
    check_scalar(n_place_cells, "n_place_cells", numbers.Integral, min_val=1)
    half = _check_positive(box_size, "box_size") / 2
    rng = check_random_state(random_state)
    return rng.uniform(-half, half, size=(int(n_place_cells), 2)).astype(np.float32)


def _scaled_sq_distances(positions, centres, variance):
    """-|p - c|^2 / (2 variance) for every position and centre, float32."""
    flat = positions.reshape(-1, 2).astype(np.float32)
    c = centres.astype(np.float32)
    sq = (flat * flat).sum(axis=1)[:, None] - 2.0 * flat @ c.T + (c * c).sum(axis=1)[None, :]
    np.maximum(sq, 0.0, out=sq)
    sq *= np.float32(-1.0 / (2.0 * variance))
    return sq


def place_cell_codes(positions, centres, *, width=0.12, dog=False, surround_scale=2.0):
    """Place-cell code of positions: softmax-normalised Gaussian or DoG tuning.

    Gaussian: ``softmax_i(-|x - c_i|^2 / (2 width^2))``. Difference of Gaussians (``dog``): that
    code minus the code of a wider surround (variance ``surround_scale * width^2``), shifted to
    a minimum of 0 over the cells and renormalised (Sorscher et al. 2019). Every code is
    non-negative and sums to one over the cells.

    Parameters
    ----------
    positions : array-like of shape (..., 2)
        Positions in metres (NumPy arrays or torch tensors, as every array here).
    centres : array-like of shape (n_place_cells, 2)
        Place-cell centres in metres.
    width : float, default=0.12
        Tuning width (standard deviation of the Gaussian) in metres.
    dog : bool, default=False
        Difference-of-Gaussians tuning.
    surround_scale : float, default=2.0
        Ratio of surround to centre variance for DoG tuning (> 1).

    Returns
    -------
    codes : ndarray of float32, shape (..., n_place_cells)

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.datasets import place_cell_codes
    >>> centres = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> place_cell_codes(np.array([0.1, 0.0]), centres).round(3)
    array([1., 0.], dtype=float32)
    """
    positions = _to_numpy(positions)
    centres = _to_numpy(centres)
    if positions.shape[-1:] != (2,):
        raise ValueError(f"positions must have shape (..., 2), got {positions.shape}.")
    if centres.ndim != 2 or centres.shape[1] != 2 or len(centres) == 0:
        raise ValueError(f"centres must have shape (n_place_cells, 2), got {centres.shape}.")
    variance = _check_positive(width, "width") ** 2
    codes = softmax(_scaled_sq_distances(positions, centres, variance), axis=-1)
    if dog:
        check_scalar(surround_scale, "surround_scale", numbers.Real, min_val=1.0,
                     include_boundaries="neither")
        surround = _scaled_sq_distances(positions, centres, float(surround_scale) * variance)
        codes -= softmax(surround, axis=-1)
        codes -= codes.min(axis=-1, keepdims=True)
        codes /= codes.sum(axis=-1, keepdims=True)
    return codes.reshape(positions.shape[:-1] + (len(centres),))


def _wall_avoidance(position, heading, half, border_region):
    """Which agents are within ``border_region`` of a wall and heading towards it, and the turn
    (radians) that makes their heading parallel to that wall."""
    x, y = position[:, 0], position[:, 1]
    distances = np.stack([half - x, half - y, half + x, half + y])  # walls at +x, +y, -x, -y
    nearest = distances.argmin(axis=0)
    distance_to_wall = distances[nearest, np.arange(len(x))]
    wall_direction = nearest * (np.pi / 2)
    angle_to_wall = np.mod(heading - wall_direction + np.pi, 2 * np.pi) - np.pi
    near_wall = (distance_to_wall < border_region) & (np.abs(angle_to_wall) < np.pi / 2)
    turn = np.where(near_wall, np.sign(angle_to_wall) * (np.pi / 2 - np.abs(angle_to_wall)), 0.0)
    return near_wall, turn


def _random_trajectories(rng, n_samples, n_steps, half, dt, rotation_sd, speed_scale,
                         border_region):
    """Start positions (n, 2) and positions after each step (n, T, 2), float64."""
    start = rng.uniform(-half, half, size=(n_samples, 2))
    heading = rng.uniform(0.0, 2 * np.pi, size=n_samples)
    random_turns = rng.normal(0.0, rotation_sd, size=(n_samples, n_steps))
    speeds = rng.rayleigh(speed_scale, size=(n_samples, n_steps))

    positions = np.empty((n_samples, n_steps, 2))
    position = start
    for t in range(n_steps):
        near_wall, wall_turn = _wall_avoidance(position, heading, half, border_region)
        speed = np.where(near_wall, _WALL_SLOWDOWN * speeds[:, t], speeds[:, t])
        step = (speed * dt)[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        # A rare fast step that would still cross a wall stops at the wall.
        position = np.clip(position + step, -half, half)
        positions[:, t] = position
        heading = heading + wall_turn + dt * random_turns[:, t]
    return start, positions


def make_navigation_task(n_samples, n_steps=20, *, n_place_cells=512, box_size=2.2,
                         place_cell_width=0.12, dog=False, surround_scale=2.0, centres=None,
                         centres_random_state=0, input_format="velocity", dt=0.02,
                         rotation_sd=11.52, speed_scale=0.13 * 2 * np.pi, border_region=0.03,
                         random_state=None):
    """Generate the navigation (path integration) task.

    Trajectories follow the rat-motion model of the standard grid-cell RNN trajectory generator
    (Sorscher et al. 2019): start position uniform in the box, heading uniform in [0, 2 pi); at
    each step of ``dt`` seconds the agent moves at a Rayleigh-distributed speed along its
    heading, then turns by a Gaussian angle (standard deviation ``rotation_sd * dt`` radians).
    Within ``border_region`` of a wall and heading towards it, the agent takes that step at a
    quarter of its speed, then turns parallel to the wall. A rare step that would still cross a
    wall stops at the wall, so every position lies inside the box and the inputs are the actual
    displacements. Vectorised over trajectories, a Python loop over the steps (measured: see
    docs/experiments.md); the targets take ``n_samples * n_steps * n_place_cells * 4`` bytes.

    Parameters
    ----------
    n_samples : int
    n_steps : int, default=20
    n_place_cells : int, default=512
        Must equal ``len(centres)`` when ``centres`` is given.
    box_size : float, default=2.2
        Side of the square box in metres.
    place_cell_width, dog, surround_scale
        Tuning of the place cells, see :func:`place_cell_codes`.
    centres : array-like of shape (n_place_cells, 2) or None, default=None
        Place-cell centres in metres. None: drawn uniformly in the box with
        ``centres_random_state``.
    centres_random_state : int, RandomState instance or None, default=0
        Seed for the centres, separate from ``random_state`` so that training and test sets
        share the same place cells (the same environment).
    input_format : {"velocity", "speed_heading"}, default="velocity"
        Inputs ``(vx, vy)`` in m/s, shape (n, T, 2), or ``(speed, sin(theta), cos(theta))``
        with theta the direction of motion, shape (n, T, 3). Step t moves the agent by
        ``velocity[:, t] * dt``.
    dt : float, default=0.02
        Time step in seconds.
    rotation_sd : float, default=11.52
        Standard deviation of the rotational velocity in rad/s.
    speed_scale : float, default=0.13 * 2 * pi
        Scale of the Rayleigh speed distribution in m/s (mean speed about 1 m/s).
    border_region : float, default=0.03
        Distance to a wall (m) below which wall avoidance acts.
    random_state : int, RandomState instance or None, default=None
        Seed for the trajectories (see :term:`Glossary <random_state>`).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``velocities`` (also ``data``; float32, (n_samples, n_steps, 2 or 3)): the inputs;
        ``init_codes`` (float32, (n_samples, n_place_cells)): place-cell code of the start
        position, to encode the initial hidden state; ``targets`` (also ``target``; float32,
        (n_samples, n_steps, n_place_cells)): the code after each step; ``positions`` (float32,
        (n_samples, n_steps, 2)): the position after each step, in metres; ``init_positions``
        (float32, (n_samples, 2)), so that ``positions[:, t] = init_positions + dt *
        velocity[:, :t + 1].sum(1)``; ``centres``; the generation parameters ``box_size``,
        ``dt``, ``place_cell_width``, ``dog``, ``surround_scale``, ``input_format``; ``DESCR``.

    See Also
    --------
    decode_position : positions from place-cell codes.
    position_error_cm : the task's reported error.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task, position_error_cm
    >>> task = make_navigation_task(100, n_steps=20, random_state=0)
    >>> task.velocities.shape, task.init_codes.shape, task.targets.shape
    ((100, 20, 2), (100, 512), (100, 20, 512))
    >>> bool(position_error_cm(task.targets, task.positions, task.centres) < 5)
    True
    """
    check_scalar(n_samples, "n_samples", numbers.Integral, min_val=1)
    check_scalar(n_steps, "n_steps", numbers.Integral, min_val=1)
    box_size, _, _, speed_scale = (_check_positive(value, name) for name, value in [
        ("box_size", box_size), ("place_cell_width", place_cell_width), ("dt", dt),
        ("speed_scale", speed_scale)])
    check_scalar(rotation_sd, "rotation_sd", numbers.Real, min_val=0.0)
    check_scalar(border_region, "border_region", numbers.Real, min_val=0.0)
    if input_format not in _INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {_INPUT_FORMATS}, got {input_format!r}.")
    if centres is None:
        centres = make_place_cell_centres(n_place_cells, box_size, centres_random_state)
    else:
        check_scalar(n_place_cells, "n_place_cells", numbers.Integral, min_val=1)
        centres = np.asarray(_to_numpy(centres), dtype=np.float32)
        if centres.ndim != 2 or centres.shape[1] != 2:
            raise ValueError(f"centres must have shape (n_place_cells, 2), got {centres.shape}.")
        if len(centres) != n_place_cells:
            raise ValueError(f"centres has {len(centres)} rows but n_place_cells={n_place_cells}; "
                             "pass n_place_cells=len(centres).")
    start, positions = _random_trajectories(
        check_random_state(random_state), int(n_samples), int(n_steps), box_size / 2, float(dt),
        float(rotation_sd), speed_scale, float(border_region))
    velocity = np.diff(positions, axis=1, prepend=start[:, None, :]) / dt
    if input_format == "velocity":
        inputs = velocity
        input_desc = "velocity (vx, vy) in m/s, shape (n, T, 2)"
    else:
        speed = np.hypot(velocity[..., 0], velocity[..., 1])
        theta = np.arctan2(velocity[..., 1], velocity[..., 0])
        inputs = np.stack([speed, np.sin(theta), np.cos(theta)], axis=-1)
        input_desc = "(speed in m/s, sin, cos of the direction of motion), shape (n, T, 3)"

    init_codes, targets = (place_cell_codes(p, centres, width=place_cell_width, dog=dog,
                                            surround_scale=surround_scale)
                           for p in (start, positions))
    inputs = inputs.astype(np.float32)
    return Bunch(velocities=inputs, data=inputs, init_codes=init_codes, targets=targets,
                 target=targets, positions=positions.astype(np.float32),
                 init_positions=start.astype(np.float32), centres=centres, box_size=box_size,
                 dt=float(dt), place_cell_width=float(place_cell_width), dog=bool(dog),
                 surround_scale=float(surround_scale), input_format=input_format,
                 DESCR=_DESCR.format(n_samples=n_samples, n_steps=n_steps, dt=dt,
                                     box_size=box_size, input_desc=input_desc,
                                     n_place_cells=len(centres), width=place_cell_width,
                                     tuning="difference-of-Gaussians" if dog else "Gaussian"))


def decode_position(codes, centres, k=3):
    """Decode positions from place-cell codes: mean centre of the k most active cells.

    Parameters
    ----------
    codes : array-like of shape (..., n_place_cells)
        Place-cell codes, or any monotone transform of them such as a net's logits (only the
        ranking of cells matters).
    centres : array-like of shape (n_place_cells, 2)
        Place-cell centres in metres.
    k : int, default=3
        Number of most active cells averaged, 1 <= k <= n_place_cells.

    Returns
    -------
    positions : ndarray of float64, shape (..., 2)
        Decoded positions in metres.

    Examples
    --------
    >>> import numpy as np
    >>> from latticeprune.datasets import decode_position
    >>> centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> decode_position(np.array([0.5, 0.3, 0.2]), centres, k=2)
    array([0.5, 0. ])
    """
    codes = _to_numpy(codes)
    centres = np.asarray(_to_numpy(centres), dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 2:
        raise ValueError(f"centres must have shape (n_place_cells, 2), got {centres.shape}.")
    n_cells = len(centres)
    if codes.ndim == 0 or codes.shape[-1] != n_cells:
        raise ValueError(f"codes must have shape (..., {n_cells}) to match the {n_cells} "
                         f"centres, got {codes.shape}.")
    check_scalar(k, "k", numbers.Integral, min_val=1, max_val=n_cells)
    top_k = np.argpartition(-codes, k - 1, axis=-1)[..., :k]
    return centres[top_k].mean(axis=-2)


def position_error_cm(pred_codes, true_positions, centres, k=3):
    """Mean Euclidean error (cm) of positions decoded from place-cell codes.

    Parameters
    ----------
    pred_codes : array-like of shape (..., n_place_cells)
        Predicted place-cell codes (probabilities or logits).
    true_positions : array-like of shape (..., 2)
        True positions in metres, with the same leading shape.
    centres, k
        As in :func:`decode_position`.

    Returns
    -------
    error : float
        Mean over all positions of the decoding error, in centimetres.
    """
    true_positions = _to_numpy(true_positions)
    decoded = decode_position(pred_codes, centres, k=k)
    if decoded.shape != true_positions.shape:
        raise ValueError(f"pred_codes decode to positions of shape {decoded.shape} but "
                         f"true_positions has shape {true_positions.shape}.")
    return float(100.0 * np.linalg.norm(decoded - true_positions, axis=-1).mean())
