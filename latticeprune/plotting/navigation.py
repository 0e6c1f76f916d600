"""The navigation task: trajectories in the box, decoded predictions, place-cell firing fields."""

import numbers

import numpy as np
from sklearn.utils import check_scalar

from ..datasets import decode_position, place_cell_codes
from .axes import new_axes, pyplot

__all__ = ["plot_trajectories", "plot_place_cell_fields"]


def _check_task(task, needed):
    missing = [key for key in needed if key not in task]
    if missing:
        raise TypeError(f"Expected the Bunch of make_navigation_task; missing {missing}.")


def plot_trajectories(task, *, n_trajectories=5, predicted_codes=None, show_centres=False,
                      ax=None):
    """Trajectories of the navigation task in the box, optionally with the decoded predictions.

    Parameters
    ----------
    task : Bunch from :func:`~latticeprune.datasets.make_navigation_task`
    n_trajectories : int, default=5
        The first ones are drawn, each from its start position (a dot).
    predicted_codes : array-like of shape (n_samples, n_steps, n_place_cells) or None
        Place-cell codes (or logits) of a net; the positions
        :func:`~latticeprune.datasets.decode_position` reads from them are drawn dashed in the
        colour of the true trajectory.
    show_centres : bool, default=False
        Draw the place-cell centres as small grey crosses.
    ax : matplotlib Axes or None, default=None

    Returns
    -------
    ax : matplotlib Axes
        ``ax.lines``: the true trajectories, then the decoded ones.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> task = make_navigation_task(10, n_steps=20, random_state=0)
    >>> len(plot_trajectories(task, n_trajectories=3).lines)
    3
    """
    _check_task(task, ("positions", "init_positions", "box_size", "centres"))
    n = min(check_scalar(n_trajectories, "n_trajectories", numbers.Integral, min_val=1),
            len(task.positions))
    ax = new_axes(ax)
    half = task.box_size / 2
    ax.add_patch(pyplot().Rectangle((-half, -half), task.box_size, task.box_size, fill=False,
                                    color="0.3"))
    if show_centres:
        ax.scatter(*np.asarray(task.centres).T, s=6, marker="x", color="0.7", label="place cells")
    colours = [ax.plot(*np.vstack([task.init_positions[k], task.positions[k]]).T,
                       linewidth=1.2)[0].get_color() for k in range(n)]
    ax.scatter(*np.asarray(task.init_positions[:n]).T, s=25, c=colours, zorder=3, label="start")
    if predicted_codes is not None:
        predicted_codes = np.asarray(predicted_codes)
        if predicted_codes.shape[:2] != task.positions.shape[:2]:
            raise ValueError(f"predicted_codes has shape {predicted_codes.shape}; expected "
                             f"(n_samples, n_steps, n_place_cells) with (n_samples, n_steps) = "
                             f"{task.positions.shape[:2]}.")
        for path, colour in zip(decode_position(predicted_codes[:n], task.centres), colours):
            ax.plot(*path.T, linestyle="--", linewidth=1.0, color=colour)
    ax.set(xlim=(-1.05 * half, 1.05 * half), ylim=(-1.05 * half, 1.05 * half), aspect="equal",
           xlabel="x (m)", ylabel="y (m)", title=f"{n} trajectories" + (
               " (dashed: decoded from the predictions)" if predicted_codes is not None else ""))
    return ax


def plot_place_cell_fields(task, cells=4, *, resolution=60, fig=None):
    """Firing fields of place cells: each cell's code over the box, its centre marked.

    Parameters
    ----------
    task : Bunch from :func:`~latticeprune.datasets.make_navigation_task`
    cells : int or array-like of int, default=4
        How many cells (spread evenly over the indices) or which ones.
    resolution : int, default=60
        Grid points per side.
    fig : matplotlib Figure or None, default=None

    Returns
    -------
    fig : matplotlib Figure
        One Axes per cell (an image of shape ``(resolution, resolution)``, row 0 at the
        bottom), then the colour bar.

    Examples
    --------
    >>> from latticeprune.datasets import make_navigation_task
    >>> task = make_navigation_task(5, n_steps=5, n_place_cells=64, random_state=0)
    >>> len(plot_place_cell_fields(task, cells=[0, 5]).axes)
    3
    """
    _check_task(task, ("centres", "box_size", "place_cell_width", "dog", "surround_scale"))
    centres = np.asarray(task.centres)
    if isinstance(cells, numbers.Integral):
        if not 1 <= cells <= len(centres):
            raise ValueError(f"cells={cells} must be between 1 and {len(centres)}.")
        cells = np.linspace(0, len(centres) - 1, int(cells)).round().astype(int)
    cells = np.asarray(cells, dtype=int).ravel()
    if cells.size == 0 or cells.min() < 0 or cells.max() >= len(centres):
        raise ValueError(f"cells must be indices in [0, {len(centres)}); got {cells.tolist()}.")
    half = task.box_size / 2
    grid = np.linspace(-half, half, check_scalar(resolution, "resolution", numbers.Integral,
                                                 min_val=2))
    codes = place_cell_codes(np.stack(np.meshgrid(grid, grid), axis=-1), centres,
                             width=task.place_cell_width, dog=task.dog,
                             surround_scale=task.surround_scale)
    if fig is None:
        fig = pyplot().figure(figsize=(2.6 * len(cells) + 0.8, 2.8), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    for ax, cell in zip(axes, cells):
        image = ax.imshow(codes[..., cell], origin="lower", extent=(-half, half, -half, half),
                          vmin=0.0, vmax=float(codes[..., cells].max()), cmap="viridis")
        ax.plot(*centres[cell], marker="+", color="white", markersize=8)
        ax.set(title=f"place cell {cell}", xlabel="x (m)")
    axes[0].set_ylabel("y (m)")
    fig.colorbar(image, ax=list(axes), label="place-cell code", shrink=0.85)
    return fig
