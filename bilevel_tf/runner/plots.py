"""The runners' figures as PNG files (matplotlib's Agg backend: no display needed): curves with optional
bands, overlaid histograms, rows of images."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (runs on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    path: str,
    curves: Mapping[str, Tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    bands: Optional[Mapping[str, Tuple]] = None,
    markers: bool = False,
) -> str:
    """One line per label (x, y); optional shaded (low, high) bands per label. Saved as PNG. Points get markers
    with ``markers=True``, and always on a curve whose points all coincide (its line alone would be invisible)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in curves.items():
        (line,) = ax.plot(x, y, label=label, marker="o" if markers or _one_point(x, y) else None, markersize=4)
        if bands and label in bands:
            lo, hi = bands[label]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _one_point(x: Sequence[float], y: Sequence[float]) -> bool:
    """Fewer than two distinct finite points: nothing for a line to join."""
    points = {(float(a), float(b)) for a, b in zip(x, y) if np.isfinite(a) and np.isfinite(b)}
    return len(points) < 2


def plot_histograms(
    path: str, groups: Mapping[str, Sequence[float]], *, xlabel: str, title: str = "", bins: int = 30
) -> str:
    """Overlaid histograms (e.g. learned importance of clean vs flipped points)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    all_values = np.concatenate([np.asarray(v, float).ravel() for v in groups.values() if len(v)] or [np.zeros(1)])
    edges = np.histogram_bin_edges(all_values, bins=bins)
    for label, values in groups.items():
        ax.hist(np.asarray(values, float).ravel(), bins=edges, alpha=0.55, label=f"{label} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_image_rows(path: str, rows: Mapping[str, np.ndarray], *, title: str = "", max_cols: int = 10) -> str:
    """A grid with one row per label (e.g. poison starts above learned poisons); images in [0, 1]."""
    plt = pyplot()
    n_rows = len(rows)
    n_cols = max(1, min(max_cols, max(len(v) for v in rows.values())))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.2 * n_cols, 1.3 * n_rows + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                img = np.clip(np.asarray(images[c], float), 0, 1)
                ax.imshow(
                    img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img,
                    cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None,
                    vmin=0,
                    vmax=1,
                )
        axes[r][0].set_title(label, fontsize=8, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_figure(fig, path: str, title: str = "") -> str:
    """Title, tight layout, PNG at the resolution of the other figures, and free the figure."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
