"""Stepwise learning of eigenmodes by a linearised Barlow Twins (Simon et al., 2023).

Book: *SSL learns eigenmodes one at a time* (``book/stepwise.md``), eqs. (sw-loss),
(sw-gamma), (sw-flow), (sw-logistic), (sw-steptime), (sw-final); notebook
``11_stepwise_ssl``.

The Nyström model in raw coordinates, f(x) = Ãᵀk_x + γ (eq. (model)), is linear in Ã. With
the *covariance* form of Barlow Twins (no per-dimension standardisation, off-diagonal weight
1, both views centred over the batch), eq. (sw-loss),

    C = (Z̄ₐᵀZ̄_b + Z̄_bᵀZ̄ₐ) / (2B),      L = ‖C − I‖²_F,

the embedding cross-covariance is C = ÃᵀΓÃ with the m×m *contrastive operator*, eq. (sw-gamma),

    Γ = sym E[ (k_a − μ_a)(k_b − μ_b)ᵀ ],   k_a = k(x_a, x̃), k_b = k(x_b, x̃) two views of x,

and gradient descent with step η is, to first order in the augmentation noise, eq. (sw-flow),

    Ã ← Ã − 4η Γ Ã (ÃᵀΓÃ − I).

γ gets no gradient (the views are centred). From an initialisation aligned with the
eigenvectors u_j of Γ (eigenvalues λ_j) the columns decouple and the eigenvalue c_j of C
follows the logistic curve, eq. (sw-logistic),

    c_j(t) = c_j(0) e^{8ηλ_j t} / (1 + c_j(0)(e^{8ηλ_j t} − 1)),

so mode j reaches c_j = ½ at t_j = ln((1 − c_j(0)) / c_j(0)) / (8ηλ_j) steps, eq. (sw-steptime)
(for gradient *descent* with a finite step the linear phase grows by (1 + 4ηλ_j)² per step:
the code uses the rate ρ_j = 2 ln(1 + 4ηλ_j) in place of 8ηλ_j, the same as η → 0):
the modes are learned one at a time, in the order of λ_j, from a small initialisation. The
final representation is Ã_∞ = U_h Λ_h^{-1/2} R for any orthogonal R, eq. (sw-final): the
top-h eigenfunctions of the contrastive kernel k_Γ(x, x') = k_xᵀ Γ ... (book), whitened.
From a small *random* Ã₀ the same picture holds approximately with the effective initial
value c_j(0) = λ_j ‖(I − P_{<j}) Ã₀ᵀu_j‖² (the part of the j-th mode's output direction not
already taken by the modes learned before it; greedy, Simon et al. §4).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.linalg import subspace_angles

from ..backend import host_rng, to_host
from ..kernels import block_rows
from ..model import NystromModel
from ..nystrom import Nystrom

__all__ = ["CovarianceBarlowTwins", "scale_init", "contrastive_operator", "StepwisePrediction",
           "predict", "simulate", "SpectrumTrace", "track_spectrum", "step_times",
           "learned_subspace_angles", "final_angle", "threshold_claim", "mode_overlaps"]


# --- the loss ---------------------------------------------------------------------------
def _centre(Z):
    return Z - Z.mean(axis=0, keepdims=True)


@dataclass(frozen=True)
class CovarianceBarlowTwins:
    """Barlow Twins on the centred cross-covariance of the views, eq. (sw-loss).

    ``C = sym(Z̄ₐᵀZ̄_b)/B``, ``L = Σ_ij w_ij (C − I)_ij²`` with w_ii = 1, w_ij = ``lambda_off``.
    With ``lambda_off = 1`` (default, Simon et al.) L = ‖C − I‖²_F. Unlike the library's
    Barlow Twins (:mod:`krepes_lib.losses.barlow_twins`) the embeddings are not standardised,
    so the loss sees their scale and a small initialisation starts near the saddle at 0.

    Gradient, eq. (sw-loss-grad): with G = 2 w ⊙ (C − I) (symmetric),
    ∂L/∂Zₐ = Z̄_b G / B and ∂L/∂Z_b = Z̄ₐ G / B.
    """

    name: ClassVar[str] = "covariance_barlow_twins"
    lambda_off: float = 1.0

    def __post_init__(self):
        if not self.lambda_off >= 0:
            raise ValueError(f"CovarianceBarlowTwins: lambda_off must be >= 0, got {self.lambda_off}.")

    def _forward(self, Za, Zb):
        if Za.ndim != 2 or Za.shape != Zb.shape or Za.shape[0] < 2:
            raise ValueError(f"CovarianceBarlowTwins: Za and Zb must both be (B, h) with B >= 2; got "
                             f"{Za.shape} and {Zb.shape}.")
        B, h = Za.shape
        Na, Nb = _centre(Za), _centre(Zb)
        S = Na.T @ Nb / B
        C = 0.5 * (S + S.T)
        w = self.lambda_off + (1.0 - self.lambda_off) * np.eye(h, dtype=Za.dtype)
        R = C - np.eye(h, dtype=Za.dtype)
        return B, Na, Nb, w, R

    def value(self, Za, Zb):
        """L of eq. (sw-loss)."""
        _, _, _, w, R = self._forward(Za, Zb)
        return np.asarray((w * R * R).sum())

    def value_and_grad(self, Za, Zb):
        """``(L, (dZa, dZb))``, eq. (sw-loss-grad)."""
        B, Na, Nb, w, R = self._forward(Za, Zb)
        G = 2.0 * w * R
        return np.asarray((w * R * R).sum()), (Nb @ G / B, Na @ G / B)

    def ggn_matvec(self, Za, Zb, Va, Vb):
        """Gauss–Newton product for the residual √w ⊙ (C − I) with Q = 2I."""
        B, Na, Nb, w, _ = self._forward(Za, Zb)
        S = (_centre(Va).T @ Nb + Na.T @ _centre(Vb)) / B
        G = 2.0 * w * 0.5 * (S + S.T)
        return Nb @ G / B, Na @ G / B


# --- initialisation ---------------------------------------------------------------------
def scale_init(model: NystromModel, scale: float) -> NystromModel:
    """Multiply the model's main parameter (Ã or W) by ``scale`` in place; γ ← 0.

    With ``NystromModel(..., init="random")`` E[Ã₀ᵀK_mmÃ₀] = I_h; after ``scale_init(model, s)``
    it is s² I_h: a *small* initialisation for s ≪ 1 (the regime of eq. (sw-logistic)).
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number (e.g. 1e-3); got {scale!r}.")
    main = model.params["A_tilde" if model.coords == "raw" else "W"]
    main *= model.dtype.type(scale)
    model.params["gamma"][...] = 0
    return model


# --- the contrastive operator -----------------------------------------------------------
def contrastive_operator(nystrom: Nystrom, X, augment, n_draws: int = 10, seed=0):
    """Γ of eq. (sw-gamma): the symmetrised centred cross-covariance of the landmark
    kernel rows of two augmented views, averaged over ``n_draws`` pairs of views of X.

    Each draw augments the whole X (as :func:`krepes_lib.train.fit` does with
    ``batch_size = n``: the table augmenter draws donors within the batch) and streams the
    kernel rows in blocks (no n×m array). Float64 on the host. Returns Γ (m, m).
    """
    if not callable(augment):
        raise TypeError("augment must be a callable (X, rng) -> X_view, e.g. krepes_lib.augment.TableAugmenter().")
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}.")
    X = np.asarray(to_host(X))
    n, m = X.shape[0], nystrom.m
    rng = host_rng(seed)
    L = nystrom.landmarks
    rows = block_rows(n, m, X.shape[1], 8, nystrom.memory_budget)
    Gam = np.zeros((m, m))
    for _ in range(int(n_draws)):
        Xa, Xb = augment(X, rng), augment(X, rng)
        S, sa, sb = np.zeros((m, m)), np.zeros(m), np.zeros(m)
        for i in range(0, n, rows):
            Ka = to_host(nystrom.kernel(Xa[i:i + rows], L)).astype(np.float64)
            Kb = to_host(nystrom.kernel(Xb[i:i + rows], L)).astype(np.float64)
            S += Ka.T @ Kb
            sa += Ka.sum(0)
            sb += Kb.sum(0)
        S = S / n - np.outer(sa / n, sb / n)
        Gam += 0.5 * (S + S.T)
    return Gam / int(n_draws)


# --- closed form ------------------------------------------------------------------------
@dataclass
class StepwisePrediction:
    """The linearised model's prediction, eqs. (sw-logistic)–(sw-final).

    Attributes
    ----------
    eigvals : (h,) top eigenvalues λ_1 ≥ … ≥ λ_h of Γ.
    U : (m, h) their eigenvectors.
    c0 : (h,) effective initial values c_j(0).
    lr : float, the step η.
    rates : (h,) ρ_j = 2 ln(1 + 4ηλ_j): the per-step growth rate of c_j in the linear phase
        of gradient *descent* (ρ_j → 8ηλ_j, the gradient-flow rate, as η → 0).
    step_times : (h,) t_j (steps) at which c_j = ½, eq. (sw-steptime) with ρ_j.
    A_final : (m, h) U_h Λ_h^{-1/2}, eq. (sw-final) (up to a rotation R).
    """

    eigvals: np.ndarray
    U: np.ndarray
    c0: np.ndarray
    lr: float
    rates: np.ndarray = field(init=False)
    step_times: np.ndarray = field(init=False)
    A_final: np.ndarray = field(init=False)

    def __post_init__(self):
        self.rates = 2.0 * np.log1p(4.0 * self.lr * self.eigvals)
        self.step_times = np.log((1.0 - self.c0) / self.c0) / self.rates
        self.A_final = self.U / np.sqrt(self.eigvals)[None, :]

    def curves(self, t):
        """c_j(t) for steps t, shape (len(t), h), eq. (sw-logistic)."""
        t = np.asarray(t, dtype=np.float64)[:, None]
        e = np.exp(np.minimum(self.rates[None, :] * t, 700.0))
        return self.c0 * e / (1.0 + self.c0 * (e - 1.0))


def predict(Gamma, h: int, lr: float, A0=None, c0=None) -> StepwisePrediction:
    """Closed-form stepwise prediction for the top ``h`` modes of Γ.

    Parameters
    ----------
    Gamma : (m, m) symmetric, eq. (sw-gamma).
    h : int, number of modes (the representation dimension).
    lr : float, gradient step η (time is counted in steps).
    A0 : (m, h), optional
        Initial Ã. The effective c_j(0) = λ_j ‖(I − P_{<j}) Ã₀ᵀu_j‖² (greedy, see module).
    c0 : float or (h,), optional
        Use these initial values instead (the aligned initialisation Ã₀ = U_h diag(√(c0/λ))).
    """
    Gamma = np.asarray(Gamma, dtype=np.float64)
    if Gamma.ndim != 2 or Gamma.shape[0] != Gamma.shape[1] or not np.allclose(Gamma, Gamma.T, atol=1e-12 * np.abs(Gamma).max()):
        raise ValueError("Gamma must be a symmetric (m, m) matrix (see contrastive_operator).")
    if not 1 <= int(h) <= Gamma.shape[0]:
        raise ValueError(f"h must be in [1, m={Gamma.shape[0]}], got {h}.")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}.")
    w, V = np.linalg.eigh(Gamma)
    w, V = w[::-1][:h], V[:, ::-1][:, :h]
    if w[-1] <= 0:
        raise ValueError(f"Γ has only {(w > 0).sum()} positive eigenvalues < h={h}: lower h "
                         "(the modes with λ ≤ 0 are never learned).")
    if (A0 is None) == (c0 is None):
        raise ValueError("pass exactly one of A0 (an initial Ã) or c0 (initial eigenvalues of C).")
    if c0 is not None:
        c = np.broadcast_to(np.asarray(c0, dtype=np.float64), (int(h),)).copy()
    else:
        A0 = np.asarray(to_host(A0), dtype=np.float64)
        Q = A0.T @ V  # column j: the output direction Ã₀ᵀu_j of mode j
        c = np.empty(int(h))
        basis = np.zeros((A0.shape[1], 0))
        for j in range(int(h)):
            q = Q[:, j] - basis @ (basis.T @ Q[:, j])
            c[j] = w[j] * (q @ q)
            nrm = np.linalg.norm(q)
            if nrm > 0:
                basis = np.column_stack([basis, q / nrm])
    if not np.all((c > 0) & (c < 1)):
        raise ValueError(f"the initial values c_j(0) must lie in (0, 1); got {c}: use a smaller "
                         "initialisation scale (scale_init) for the stepwise regime.")
    return StepwisePrediction(eigvals=w, U=V, c0=c, lr=float(lr))


def simulate(Gamma, A0, lr: float, steps: int, record_every: int = 1):
    """Gradient descent on the linearised model, eq. (sw-flow), without augmentation noise.

    Returns ``(t, eig)``: recorded steps and the eigenvalues of C = ÃᵀΓÃ, descending,
    shape (len(t), h). Float64; the reference for :func:`predict` and :func:`track_spectrum`.
    """
    G = np.asarray(Gamma, dtype=np.float64)
    A = np.array(to_host(A0), dtype=np.float64)
    h = A.shape[1]
    I = np.eye(h)
    ts, eigs = [], []
    for s in range(int(steps) + 1):
        GA = G @ A
        C = A.T @ GA
        if s % record_every == 0:
            ts.append(s)
            eigs.append(np.linalg.eigvalsh(C)[::-1])
        A -= (4.0 * lr) * GA @ (C - I)
    return np.asarray(ts), np.asarray(eigs)


# --- training and its spectrum ----------------------------------------------------------
@dataclass
class SpectrumTrace:
    """What :func:`track_spectrum` recorded after every ``record_every`` steps.

    t : (T,) steps; eig : (T, h) eigenvalues of the views' cross-covariance C, descending;
    A : (T, m, h) snapshots of Ã; loss : per-epoch training loss (History.loss).
    """

    t: np.ndarray
    eig: np.ndarray
    A: np.ndarray
    loss: list

    def plot(self, ax, pred: "StepwisePrediction | None" = None, title: str = "", log: bool = False):
        """The eigenvalues of C(t) against the step on a matplotlib ``ax`` (one colour per mode), with
        the closed form's curves (eq. (sw-logistic), ``pred.curves``) dashed when ``pred`` is given."""
        import matplotlib.pyplot as plt

        colors = plt.cm.viridis(np.linspace(0, 0.9, self.eig.shape[1]))
        for k in range(self.eig.shape[1]):
            ax.plot(self.t, self.eig[:, k], color=colors[k], lw=2)
            if pred is not None:
                ax.plot(self.t, pred.curves(self.t)[:, k], "--", color="k", lw=0.8)
        ax.set_xlabel("optimiser step (full batch)")
        ax.set_ylabel("eigenvalues of C(t)")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(max(self.eig[1:].min(), self.eig.max() * 1e-8), self.eig.max() * 2)
        ax.set_title(title)
        return ax


def track_spectrum(model: NystromModel, X, loss, epochs: int, lr: float, Gamma_eval,
                   optimizer: str = "sgd", augment="auto", seed: int = 0, batch_size=None,
                   record_every: int = 1) -> SpectrumTrace:
    """Train with :func:`krepes_lib.train.fit` and record the spectrum of C(t) = Ã(t)ᵀΓ_eval Ã(t).

    ``Gamma_eval`` is a contrastive operator estimated from view pairs *not* used in training
    (:func:`contrastive_operator` with another seed): C(t) is then the views' cross-covariance
    of the model at step t (eq. (sw-gamma)), for any loss. ``batch_size=None`` means the full
    batch (one step per epoch, the setting of eq. (sw-flow)).
    """
    from ..train import fit

    if model.coords != "raw":
        raise ValueError("track_spectrum needs coords='raw' (the linear-in-Ã model of eq. (sw-flow)).")
    n = X.shape[0]
    B = n if batch_size is None else int(batch_size)
    per_epoch = max(n // B, 1)
    G = np.asarray(Gamma_eval, dtype=np.float64)
    ts, eigs, As = [], [], []

    def record(mdl, step):
        A = np.array(to_host(mdl.A_tilde), dtype=np.float64)
        ts.append(step)
        eigs.append(np.linalg.eigvalsh(A.T @ G @ A)[::-1])
        As.append(A)

    record(model, 0)
    counter = {"epoch": 0}

    def eval_fn(mdl):
        counter["epoch"] += record_every
        record(mdl, min(counter["epoch"], epochs) * per_epoch)
        return float(eigs[-1].sum())

    hist = fit(model, X, loss, epochs=int(epochs), batch_size=B, seed=seed, optimizer=optimizer,
               lr=lr, augment=augment, eval_fn=eval_fn, eval_every=int(record_every), progress=False)
    return SpectrumTrace(t=np.asarray(ts), eig=np.asarray(eigs), A=np.asarray(As), loss=list(hist.loss))


def step_times(t, eig, final=None, level: float = 0.5):
    """First step at which the k-th eigenvalue reaches ``level`` × its final value.

    ``final`` defaults to the last recorded eigenvalues (1 for the linearised Barlow Twins,
    eq. (sw-final)). Linear interpolation between records; NaN if never reached.
    """
    t = np.asarray(t, dtype=np.float64)
    eig = np.asarray(eig, dtype=np.float64)
    target = level * (eig[-1] if final is None else np.broadcast_to(final, eig.shape[1:]))
    out = np.full(eig.shape[1], np.nan)
    for k in range(eig.shape[1]):
        above = np.flatnonzero(eig[:, k] >= target[k])
        if above.size:
            i = above[0]
            if i == 0:
                out[k] = t[0]
            else:
                y0, y1 = eig[i - 1, k], eig[i, k]
                out[k] = t[i - 1] + (t[i] - t[i - 1]) * (target[k] - y0) / (y1 - y0)
    return out


def _feature_angle(nystrom: Nystrom, X, A1, A2):
    """Largest principal angle (radians) between span(K̄A1) and span(K̄A2) on the centred rows of X."""
    F = to_host(nystrom.features(X, np.column_stack([A1, A2]).astype(nystrom.dtype))).astype(np.float64)
    F -= F.mean(0)
    k1 = A1.shape[1]
    return float(np.max(subspace_angles(F[:, :k1], F[:, k1:])))


def learned_subspace_angles(nystrom: Nystrom, X, trace: SpectrumTrace, prediction: StepwisePrediction,
                            Gamma_eval, ks, at_steps):
    """For each k in ``ks``: at step ``at_steps[k]`` take the top-k eigenvectors V_k of C(t)
    and return the largest principal angle (radians) between the functions K̄ Ã(t) V_k and the
    predicted top-k eigenfunctions K̄ U_k, on the rows of X. Small angles for every k mean the
    modes were learned in the predicted order."""
    G = np.asarray(Gamma_eval, dtype=np.float64)
    out = []
    for k, s in zip(ks, at_steps):
        i = int(np.argmin(np.abs(trace.t - s)))
        A = trace.A[i]
        w, V = np.linalg.eigh(A.T @ G @ A)
        Vk = V[:, ::-1][:, :k]
        out.append(_feature_angle(nystrom, X, A @ Vk, prediction.U[:, :k]))
    return np.asarray(out)


def final_angle(nystrom: Nystrom, X, A, prediction: StepwisePrediction):
    """Largest principal angle (radians) between the learned representation K̄Ã and the
    predicted final one K̄ U_h Λ_h^{-1/2} (eq. (sw-final)) on the rows of X."""
    return _feature_angle(nystrom, X, np.asarray(A, dtype=np.float64), prediction.A_final)


def threshold_claim(claim: str, values, threshold: float, unit: str, paper: str):
    """A :class:`krepes_lib.claims.Claim` for "the per-seed metric is below ``threshold``":
    a = the per-seed values, b = the threshold. Decide it with the rule the notebook names,
    ``kr.claims.decide([...], kr.claims.Paired("less"))`` (one-sided t-test of value − threshold)."""
    from ..claims import Claim

    values = [float(v) for v in values]
    return Claim(claim, paper, a=values, b=float(threshold),
                 what=f"d = per-seed value − threshold ({threshold:.3g}{unit})",
                 ours=f"per seed {', '.join(f'{v:.3g}' for v in values)}{unit} (threshold {threshold:.3g}{unit})")


def mode_overlaps(A, Gamma, n_modes: int):
    """‖Qᵀu_j‖ for the first ``n_modes`` eigenvectors u_j of Γ (descending), Q an orthonormal
    basis of span(Ã): 1 = mode j is in the learned span, 0 = absent. Shows *which* modes won the
    race when a mode beyond h (with a larger initial overlap) took part of an output slot."""
    A = np.asarray(to_host(A), dtype=np.float64)
    _, V = np.linalg.eigh(np.asarray(Gamma, dtype=np.float64))
    V = V[:, ::-1][:, :int(n_modes)]
    Q, _ = np.linalg.qr(A)
    return np.linalg.norm(Q.T @ V, axis=0)
