"""PyTorch twins of the library's hot paths: the same math written the way a PyTorch user would.

Each twin takes the same arrays as the library call it is timed against (same data, batches,
views, kernel, model parameters, loss hyper-parameters, Adam settings) and uses autograd
(training) or ``torch.func`` (jvp, vjp, grad) instead of the hand-derived products:

* the kernel block K = exp(−(‖x‖² + ‖l‖² − 2 x·lᵀ)/(2σ²)) (addmm + exp, as in a typical
  PyTorch RBF layer), F = K Ã + 1γᵀ;
* the three losses written in torch from the book's formulas (eqs. (bt-loss), (simclr-loss),
  (vic-loss)), with the library's hyper-parameters;
* the Gauss–Newton product of the library (eqs. (bt-ggn), (simclr-ggn), (vic-ggn)) as
  torch.func's jvp → HVP of the outer function → vjp over the residual map r(θ), i.e.
  the same matrix Jᵀ Q J the library applies (BT and VICReg: Q = 2I on their residuals;
  SimCLR: the softmax cross-entropy Hessian on the logits).

The suite checks that each twin computes the library's numbers (loss, gradient, GGN
product, audit step) before it times anything. Nothing here is imported by the library.

Arrays come in as NumPy (``--device cpu``) or as device arrays of the library's namespace
(``--device gpu``: CuPy); :func:`as_t` turns them into tensors on the same device, CuPy arrays
through DLPack (no copy), so a twin on a GPU runs on CUDA tensors next to the library on CuPy.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.func import grad, jvp, vjp

from krepes_lib.defaults import LOSS_HYPER

T = torch.as_tensor


def as_t(a):
    """A tensor of ``a``: tensors as they are, device arrays through DLPack, NumPy without a copy."""
    if torch.is_tensor(a):
        return a
    from krepes_lib.backend import is_device_array

    if is_device_array(a):
        return torch.from_dlpack(a)
    return torch.from_numpy(np.ascontiguousarray(a))


def cat(views):
    """The views of one batch stacked, in their own namespace (NumPy or the device's)."""
    from krepes_lib.backend import get_xp

    return get_xp(*views).concatenate(views)


def to_numpy(t):
    return t.detach().cpu().numpy()


def rbf_block(Xv, L, Lsq, sigma):
    """K = exp(−max(‖x‖² + ‖l‖² − 2x·l, 0)/(2σ²)) — eq. (k-rbf), the usual GEMM form."""
    D = torch.addmm(Lsq[None, :] + (Xv * Xv).sum(1, keepdim=True), Xv, L.T, alpha=-2.0)
    return torch.exp(D.clamp_min_(0.0).mul_(-1.0 / (2.0 * sigma * sigma)))


# --- losses (value) -------------------------------------------------------------------------
def _std(Z, eps):
    Zc = Z - Z.mean(0, keepdim=True)
    return Zc / torch.sqrt((Zc * Zc).mean(0) + eps)


def bt_residual(Za, Zb, hp=LOSS_HYPER["barlow_twins"]):
    """r = W ⊙ (C − I), L = ‖r‖², eq. (bt-loss); W² = λ_off off the diagonal, 1 on it."""
    B, h = Za.shape
    C = _std(Za, hp["eps"]).T @ _std(Zb, hp["eps"]) / B
    eye = torch.eye(h, dtype=Za.dtype, device=Za.device)
    W = math.sqrt(hp["lambda_off"]) + (1.0 - math.sqrt(hp["lambda_off"])) * eye
    return (W * (C - eye),)


def simclr_logits(Za, Zb, hp=LOSS_HYPER["simclr"]):
    Z = torch.cat([Za, Zb])
    Zh = Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True).clamp_min(1e-12)
    return (Zh @ Zh.T / hp["tau"],)


def simclr_outer(S):
    """Mean over the 2B anchors of −log softmax_{j≠k}(S_k)_{pos(k)}, eq. (simclr-loss)."""
    N = S.shape[0]
    B = N // 2
    Sm = S.masked_fill(torch.eye(N, dtype=torch.bool, device=S.device), float("-inf"))
    ar = torch.arange(N, device=S.device)
    pos = (ar + B) % N
    return (torch.logsumexp(Sm, 1) - S[ar, pos]).mean()


def _vic_stats(Z, eps):
    B, h = Z.shape
    Zc = Z - Z.mean(0, keepdim=True)
    sd = torch.sqrt((Zc * Zc).sum(0) / (B - 1) + eps)
    Cov = Zc.T @ Zc / (B - 1)
    return sd, Cov * (1.0 - torch.eye(h, dtype=Z.dtype, device=Z.device))


def vic_residual(Za, Zb, hp=LOSS_HYPER["vicreg"]):
    """The Gauss–Newton residuals of eq. (vic-ggn): invariance and off-diagonal covariances."""
    B, h = Za.shape
    ra = math.sqrt(hp["lambda_inv"] / (B * h)) * (Za - Zb)
    ca = math.sqrt(hp["nu"] / h) * _vic_stats(Za, hp["eps"])[1]
    cb = math.sqrt(hp["nu"] / h) * _vic_stats(Zb, hp["eps"])[1]
    return (ra, ca, cb)


def vic_value(Za, Zb, hp=LOSS_HYPER["vicreg"]):
    """eq. (vic-loss): λ‖Za − Zb‖²/(Bh) + μ[v(Za) + v(Zb)]/2 + ν[c(Za) + c(Zb)]."""
    B, h = Za.shape
    sa, Ca = _vic_stats(Za, hp["eps"])
    sb, Cb = _vic_stats(Zb, hp["eps"])
    inv = ((Za - Zb) ** 2).sum() / (B * h)
    var = 0.5 * (torch.relu(1.0 - sa).mean() + torch.relu(1.0 - sb).mean())
    cov = ((Ca * Ca).sum() + (Cb * Cb).sum()) / h
    return hp["lambda_inv"] * inv + hp["mu"] * var + hp["nu"] * cov


def _sumsq(r):
    return sum((t * t).sum() for t in r)


LOSSES = {
    # name: (residual map r(Za, Zb), outer function of r, full loss value)
    "barlow_twins": (bt_residual, _sumsq, lambda Za, Zb: _sumsq(bt_residual(Za, Zb))),
    "simclr": (simclr_logits, lambda r: simclr_outer(r[0]), lambda Za, Zb: simclr_outer(simclr_logits(Za, Zb)[0])),
    "vicreg": (vic_residual, _sumsq, vic_value),
}


# --- training epoch -------------------------------------------------------------------------
class EpochTwin:
    """Adam on (Ã, γ) by autograd; the kernel block in torch; batches and views from numpy."""

    def __init__(self, loss, L, sigma, A0, gamma0, lr, betas, eps):
        self.value = LOSSES[loss][2]
        self.L = as_t(L)
        self.Lsq = (self.L * self.L).sum(1)
        self.sigma = float(sigma)
        self.A = as_t(A0).clone().requires_grad_(True)
        self.g = as_t(gamma0).clone().requires_grad_(True)
        self.opt = torch.optim.Adam([self.A, self.g], lr=lr, betas=betas, eps=eps)

    def step(self, views):
        B = views[0].shape[0]
        Xv = as_t(cat(views))
        K = rbf_block(Xv, self.L, self.Lsq, self.sigma)
        F = K @ self.A + self.g
        loss = self.value(F[:B], F[B:])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def run_epoch_twin(twin, X, B, augment, rng, perm):
    n_batches = X.shape[0] // B
    vals = []
    for bi in range(n_batches):
        Xb = X[perm[bi * B:(bi + 1) * B]]
        views = tuple(augment(Xb, rng) for _ in range(2))
        vals.append(twin.step(views))
    return float(np.mean(vals))


def value_and_grad(loss, K, A, g):
    """Loss and (∇Ã, ∇γ) by autograd for one batch with kernel block K (for the checks)."""
    A = as_t(A).clone().requires_grad_(True)
    g = as_t(g).clone().requires_grad_(True)
    K = as_t(K)
    B = K.shape[0] // 2
    F = K @ A + g
    val = LOSSES[loss][2](F[:B], F[B:])
    val.backward()
    return float(val), to_numpy(A.grad), to_numpy(g.grad)


# --- GGN product and CG by torch.func -------------------------------------------------------
class GGNTwin:
    """(Jᵀ Q J + δI) v over batches with fixed kernel blocks, by jvp → HVP of the outer → vjp."""

    def __init__(self, loss, Ks, A, g, damping):
        self.r, self.outer, self.value = LOSSES[loss]
        self.Ks = [as_t(K) for K in Ks]
        self.theta = (as_t(A).clone(), as_t(g).clone())
        self.damping = float(damping)

    def _res(self, K):
        B = K.shape[0] // 2

        def f(A, g):
            F = K @ A + g
            return self.r(F[:B], F[B:])
        return f

    def gradient(self):
        tot, gA, gg = 0.0, 0.0, 0.0
        for K in self.Ks:
            B = K.shape[0] // 2
            A = self.theta[0].clone().requires_grad_(True)
            g = self.theta[1].clone().requires_grad_(True)
            F = K @ A + g
            val = self.value(F[:B], F[B:])
            dA, dg = torch.autograd.grad(val, (A, g))
            tot, gA, gg = tot + float(val.detach()), gA + dA, gg + dg
        nb = len(self.Ks)
        return tot / nb, (gA / nb, gg / nb)

    def matvec(self, v):
        out = None
        for K in self.Ks:
            f = self._res(K)
            r0, Jv = jvp(f, self.theta, v)
            _, HJv = jvp(grad(self.outer), (r0,), (Jv,))
            _, pull = vjp(f, *self.theta)
            u = pull(HJv)
            out = u if out is None else tuple(a + b for a, b in zip(out, u))
        nb = len(self.Ks)
        return tuple(o / nb + self.damping * vi for o, vi in zip(out, v))

    def value_at(self, d):
        tot = 0.0
        for K in self.Ks:
            B = K.shape[0] // 2
            F = K @ (self.theta[0] + d[0]) + (self.theta[1] + d[1])
            tot += float(self.value(F[:B], F[B:]))
        return tot / len(self.Ks)


def cg(matvec, b, k):
    """k iterations of plain conjugate gradient from 0 on tuples of tensors."""
    dot = lambda a, c: sum((x * y).sum() for x, y in zip(a, c))  # noqa: E731
    x = tuple(torch.zeros_like(t) for t in b)
    r = b
    p = r
    rr = dot(r, r)
    for _ in range(int(k)):
        Ap = matvec(p)
        alpha = rr / dot(p, Ap)
        x = tuple(xi + alpha * pi for xi, pi in zip(x, p))
        r = tuple(ri - alpha * ai for ri, ai in zip(r, Ap))
        rr_new = dot(r, r)
        p = tuple(ri + (rr_new / rr) * pi for ri, pi in zip(r, p))
        rr = rr_new
    return x


def audit_twin(loss, batches, L, sigma, A0, g0, damping, k):
    """The one-step audit with torch: kernel blocks, autograd gradient, k CG steps of torch.func GGN."""
    Lt = as_t(L)
    Lsq = (Lt * Lt).sum(1)
    Ks = [rbf_block(as_t(cat(b)), Lt, Lsq, sigma) for b in batches]
    tw = GGNTwin(loss, Ks, A0, g0, damping)
    _, gr = tw.gradient()
    d = cg(tw.matvec, tuple(-t for t in gr), k)
    return d, tw.value_at(d)
