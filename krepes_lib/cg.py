"""Matrix-free (preconditioned) conjugate gradient for several right-hand sides.

Book: *Theory* (``book/theory.md``), section "Optimisation", equation (cg); spec §4
("Solvers: conjugate gradient with damping λ, a stopping tolerance and an iteration cap").

The system, in the paper's symbols
----------------------------------
The one-step GGN-Newton direction (spec §4) solves

    (H_GN + λ I) vec(ΔÃ) = −vec(∇_Ã L(Ã₀)),        H_GN = Jᵀ Q J,            eq. (cg)

with H_GN applied matrix-free as vjp(Q · jvp(v)). With a preconditioner M ≈ H_GN + λI
(for instance the loss-agnostic P = M⁻¹ = (K_mn K_nm / n + λ K_mm)⁻¹ of eq. (precond),
:mod:`krepes_lib.preconditioner`), CG works implicitly on the symmetric system

    P^{1/2} (H + λ I) P^{1/2} y = P^{1/2} b,         x = P^{1/2} y,

and only ever applies P, never P^{1/2}. Generic symbols in this module:
H = ``matvec`` (symmetric positive semi-definite), λ = ``damping``, b = a column of ``B``,
x = a column of ``X``. Which variable holds which factor inside :func:`conjugate_gradient`:

=============  ==========================================================
``X``          iterates x_t (k, r); the solution vec(ΔÃ) at the end
``R``          residuals r_t = b − (H + λI) x_t (recursive, refreshed)
``Z``          preconditioned residuals z_t = P r_t  (= r_t without P)
``P_dir``      search directions p_t (P-conjugate, one per column)
``HP_dir``     (H + λI) p_t, the only matvec of an iteration
``rz``         r_tᵀ z_t per column (host, float64)
``alpha``      step lengths α_t = r_tᵀ z_t / p_tᵀ (H + λI) p_t (host)
``beta``       β_t = r_{t+1}ᵀ z_{t+1} / r_tᵀ z_t (host)
=============  ==========================================================

Behaviour (after Falkon's ``optim/conjgrad.py``, re-derived): the r columns of B are
solved independently (own α, β, convergence); a converged column is frozen; the true
residual B − (H + λI) X is recomputed every ``refresh_every`` iterations, before a
column is declared converged, and at ``max_iter``, so convergence is never declared on
a drifted recursive residual; divisions are guarded by dtype-aware epsilons
(:func:`krepes_lib.backend.eps`); a callback can stop early. Everything follows B
(NumPy or CuPy, :func:`krepes_lib.backend.get_xp`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .backend import eps, get_xp, resolve_dtype, to_host
from .defaults import CG

__all__ = ["CGResult", "conjugate_gradient", "conjugate_gradient_shifted", "true_residual"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes
    ----------
    x : array, shape like B, (k,) or (k, r)
        The last iterate, in B's namespace and dtype.
    iterations : int
        Number of CG updates of x (= ``residual_norms.shape[0] - 1``).
    residual_norms : numpy.ndarray, shape (iterations + 1, r), float64 (host)
        ‖b_j − (H + λI) x_j‖₂ per iteration (row 0: the initial residual) and column
        (r = 1 for a 1-D B). Rows of refresh iterations and the **last row** are true
        residuals; other rows are the CG recursion's.
    converged : numpy.ndarray, shape (r,), bool (host)
        Column j reached ‖r_j‖ ≤ rtol·‖b_j‖ (checked on the true residual).
    breakdown : numpy.ndarray, shape (r,), bool (host)
        Column j was stopped because pᵀ(H + λI)p ≤ eps·‖p‖‖(H + λI)p‖ (H + λI not
        positive definite along p, or zero) or rᵀPr ≤ eps·‖r‖‖Pr‖ (P not positive definite).
    stopped_by : {'rtol', 'max_iter', 'callback', 'breakdown'}
        Why the iteration ended: every column converged; the iteration cap; the
        callback returned True; or every column not converged broke down.
    rhs_norms : numpy.ndarray, shape (r,), float64 (host)
        ‖b_j‖₂.
    """

    x: object
    iterations: int
    residual_norms: np.ndarray
    converged: np.ndarray
    breakdown: np.ndarray
    stopped_by: str
    rhs_norms: np.ndarray

    @property
    def relative_residuals(self) -> np.ndarray:
        """‖b_j − (H + λI) x_j‖ / ‖b_j‖ for the returned x, shape (r,) (0 where b_j = 0)."""
        last = self.residual_norms[-1]
        return np.divide(last, self.rhs_norms, out=np.zeros_like(last), where=self.rhs_norms > 0)


def _colnorms(xp, A) -> np.ndarray:
    """Euclidean norms of the columns of A (k, r) as a host float64 array (r,)."""
    return to_host(xp.sqrt((A * A).sum(axis=0))).astype(np.float64)


def _coldots(xp, A, C) -> np.ndarray:
    """Column-wise inner products aⱼᵀcⱼ, host float64 (r,)."""
    return to_host((A * C).sum(axis=0)).astype(np.float64)


def conjugate_gradient(
    matvec: Callable,
    B,
    x0=None,
    damping: float = 0.0,
    rtol: float = CG["rtol"],
    max_iter: int = CG["max_iter"],
    precond: Optional[Callable] = None,
    refresh_every: int = CG["refresh_every"],
    callback: Optional[Callable] = None,
) -> CGResult:
    """Solve (H + λI) X = B by (preconditioned) conjugate gradient, column by column.

    Eq. (cg) of ``book/theory.md`` / spec §4; see the module docstring for the system in
    the paper's symbols and the factor held by each variable.

    Parameters
    ----------
    matvec : callable
        V ↦ H V for an array V shaped like B ((k,) or (k, r)), returning the same shape
        in the same namespace. H must be symmetric, and act on the columns of V
        independently. An operator on whole matrices (e.g. the GGN product on Ã of
        shape (m, h)) is passed as a 1-D system: ravel B and reshape inside ``matvec``.
    B : array, shape (k,) or (k, r)
        Right-hand sides b_1..b_r (NumPy or CuPy); float32/float64 are kept, other
        dtypes are cast to :func:`krepes_lib.backend.resolve_dtype` ``(None)``.
    x0 : array, shape like B, optional
        Initial guess (default 0). Not modified.
    damping : float, default 0.0
        λ ≥ 0 added to H (Levenberg–Marquardt / Tikhonov damping).
    rtol : float, default ``defaults.CG["rtol"]`` (1e-4)
        Column j has converged when ‖b_j − (H + λI) x_j‖ ≤ rtol·‖b_j‖. A column with
        b_j = 0 is solved exactly by x_j = 0 (set at the start, whatever x0 holds).
        Do not ask for much less than ``eps(B.dtype) · cond(H + λI)``.
    max_iter : int, default ``defaults.CG["max_iter"]`` (200)
        Iteration cap (each iteration costs one ``matvec``; refreshes cost one more).
    precond : callable, optional
        V ↦ P V with P ≈ (H + λI)⁻¹ symmetric positive definite, on arrays shaped like B
        (e.g. :meth:`krepes_lib.preconditioner.FalkonPreconditioner.apply`).
    refresh_every : int, default 10
        Recompute the true residual R = B − (H + λI) X every this many iterations
        (residual replacement against round-off drift).
    callback : callable, optional
        ``callback(it, X, residual_norms) -> bool`` after iteration ``it`` (1-based), with
        the current iterate X (shaped like B; do not modify it) and the host float64
        residual norms of shape (r,). Returning True stops the iteration.

    Returns
    -------
    CGResult

    Raises
    ------
    ValueError
        On a B that is not 1-D/2-D, an x0 of another shape, damping < 0, rtol < 0,
        max_iter < 0, refresh_every < 1, or a matvec/precond result of the wrong shape.
    TypeError
        When B and x0 (or a matvec result) mix NumPy and CuPy arrays.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> res = conjugate_gradient(lambda V: A @ V, np.eye(2), rtol=1e-12)
    >>> bool(np.allclose(res.x, np.linalg.inv(A))), res.stopped_by, res.iterations
    (True, 'rtol', 2)
    """
    xp = get_xp(B, x0)
    B = xp.asarray(B)
    if B.ndim not in (1, 2):
        raise ValueError(f"B must have shape (k,) or (k, r); got shape {B.shape}.")
    dt = B.dtype if B.dtype in _FLOATS else resolve_dtype(None)
    one_d = B.ndim == 1
    B2 = (B[:, None] if one_d else B).astype(dt, copy=False)
    k, r = B2.shape
    if not np.isfinite(damping) or damping < 0:
        raise ValueError(f"damping={damping} must be a finite number >= 0 (the λ of H + λI).")
    if not rtol >= 0:
        raise ValueError(f"rtol={rtol} must be >= 0.")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter={max_iter} must be a non-negative integer.")
    if int(refresh_every) != refresh_every or refresh_every < 1:
        raise ValueError(f"refresh_every={refresh_every} must be a positive integer.")
    max_iter, refresh_every, damping = int(max_iter), int(refresh_every), float(damping)
    tiny = eps(dt)

    def as_user(V):  # (k, r) -> B's shape
        return V[:, 0] if one_d else V

    def checked(out, V, name):
        get_xp(out, V)  # refuses a host/device mix
        out = xp.asarray(out)
        if out.shape != as_user(V).shape:
            raise ValueError(f"{name} returned shape {out.shape}; expected {as_user(V).shape} (like B).")
        out = out.astype(dt, copy=False)
        return out[:, None] if one_d else out

    def apply_H(V):  # (H + λI) V
        HV = checked(matvec(as_user(V)), V, "matvec")
        return HV + damping * V if damping else HV

    def apply_P(V):  # P V (identity without a preconditioner)
        return V if precond is None else checked(precond(as_user(V)), V, "precond")

    def on_device(v):  # host (r,) -> device row (1, r) in dt
        return xp.asarray(v.astype(dt))[None, :]

    # --- initial state -------------------------------------------------------------------
    b_norm = _colnorms(xp, B2)
    thresh = rtol * b_norm
    if x0 is None:
        X = xp.zeros((k, r), dtype=dt)
        R = B2.copy()
    else:
        x0 = xp.asarray(x0)
        if x0.shape != B.shape:
            raise ValueError(f"x0 has shape {x0.shape}; it must match B's shape {B.shape}.")
        X = (x0[:, None] if one_d else x0).astype(dt, copy=True)
        zero_b = b_norm == 0
        if zero_b.any():  # x = 0 solves (H + λI) x = 0 exactly
            X *= on_device((~zero_b).astype(np.float64))
        R = B2 - apply_H(X)
    norms = _colnorms(xp, R)
    history = [norms]
    converged = norms <= thresh
    broken = np.zeros(r, dtype=bool)

    Z = apply_P(R)
    rz = _coldots(xp, R, Z)
    active = ~converged
    bad = active & ~(rz > tiny * norms * _colnorms(xp, Z))  # P not PD along r (or NaN)
    broken |= bad
    active &= ~bad
    P_dir = Z * on_device(active.astype(np.float64))

    it = 0
    last_is_true = True
    stopped_by = None
    if not active.any():
        stopped_by = "breakdown" if broken.any() else "rtol"

    # --- iterations ---------------------------------------------------------------------
    while stopped_by is None:
        if it >= max_iter:
            stopped_by = "max_iter"
            break
        HP_dir = apply_H(P_dir)
        pHp = _coldots(xp, P_dir, HP_dir)
        # curvature guard: pᵀ(H+λI)p must be positive relative to ‖p‖‖(H+λI)p‖
        bad = active & ~(pHp > tiny * _colnorms(xp, P_dir) * _colnorms(xp, HP_dir))
        broken |= bad
        active &= ~bad
        if not active.any():
            stopped_by = "breakdown"
            break
        it += 1
        alpha = np.where(active, rz / np.where(active, pHp, 1.0), 0.0)
        a = on_device(alpha)
        X += a * P_dir
        R_rec = R - a * HP_dir
        rec_norms = _colnorms(xp, R_rec)
        # refresh periodically, at the cap, and before declaring any column converged
        refresh = (it % refresh_every == 0) or it == max_iter or bool((active & (rec_norms <= thresh)).any())
        if refresh:
            R = B2 - apply_H(X)
            norms = _colnorms(xp, R)
        else:
            R, norms = R_rec, rec_norms
        last_is_true = refresh
        converged |= active & (norms <= thresh)
        active &= ~converged
        history.append(norms)
        if callback is not None and callback(it, as_user(X), norms.copy()):
            stopped_by = "callback"
            break
        if not active.any():
            stopped_by = "breakdown" if broken.any() else "rtol"
            break
        Z = apply_P(R)
        rz_new = _coldots(xp, R, Z)
        bad = active & ~(rz_new > tiny * norms * _colnorms(xp, Z))
        broken |= bad
        active &= ~bad
        if not active.any():
            stopped_by = "breakdown"
            break
        beta = np.where(active, rz_new / np.where(active, rz, 1.0), 0.0)
        P_dir = (Z + on_device(beta) * P_dir) * on_device(active.astype(np.float64))
        rz = np.where(active, rz_new, rz)

    if not last_is_true:  # the reported last row is always the true residual of x
        history[-1] = _colnorms(xp, B2 - apply_H(X))
    return CGResult(
        x=as_user(X),
        iterations=it,
        residual_norms=np.stack(history),
        converged=converged.copy(),
        breakdown=broken.copy(),
        stopped_by=stopped_by,
        rhs_norms=b_norm,
    )


def conjugate_gradient_shifted(
    matvec: Callable,
    b,
    shifts,
    rtol: float = CG["rtol"],
    max_iter: int = CG["max_iter"],
    refresh_every: int = CG["refresh_every"],
    verify: bool = True,
) -> list:
    """Solve (H + σ_j I) x_j = b for every shift σ_j from **one** Krylov sequence, eq. (cg-shift).

    Krylov spaces are shift-invariant, K_k(H + σI, b) = K_k(H, b), so the CG iterates of every
    shifted system follow from the CG run on the smallest shift σ₀ = min σ_j at the cost of two
    vector updates per shift and iteration, and no extra ``matvec`` (multi-shift CG, "CG-M":
    Jegerlehner 1996; Frommer 2003). With s = σ_j − σ₀ ≥ 0 and the base CG's α_k, β_k, r_k,

        ζ_{k+1} = ζ_k ζ_{k−1} α_{k−1} / (α_k β_{k−1} (ζ_{k−1} − ζ_k) + ζ_{k−1} α_{k−1} (1 + s α_k)),
        α_kˢ = α_k ζ_{k+1}/ζ_k,  x_{k+1}ˢ = x_kˢ + α_kˢ p_kˢ,
        β_kˢ = (ζ_{k+1}/ζ_k)² β_k,  p_{k+1}ˢ = ζ_{k+1} r_{k+1} + β_kˢ p_kˢ,        eq. (cg-shift)

    with ζ₋₁ = ζ₀ = 1, α₋₁ = 1, β₋₁ = 0, p₀ˢ = b; the residual of system j is ζ_k r_k
    (collinear with the base residual). Used by the guarded audit (eq. (audit-accept)): the
    Levenberg–Marquardt dampings δ, 10δ, … cost one solve, that of δ. No preconditioner (a
    preconditioner is not shift-invariant) and no residual replacement (it would break the
    collinearity). A shift is frozen once ζ_k‖r_k‖ ≤ rtol‖b‖; the smallest shift (the worst
    conditioned, the last to get there) ends the run, and its convergence is declared on the
    **true** residual (one ``matvec`` when the estimate crosses rtol, again at most every
    ``refresh_every`` iterations while the estimate has drifted below what the dtype reaches),
    or the run ends at ``max_iter``. ``verify`` checks the others' true residuals at the end.

    Parameters
    ----------
    matvec : callable
        v ↦ H v on 1-D arrays (symmetric positive semi-definite H).
    b : array (k,)
    shifts : sequence of float ≥ 0
        σ_j, in any order (one result per entry, in that order).
    rtol, max_iter, refresh_every : as in :func:`conjugate_gradient`
    verify : bool, default True
        Make the last row of every result the **true** residual ‖b − (H + σ_j I) x_j‖ and
        decide ``converged`` on it (one ``matvec`` per shift not already checked). With False
        the last row of a shift other than the smallest may be the recursion's ζ_k‖r_k‖ (the
        caller verifies the shifts it uses, e.g. with :func:`true_residual`).

    Returns
    -------
    list of CGResult
        ``iterations`` is the iteration at which shift j converged (or the last one);
        ``residual_norms`` its history, shape (iterations + 1, 1).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]]); b = np.array([1.0, 2.0])
    >>> res = conjugate_gradient_shifted(lambda v: A @ v, b, [0.0, 1.0], rtol=1e-12)
    >>> bool(np.allclose(res[1].x, np.linalg.solve(A + np.eye(2), b)))
    True
    """
    xp = get_xp(b)
    b = xp.asarray(b)
    if b.ndim != 1:
        raise ValueError(f"b must have shape (k,); got shape {b.shape} (one right-hand side).")
    dt = b.dtype if b.dtype in _FLOATS else resolve_dtype(None)
    b = b.astype(dt, copy=False)
    sig = np.asarray([float(s) for s in shifts], dtype=np.float64)
    if sig.size == 0 or not np.all(np.isfinite(sig)) or np.any(sig < 0):
        raise ValueError(f"shifts={list(shifts)!r} must be a non-empty list of finite numbers >= 0.")
    if not rtol >= 0:
        raise ValueError(f"rtol={rtol} must be >= 0.")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter={max_iter} must be a non-negative integer.")
    max_iter = int(max_iter)
    sigma0 = float(sig.min())
    j0 = int(np.argmin(sig))
    s = sig - sigma0
    J = sig.size
    tiny = eps(dt)

    def apply_A(v):  # (H + σ₀ I) v
        out = xp.asarray(matvec(v))
        get_xp(out, v)
        if out.shape != v.shape:
            raise ValueError(f"matvec returned shape {out.shape}; expected {v.shape} (like b).")
        out = out.astype(dt, copy=False)
        return out + sigma0 * v if sigma0 else out

    b_norm = float(to_host(xp.sqrt((b * b).sum())))
    thresh = rtol * b_norm
    X = [xp.zeros_like(b) for _ in range(J)]
    P = [b.copy() for _ in range(J)]
    r = b.copy()
    p = b.copy()
    rr = b_norm ** 2
    zeta = np.ones(J)
    zeta_prev = np.ones(J)
    alpha_prev, beta_prev = 1.0, 0.0
    history = [[b_norm] for _ in range(J)]
    checked = np.full(J, -1)
    true_last = np.ones(J, dtype=bool)
    done_at = np.full(J, -1)
    converged = np.full(J, b_norm <= thresh)
    done_at[converged] = 0
    if b_norm == 0:  # x = 0 solves every system exactly
        converged[:] = True
    breakdown = False
    it = 0
    while not converged.all() and it < max_iter:
        Ap = apply_A(p)
        pAp = float(to_host((p * Ap).sum()))
        p_norm = float(to_host(xp.sqrt((p * p).sum())))
        Ap_norm = float(to_host(xp.sqrt((Ap * Ap).sum())))
        if not pAp > tiny * p_norm * Ap_norm:
            breakdown = True
            break
        it += 1
        alpha = rr / pAp
        active = np.nonzero(~converged)[0]
        zeta_next = np.empty(J)
        for j in active:
            denom = alpha * beta_prev * (zeta_prev[j] - zeta[j]) + zeta_prev[j] * alpha_prev * (1.0 + s[j] * alpha)
            zeta_next[j] = zeta[j] * zeta_prev[j] * alpha_prev / denom if denom != 0 else 0.0
            X[j] += float(alpha * zeta_next[j] / zeta[j]) * P[j]  # host floats keep the dtype
        r = r - alpha * Ap
        rr_new = float(to_host((r * r).sum()))
        beta = rr_new / rr
        r_norm = rr_new ** 0.5
        for j in active:
            P[j] = float(zeta_next[j]) * r + float((zeta_next[j] / zeta[j]) ** 2 * beta) * P[j]
            zeta_prev[j], zeta[j] = zeta[j], zeta_next[j]
            history[j].append(abs(zeta[j]) * r_norm)
            if history[j][-1] <= thresh and j != j0:  # frozen on the estimate; verify=True checks it
                converged[j] = True
                done_at[j] = it
                true_last[j] = False
                continue
            # the smallest shift decides when to stop: its convergence is declared on the true
            # residual, never on the recursion's estimate alone (which drifts below what the
            # dtype can reach); re-checked at most every refresh_every iterations
            if history[j][-1] <= thresh and it - checked[j] >= (1 if checked[j] < 0 else refresh_every):
                checked[j] = it
                history[j][-1] = true_residual(matvec, b, X[j], float(sig[j]))
                true_last[j] = True
                if history[j][-1] <= thresh:
                    converged[j] = True
                    done_at[j] = it
            else:
                true_last[j] = False
        p = r + beta * p
        alpha_prev, beta_prev, rr = alpha, beta, rr_new
    stop = "breakdown" if breakdown else ("rtol" if converged.all() else "max_iter")
    out = []
    for j in range(J):
        hist = np.asarray(history[j], dtype=np.float64)[:, None]
        conv = bool(converged[j])
        if verify and not true_last[j]:
            hist[-1, 0] = true_residual(matvec, b, X[j], float(sig[j]))
            conv = bool(hist[-1, 0] <= thresh) if b_norm > 0 else True
        out.append(CGResult(x=X[j], iterations=hist.shape[0] - 1, residual_norms=hist,
                            converged=np.asarray([conv]), breakdown=np.asarray([breakdown and not conv]),
                            stopped_by="rtol" if bool(converged[j]) else stop,
                            rhs_norms=np.asarray([b_norm])))
    return out


def true_residual(matvec: Callable, b, x, shift: float = 0.0) -> float:
    """‖b − (H + σI) x‖₂ (host float), one ``matvec``: the check of a CG result, eq. (cg)."""
    xp = get_xp(b, x)
    r = b - xp.asarray(matvec(x)).astype(b.dtype, copy=False) - shift * x
    return float(to_host(xp.sqrt((r * r).sum())))
