"""Kernel PCA by gradient, and a robust (Huber / Moreau-envelope) variant.

Book: *Kernel PCA by gradient* (``book/kpca_gradient.md``), eqs. (kg-recon), (kg-huber),
(kg-grad); notebook ``12_kpca_gradient``. Seed 003: KPCA through the dual of a difference of
convex functions (Tonin et al.), where the squared norm of the KPCA objective is replaced by a
Moreau envelope to gain robustness.

Two parts:

* **Timing**: exact KPCA by the eigendecomposition of the centred n×n Gram matrix
  (:func:`exact_kpca`) against the library's ``"kpca"`` loss trained by
  :func:`krepes_lib.train.fit` on the Nyström model (:func:`kpca_fit_trace`, which records the
  subspace angle to the exact solution after every epoch).
* **Robustness**: on Nyström features φ_i ∈ R^r (:meth:`Nystrom.feature_map`) the
  reconstruction objective, eq. (kg-recon) / (kg-huber),

      L(W, μ) = (1/n) Σ_i H_δ(‖r_i‖),   r_i = (I − WWᵀ)(φ_i − μ),   W ∈ R^{r×h}, μ ∈ R^r,

  with the Huber function H_δ(s) = s²/2 (s ≤ δ), δ(s − δ/2) (s > δ) — δ times the Moreau
  envelope of |·| with parameter δ. δ = ∞ is the plain reconstruction loss whose minimisers
  span the top-h principal subspace of the centred features (KPCA; μ = mean). Its gradient,
  eq. (kg-grad), with weights w_i = min(1, δ/‖r_i‖), G = diag(w) R, Y = Φ − 1μᵀ:

      ∇_W L = −(1/n) (GᵀY + YᵀG) W,      ∇_μ L = −(1/n) (I − WWᵀ) Gᵀ1.

  A point with a large residual (an outlier) gets weight δ/‖r_i‖ < 1 instead of 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh, subspace_angles

from ..backend import host_rng, to_host
from ..timing import Timer

__all__ = ["exact_kpca", "centred_gram", "subspace_angle", "kpca_fit_trace", "huber_value", "nystrom_kpca", "plant_outliers", "time_claim",
           "huber_value_and_grad", "fit_robust", "RobustResult", "time_to_accuracy"]


# --- exact KPCA -------------------------------------------------------------------------
def centred_gram(kernel, X):
    """H K H for the n×n Gram matrix (the dense reference; O(n²) memory by construction)."""
    K = np.asarray(to_host(kernel(X, X)), dtype=np.float64)
    mu = K.mean(0)
    return K - mu[None, :] - mu[:, None] + mu.mean()


def exact_kpca(kernel, X, h: int):
    """Top-h kernel PCA scores (n, h) by the dense eigendecomposition of H K H, and the
    wall seconds of (Gram, eigendecomposition). The reference the gradient methods chase."""
    if not 1 <= int(h) < X.shape[0]:
        raise ValueError(f"h must be in [1, n), got h={h} for n={X.shape[0]}.")
    T = Timer()
    with T("gram"):
        Kc = centred_gram(kernel, X)
    n = Kc.shape[0]
    with T("eigh"):
        w, V = eigh(Kc, subset_by_index=[n - int(h), n - 1])
    return V[:, ::-1] * np.sqrt(np.maximum(w[::-1], 0))[None, :], (T.get("gram"), T.get("eigh"))


def subspace_angle(F1, F2) -> float:
    """Largest principal angle (degrees) between the column spans of the centred F1 and F2."""
    F1 = np.asarray(to_host(F1), dtype=np.float64)
    F2 = np.asarray(to_host(F2), dtype=np.float64)
    return float(np.degrees(np.max(subspace_angles(F1 - F1.mean(0), F2 - F2.mean(0)))))


def kpca_fit_trace(model, X, reference, epochs: int, batch_size: int, lr=None, optimizer="adam", seed=0):
    """Train ``model`` with the library's ``"kpca"`` loss (eq. (kpca-loss)) by
    :func:`krepes_lib.train.fit` and return ``(seconds, angles)``: cumulative training wall time
    and the subspace angle (degrees) of ``model.embed(X)`` to ``reference`` (e.g. the exact
    scores) at initialisation and after every epoch. Evaluation time is not counted."""
    from ..train import fit

    angles = [subspace_angle(model.embed(X), reference)]

    def eval_fn(mdl):
        angles.append(subspace_angle(mdl.embed(X), reference))
        return angles[-1]

    hist = fit(model, X, "kpca", epochs=int(epochs), batch_size=int(batch_size), seed=seed,
               optimizer=optimizer, lr=lr, augment=None, eval_fn=eval_fn, progress=False)
    return np.concatenate([[0.0], np.cumsum(hist.time)]), np.asarray(angles)


def time_to_accuracy(seconds, angles, target_deg: float) -> float:
    """First time at which the angle is ≤ ``target_deg`` (NaN if never)."""
    idx = np.flatnonzero(np.asarray(angles) <= target_deg)
    return float(np.asarray(seconds)[idx[0]]) if idx.size else float("nan")


# --- robust objective -------------------------------------------------------------------
def _residuals(Phi, W, mu):
    Y = Phi - mu[None, :]
    R = Y - (Y @ W) @ W.T
    return Y, R


def _check(Phi, W, mu, delta):
    if Phi.ndim != 2 or W.ndim != 2 or W.shape[0] != Phi.shape[1] or mu.shape != (Phi.shape[1],):
        raise ValueError(f"need Phi (n, r), W (r, h), mu (r,); got {Phi.shape}, {W.shape}, {mu.shape}.")
    if not delta > 0:
        raise ValueError(f"delta must be > 0 (np.inf for the plain squared loss); got {delta}.")


def huber_value(Phi, W, mu, delta: float) -> float:
    """L(W, μ) of eq. (kg-huber): mean Huber loss of the reconstruction residual norms."""
    _check(Phi, W, mu, delta)
    _, R = _residuals(Phi, W, mu)
    s = np.linalg.norm(R, axis=1)
    H = np.where(s <= delta, 0.5 * s * s, delta * (s - 0.5 * delta)) if np.isfinite(delta) else 0.5 * s * s
    return float(H.mean())


def huber_value_and_grad(Phi, W, mu, delta: float):
    """``(L, ∇_W L, ∇_μ L, weights)``, eq. (kg-grad). ``delta = np.inf``: plain PCA loss."""
    _check(Phi, W, mu, delta)
    n = Phi.shape[0]
    Y, R = _residuals(Phi, W, mu)
    s = np.linalg.norm(R, axis=1)
    if np.isfinite(delta):
        w = np.minimum(1.0, delta / np.maximum(s, 1e-300))
        H = np.where(s <= delta, 0.5 * s * s, delta * (s - 0.5 * delta))
    else:
        w = np.ones(n)
        H = 0.5 * s * s
    G = R * w[:, None]
    gW = -(G.T @ (Y @ W) + Y.T @ (G @ W)) / n
    g_sum = G.sum(0)
    gmu = -(g_sum - W @ (W.T @ g_sum)) / n
    return float(H.mean()), gW, gmu, w


@dataclass
class RobustResult:
    """W (r, h), μ (r,), per-step loss, final weights w_i (1 = inlier-like, < 1 = down-weighted)."""

    W: np.ndarray
    mu: np.ndarray
    loss: np.ndarray
    weights: np.ndarray


def fit_robust(Phi, h: int, delta: float, steps: int = 300, lr: float | None = None,
               lr_mu: float = 0.5, seed=0, progress: bool = False) -> RobustResult:
    """Minimise eq. (kg-huber) by full-batch gradient descent from a small random W and the
    coordinate-wise median μ. ``lr`` (for W) defaults to 0.25 / λ_max(Σ_w), Σ_w = (1/n) Σ w_i y_iy_iᵀ
    the second moment about the median weighted by the initial Huber weights w_i = min(1, δ/‖y_i‖):
    near the solution the curvature along W is at most 4λ_max of the weighted second moment
    (with the plain loss's Σ an outlier would shrink the step for everyone). μ has curvature
    ≤ 1 (the weights times the projector I − WWᵀ): ``lr_mu``."""
    Phi = np.asarray(to_host(Phi), dtype=np.float64)
    if not 1 <= int(h) <= Phi.shape[1]:
        raise ValueError(f"h must be in [1, r={Phi.shape[1]}], got {h}.")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    rng = host_rng(seed)
    W = 0.1 * rng.standard_normal((Phi.shape[1], int(h))) / np.sqrt(Phi.shape[1])
    mu = np.median(Phi, axis=0)
    if lr is None:
        Y = Phi - mu
        w0 = np.minimum(1.0, delta / np.maximum(np.linalg.norm(Y, axis=1), 1e-300))
        lr = 0.25 / np.linalg.eigvalsh((Y * w0[:, None]).T @ Y / Phi.shape[0])[-1]
    losses = np.empty(int(steps))
    it = range(int(steps))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"robust KPCA δ={delta:.3g}")
    for k in it:
        val, gW, gmu, w = huber_value_and_grad(Phi, W, mu, delta)
        losses[k] = val
        W -= lr * gW
        mu -= lr_mu * gmu
    return RobustResult(W=W, mu=mu, loss=losses, weights=w)


# --- helpers for the experiments --------------------------------------------------------
def nystrom_kpca(nystrom, X, h: int):
    """Centred KPCA in the Nyström feature space in closed form: scores Φ_c V_h (n, h) with
    V_h the top-h eigenvectors of the r×r covariance of Φ = :meth:`Nystrom.feature_map` (X)
    (streamed: Φ is n×r with r ≤ m). The eigendecomposition the gradient method replaces."""
    Phi = np.asarray(to_host(nystrom.feature_map(X)), dtype=np.float64)
    Pc = Phi - Phi.mean(0)
    if not 1 <= int(h) <= Pc.shape[1]:
        raise ValueError(f"h must be in [1, r={Pc.shape[1]}], got {h}.")
    _, V = np.linalg.eigh(Pc.T @ Pc / Pc.shape[0])
    return Pc @ V[:, ::-1][:, :int(h)]


def plant_outliers(X, frac: float, noise: float, seed=0):
    """Append round(frac·n) gross outliers: copies of random rows plus N(0, noise²) on every
    coordinate (scattered directions). Returns ``(X_all, is_outlier)``."""
    if not 0 <= frac < 1:
        raise ValueError(f"frac must be in [0, 1), got {frac}.")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    X = np.asarray(to_host(X))
    rng = host_rng(seed)
    k = int(round(frac * X.shape[0]))
    out = X[rng.integers(0, X.shape[0], k)] + noise * rng.standard_normal((k, X.shape[1]))
    return np.vstack([X, out.astype(X.dtype)]), np.r_[np.zeros(X.shape[0], bool), np.ones(k, bool)]


def time_claim(claim: str, t_method, t_reference, paper: str):
    """A :class:`krepes_lib.claims.Claim` for "the method reaches the target faster than the
    reference", paired by seed: a = the method's seconds (NaN: never reached the target),
    b = the reference's. Decide it with ``kr.claims.Paired("less", missing="fails")``: a seed
    that never reached the target fails the claim (it is evidence against it, not a gap)."""
    from ..claims import Claim

    tm = np.asarray(t_method, dtype=np.float64)
    tr = np.asarray(t_reference, dtype=np.float64)
    fmt = ", ".join("never" if not np.isfinite(a) else f"{a:.3g}" for a in tm)
    return Claim(claim, paper, a=tm, b=tr, what="d = t(method) − t(reference), seconds",
                 ours=f"method {fmt} s vs reference {', '.join(f'{b:.3g}' for b in tr)} s")
