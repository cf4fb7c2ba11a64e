"""Influence results as tables (CSV) and image grids.

Book: *Interpretability* (``book/interpretability.md``), eqs. (int-is), (int-concept);
*The empirical NTK of a network*, section "An audit you can keep".

* :func:`topk_table` — a :class:`~krepes_lib.interpret.TopK` as rows ``test_row, rank,
  landmark, train_row, score[, concept_score][, labels]`` (a list of dicts; written as CSV,
  atomically, with ``path=``).
* :func:`signed_contributions` — per test row, the signed contribution of every landmark
  along a direction v: k(x̃_l, x_t)·⟨ΔÃ_l, v⟩ (eq. (int-concept)); with no v, v_t = the test
  row's own audited representation f(x_t)/‖f(x_t)‖, so positive = pulls f(x_t) along itself
  (attracting), negative = pushes it back (repelling).
* :func:`influence_grid` — a test image next to its K most attracting and K most repelling
  landmarks (matplotlib figure; saved atomically with ``path=``).
* :func:`gallery_grid` — the figure itself, from images and titles already chosen (the
  notebooks' galleries of attracting/repelling landmarks use it directly).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from ..backend import to_host

__all__ = ["topk_table", "signed_contributions", "influence_grid", "gallery_grid", "write_atomic"]


def write_atomic(path, write):
    """Call ``write(tmp_path)`` inside :func:`krepes_lib.files.atomic_path` (nothing half-written
    is ever visible under ``path``); creates the folder. Returns ``path`` as a string."""
    from ..files import atomic_path

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def topk_table(top, landmark_indices=None, y_t=None, y_landmarks=None, classes=None, path=None) -> list:
    """One row per (test row, rank): ``test_row, rank, landmark, train_row, score`` (+
    ``concept_score`` when the TopK has them, + ``test_label``/``landmark_label`` when labels
    are given, as class names with ``classes``). Written as CSV to ``path`` when given."""
    idx = np.asarray(to_host(top.indices))
    sc = np.asarray(to_host(top.scores), dtype=np.float64)
    cs = None if top.concept_scores is None else np.asarray(to_host(top.concept_scores), dtype=np.float64)
    li = None if landmark_indices is None else np.asarray(to_host(landmark_indices))
    yt = None if y_t is None else np.asarray(to_host(y_t))
    yl = None if y_landmarks is None else np.asarray(to_host(y_landmarks))

    def name(v):
        return classes[int(v)] if classes is not None else (v.item() if hasattr(v, "item") else v)

    rows = []
    for t in range(idx.shape[0]):
        for r in range(idx.shape[1]):
            l = int(idx[t, r])
            row = {"test_row": t, "rank": r + 1, "landmark": l,
                   "train_row": None if li is None else int(li[l]), "score": float(sc[t, r])}
            if cs is not None:
                row["concept_score"] = float(cs[t, r])
            if yt is not None:
                row["test_label"] = name(yt[t])
            if yl is not None:
                row["landmark_label"] = name(yl[l])
            rows.append(row)
    if path is not None:
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["test_row"])
                w.writeheader()
                w.writerows(rows)
        write_atomic(path, write)
    return rows


def signed_contributions(audit, X_t, v=None):
    """k(x̃_l, x_t)·⟨ΔÃ_l, v_t⟩, shape (n_t, m) (small test sets: the dense block)."""
    xp = audit.model.xp
    Xt = audit._prep(X_t)
    (_, K), = audit.kernel.blocks(Xt, audit.landmarks, rows=Xt.shape[0])
    if v is None:
        F = K @ audit.A + audit.gamma[None, :]
        V = F / xp.maximum(xp.linalg.norm(F, axis=1, keepdims=True), 1e-30)
        return K * (V @ audit.delta_A.T)
    v = xp.asarray(v, dtype=K.dtype).reshape(-1)
    v = v / max(float(xp.linalg.norm(v)), 1e-30)
    return K * (audit.delta_A @ v)[None, :]


def _show(ax, img, title=None, frame=None):
    img = np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)
    ax.imshow(img if img.ndim == 3 and img.shape[-1] == 3 else img.squeeze(), cmap=None if img.ndim == 3
              and img.shape[-1] == 3 else "gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    for sp in ax.spines.values():
        sp.set(edgecolor=frame or "black", linewidth=3 if frame else 0.5)


def gallery_grid(X_test, attract, repel, image_shape, test_titles=None, attract_titles=None, repel_titles=None,
                 suptitle=None, row_labels=None, frames=("green", "red"), path=None):
    """One row per test image: the image, then its attracting and its repelling landmarks.

    ``X_test`` (r, d) flattened channels-last images, or None for no test column (e.g. the
    landmarks of a concept); ``attract`` and ``repel`` (r, K, d) the landmark images of each row
    (any K each); titles are lists of the same shapes (or None), ``row_labels`` one label per row.
    Frames colour the attracting (green) and repelling (red) panels. Returns the matplotlib
    figure; ``path`` saves it (PNG, atomically).
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    A = np.asarray(to_host(attract), dtype=np.float64)
    R = np.asarray(to_host(repel), dtype=np.float64)
    c0 = 0 if X_test is None else 1  # the test column
    Xh = np.asarray(to_host(X_test), dtype=np.float64) if c0 else A[:, 0]
    shape = tuple(image_shape)
    if Xh.ndim != 2 or A.ndim != 3 or R.ndim != 3 or not (Xh.shape[0] == A.shape[0] == R.shape[0]):
        raise ValueError(f"gallery_grid: X_test {Xh.shape}, attract {A.shape}, repel {R.shape} must be (r, d), "
                         "(r, K, d), (r, K', d) with the same r.")
    if A.shape[2] != Xh.shape[1] or R.shape[2] != Xh.shape[1]:
        raise ValueError(f"gallery_grid: the landmark images have {A.shape[2]} / {R.shape[2]} columns and X_test "
                         f"{Xh.shape[1]}; pass landmark rows of the same data (audit.landmarks).")
    if int(np.prod(shape)) != Xh.shape[1]:
        raise ValueError(f"image_shape={shape} holds {int(np.prod(shape))} numbers but the rows have "
                         f"{Xh.shape[1]} columns; pass the data's image shape (split.image_shape).")
    r, ka, kr = Xh.shape[0], A.shape[1], R.shape[1]
    title = (lambda ts, *i: None if ts is None else ts[i[0]] if len(i) == 1 else ts[i[0]][i[1]])
    fig, axes = plt.subplots(r, c0 + ka + kr, figsize=(1.3 * (c0 + ka + kr), 1.55 * r), squeeze=False)
    for i in range(r):
        if c0:
            _show(axes[i, 0], Xh[i].reshape(shape), title(test_titles, i))
        for j in range(ka):
            _show(axes[i, c0 + j], A[i, j].reshape(shape), title(attract_titles, i, j), frames[0])
        for j in range(kr):
            _show(axes[i, c0 + ka + j], R[i, j].reshape(shape), title(repel_titles, i, j), frames[1])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    if path is not None:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    return fig


def influence_grid(audit, X_t, image_shape, rows=(0,), K: int = 5, v=None, y_t=None, y_landmarks=None,
                   classes=None, path=None):
    """For each test row in ``rows``: the test image, its K most attracting and its K most
    repelling landmarks by :func:`signed_contributions` (titles: landmark, label, score).

    ``image_shape`` is the data's (H, W[, C]) (rows flattened channels-last, the loaders'
    layout). Returns the matplotlib figure; ``path`` saves it (PNG, atomically).
    """
    rows = [int(r) for r in np.atleast_1d(rows)]
    Xh = np.asarray(to_host(X_t))
    L = np.asarray(to_host(audit.landmarks))
    shape = tuple(image_shape)  # checked against the rows by gallery_grid
    m = L.shape[0]
    K = max(1, min(int(K), m // 2 if m > 1 else 1))
    S = np.asarray(to_host(signed_contributions(audit, Xh[rows], v)), dtype=np.float64)
    lab = (lambda ys, i: "" if ys is None else f" {classes[int(ys[i])] if classes else int(ys[i])}")
    order = np.argsort(-S, axis=1)
    att, rep = order[:, :K], order[:, ::-1][:, :K]
    return gallery_grid(
        Xh[rows], L[att], L[rep], shape,
        test_titles=[f"test {t}{lab(y_t, t)}" for t in rows],
        attract_titles=[[f"+{l}{lab(y_landmarks, l)} {S[i, l]:.2g}" for l in att[i]] for i in range(len(rows))],
        repel_titles=[[f"−{l}{lab(y_landmarks, l)} {S[i, l]:.2g}" for l in rep[i]] for i in range(len(rows))],
        suptitle=f"test image | {K} most attracting landmarks (+) | {K} most repelling (−); "
                 "score k(x̃_l, x_t)·⟨ΔÃ_l, v⟩", path=path)
