"""Figures for the chapters: image grids, filters, feature maps, learning curves.

Every helper takes ``alt=``, the text a screen reader says in place of the figure. The figure is
shown as an ``<img>`` with that alt text in the rendered book (and as a plain PNG in consoles and
other frontends).

Figures are made at the width of the book's text column, :data:`COLUMN_WIDTH` inches, so the page
never scales them down, with no text smaller than :data:`MIN_FONT_PT` points; they are rendered at
twice the screen's resolution, so they stay sharp on high-density screens. :func:`render` refuses
a figure that breaks either rule and says which text or size is at fault. :func:`subplots` makes
a figure of the right width.

Introduced in chapter 1; used by every chapter.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib
import matplotlib.text
import matplotlib.ticker

if not matplotlib.get_backend().lower().startswith(("module://matplotlib_inline", "module://ipykernel")):
    matplotlib.use("Agg")  # no display outside a notebook: draw into memory
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from companion.train import History

COLUMN_WIDTH = 6.88
"""Width of the book's text column, in inches of :data:`PX_PER_INCH` screen pixels (688 px at 1280 px)."""
PX_PER_INCH = 100
"""Screen (CSS) pixels per inch of figure: a figure 6.88 in wide takes the column's 688 px."""
SCALE = 2
"""Pixels rendered per screen pixel: figures are saved at ``PX_PER_INCH * SCALE`` dpi."""
MAX_OVERHANG = 0.6
"""How far (inches) labels may stick out of a figure before :func:`render` refuses instead of narrowing it."""
MIN_FONT_PT = 9.0
"""The smallest text size a figure may use, in points (12.5 screen pixels)."""

plt.rcParams.update({
    "figure.figsize": (COLUMN_WIDTH, 3.2),
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
})


class AltFigure:
    """A rendered figure that carries its alt text (displayed as HTML ``<img alt=...>`` or PNG)."""

    def __init__(self, png: bytes, alt: str) -> None:
        self.png = png
        self.alt = alt

    def _repr_png_(self) -> bytes:
        return self.png

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the PNG in pixels (twice the size it takes on the page)."""
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        alt = html.escape(self.alt, quote=True)
        width, height = (v // SCALE for v in self.size)
        return (f'<img src="data:image/png;base64,{data}" alt="{alt}" width="{width}" '
                f'height="{height}" style="max-width:100%;height:auto"/>')

    def __repr__(self) -> str:
        return f"<figure: {self.alt}>"


def subplots(nrows: int = 1, ncols: int = 1, *, height: float = 3.2, **kwargs) -> tuple[Figure, object]:
    """``plt.subplots`` at the column's width: ``height`` inches tall, :data:`COLUMN_WIDTH` wide.

    Other keyword arguments go to ``plt.subplots`` (``sharex``, ``gridspec_kw``, ...).
    """
    if "figsize" in kwargs:
        raise TypeError("subplots makes figures at the column's width: give height=, not figsize=")
    return plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH, height), **kwargs)


def _check_legible(fig: Figure) -> None:
    """Raise ValueError when the figure is wider than the column or has text under MIN_FONT_PT."""
    width = fig.get_figwidth()
    if width > COLUMN_WIDTH + 1e-6:
        raise ValueError(f"the figure is {width:.2f} in wide, wider than the book's column "
                         f"({COLUMN_WIDTH} in), so the page would shrink its text: make it at most "
                         f"{COLUMN_WIDTH} in wide (companion.plot.subplots does)")
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT - 1e-6:
            raise ValueError(f"text {text.get_text()[:40]!r} is {text.get_fontsize():g} pt; figures use "
                             f"at least {MIN_FONT_PT:g} pt so that labels stay legible")


def render(fig: Figure, alt: str) -> AltFigure:
    """Render a matplotlib figure to PNG with its alt text, and close the figure.

    Raises:
        ValueError: when ``alt`` is empty, the figure is wider than :data:`COLUMN_WIDTH`, it
            comes out wider than the column once drawn, or a text is smaller than
            :data:`MIN_FONT_PT`.
    """
    if not isinstance(alt, str) or not alt.strip():
        plt.close(fig)
        raise ValueError("alt must be a non-empty description of the figure, for readers who cannot see it")
    try:
        _check_legible(fig)
        for _ in range(3):
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=PX_PER_INCH * SCALE, bbox_inches="tight")
            figure = AltFigure(buffer.getvalue(), alt.strip())
            excess = figure.size[0] / (PX_PER_INCH * SCALE) - COLUMN_WIDTH
            if excess <= 0.005:
                return figure
            if excess > MAX_OVERHANG:
                break
            # A label sticks out of the cropped figure a little: narrow the figure by as much, so that
            # it is shown at its size (the text keeps its points) instead of being scaled down.
            fig.set_size_inches(fig.get_figwidth() - excess - 0.01, fig.get_figheight())
    finally:
        plt.close(fig)
    raise ValueError(f"drawn, the figure is {COLUMN_WIDTH + excess:.2f} in wide (labels or a legend stick "
                     f"out): keep everything within the {COLUMN_WIDTH} in column")


def show(fig: Figure, alt: str) -> None:
    """Display a matplotlib figure with its alt text (in a notebook; elsewhere just close it).

    Returns nothing, so that a call ending a cell does not display the figure a second time.
    """
    figure = render(fig, alt)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to display into
        return
    if get_ipython() is not None:
        display(figure)


def _as_numpy_images(images: Tensor | np.ndarray | Sequence) -> np.ndarray:
    """Images ``(N, C, H, W)``, ``(N, H, W)`` or a list of ``(C, H, W)`` -> ``(N, H, W[, 3])`` for imshow."""
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(im) for im in images])
    array = images.detach().cpu().float().numpy() if isinstance(images, Tensor) else np.asarray(images, dtype=np.float32)
    if array.ndim == 4:
        if array.shape[1] not in (1, 3):
            raise ValueError(f"images must be (N, 1 or 3, H, W) or (N, H, W), got shape {array.shape}")
        array = array[:, 0] if array.shape[1] == 1 else np.moveaxis(array, 1, -1)  # (N, C, H, W) -> (N, H, W, C)
    elif array.ndim != 3:
        raise ValueError(f"images must be (N, 1 or 3, H, W) or (N, H, W), got shape {array.shape}")
    return array


def image_grid(images: Tensor | np.ndarray | Sequence, *, alt: str, titles: Sequence[str] | None = None,
               ncols: int = 8, cmap: str = "gray", title: str | None = None, scale: float = 1.4,
               normalize: bool = False) -> None:
    """Show images in a grid.

    Args:
        images: ``(N, C, H, W)`` with C in {1, 3}, ``(N, H, W)``, or a list of ``(C, H, W)``.
        alt: alt text for the figure.
        titles: one short title per image.
        ncols: images per row.
        cmap: colour map for single-channel images.
        title: a title above the grid.
        scale: inches per image, at most what fits ``ncols`` images in the column.
        normalize: stretch each image to its own [min, max] (for filters and feature maps).
    """
    array = _as_numpy_images(images)
    n = len(array)
    if n == 0:
        raise ValueError("images is empty: nothing to show")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    scale = min(scale, COLUMN_WIDTH / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(scale * ncols, scale * nrows + (0.4 if title else 0) + (0.3 if titles else 0)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = array[i]
        if normalize:
            lo, hi = float(image.min()), float(image.max())
            image = (image - lo) / (hi - lo + 1e-12)
        else:
            image = np.clip(image, 0, 1) if image.ndim == 3 else image
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None,
                  vmin=None if (normalize or image.ndim == 3) else min(0.0, float(image.min())),
                  vmax=None if (normalize or image.ndim == 3) else max(1.0, float(image.max())))
        if titles is not None:
            ax.set_title(titles[i], fontsize=MIN_FONT_PT)
    if title:
        fig.suptitle(title)
    show(fig, alt)


def filters(weight: Tensor, *, alt: str, ncols: int = 8, title: str | None = None) -> None:
    """Show convolution kernels ``weight (Tensor[C_out, C_in, kH, kW])``: RGB when C_in is 3, else the first input channel."""
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a 4-D tensor (C_out, C_in, kH, kW), got {getattr(weight, 'shape', type(weight))}")
    kernels = weight.detach() if weight.shape[1] == 3 else weight.detach()[:, :1]
    image_grid(kernels, alt=alt, ncols=ncols, title=title, normalize=True, scale=0.9, cmap="RdBu_r")


def feature_maps(maps: Tensor, *, alt: str, ncols: int = 8, title: str | None = None,
                 cmap: str = "viridis") -> None:
    """Show the channels of one feature map ``maps (Tensor[C, H, W])`` (or ``[1, C, H, W]``) side by side."""
    if isinstance(maps, Tensor) and maps.dim() == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be a (C, H, W) tensor, got {getattr(maps, 'shape', type(maps))}")
    image_grid(maps.detach()[:, None], alt=alt, ncols=ncols, title=title, normalize=True, cmap=cmap)


def learning_curves(histories: History | Mapping[str, History], *, alt: str,
                    metrics: Sequence[str] = ("loss", "acc"), title: str | None = None) -> None:
    """Plot training and validation curves, one panel per metric, one colour per run.

    Args:
        histories: a :class:`companion.train.History`, or several keyed by a run name.
        metrics: which metrics to plot; each ``m`` is drawn from ``train_m`` (solid) and ``val_m`` (dashed).
    """
    runs = {"": histories} if not isinstance(histories, Mapping) else dict(histories)
    fig, axes = plt.subplots(1, len(metrics), figsize=(COLUMN_WIDTH, 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, (name, history) in enumerate(runs.items()):
            colour = f"C{i}"
            for split, style in (("train", "-"), ("val", "--")):
                values = getattr(history, f"{split}_{metric}", None)
                if values:
                    ax.plot(history.epoch[: len(values)], values, style, color=colour,
                            label=f"{name} {split}".strip(), marker="o", markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel({"loss": "loss", "acc": "accuracy"}.get(metric, metric))
        ax.grid(alpha=0.3)
    # One legend for all panels, below them, where it covers no curve.
    # As many columns as fit the figure's width: text widths differ between matplotlib releases
    # and fonts, so the legend is measured rather than guessed.
    handles, labels = axes[0][0].get_legend_handles_labels()
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(labels), 4), 0, -1):
        legend = fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False)
        # the saved figure adds 0.1 in of padding on either side of what is drawn
        if ncol == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width - 0.3 * fig.dpi:
            break
        legend.remove()
    rows = -(-len(labels) // ncol)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07 * rows + 0.03, 1, 1))
    show(fig, alt)
