"""Conjugate gradient in ordinary audits, and the cost of the guarded step's dampings.

Usage::

    python benchmarks/bench_audit_step.py            # README audit + v3 MNIST × SimCLR (quick network)
    python benchmarks/bench_audit_step.py --no-v3    # the README audits only (seconds)

Book: *Theory* eqs. (cg), (cg-shift), (audit-step), (audit-accept), (precond). Measures what
chose the defaults of ``kr.Options`` for the audit (``cg_rtol``, ``cg_max_iter``, ``audit_step``):

1. **CG convergence** of the audit's system (H_GN + δI) d = −∇L on: the README's Adult audit
   (float32, whitened; and the same in float64, which shows float32's floor), the same model
   in raw coordinates with and without the FALKON-like preconditioner (eq. (precond)), and the
   quick-size v3 audits of notebook 14 (eNTK of the quick MNIST × SimCLR and Adult × Barlow
   Twins networks, float64, raw) with and without the preconditioner. Per system: seconds per
   product, the iterations CG needs to reach each relative residual, the smallest relative
   residual it reaches in 1,000 iterations, the error of the step at that tolerance against
   the most accurate iterate, and the loss at the step.
2. **The Levenberg–Marquardt dampings** δ, 10δ, … (eq. (audit-accept)) on the MNIST × SimCLR
   audit, solved three ways — one multi-shift CG run (eq. (cg-shift), the library's way), a
   cold CG solve per δ, and a solve per δ warm-started from the previous δ's step — counting
   products (the cost unit: each is two passes over the batches' kernel blocks) and seconds,
   interleaved in the same run.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import krepes_lib as kr
from krepes_lib.cg import conjugate_gradient, conjugate_gradient_shifted
from krepes_lib.curvature import GGNOperator
from krepes_lib.losses import make_objective
from krepes_lib.preconditioner import FalkonPreconditioner
from krepes_lib.problem import BatchProblem

TOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-8)


def system(model, loss, X, augment, damping, seed=0, n_batches=4, batch_size=256):
    """The audit's operator (as ``kr.audit`` builds it) and its right-hand side."""
    obj = make_objective(loss)
    st = obj.init_state(model)
    batches = kr.view_batches(X, n_batches, batch_size, views=obj.views, augment=augment, seed=seed)
    batches = [tuple(v.astype(model.dtype, copy=False) for v in b) for b in batches]
    op = GGNOperator([BatchProblem(model, obj, st, b, 2**30) for b in batches], damping=damping,
                     keys=(model._main, "gamma"))
    L0, g = op.gradient()
    return op, float(L0), -op.flatten(g)


def falkon(op, model, X, damping):
    """P of eq. (precond) on the Ã block (λ = δ), γ unpreconditioned — ``kr.FalkonPrecond``."""
    P = kr.FalkonPrecond(FalkonPreconditioner.from_nystrom(model.nystrom, X, damping))
    return lambda v: op.flatten({**op.unflatten(v), **{k: u for k, u in P.apply(op.first, op.unflatten(v)).items()
                                                       if k in op.keys}})


def convergence(name, op, L0, b, precond=None, cap=1000):
    snaps = {}
    t = time.perf_counter()
    res = conjugate_gradient(op.flat_matvec, b, rtol=1e-14, max_iter=cap, precond=precond,
                             callback=lambda it, x, n: snaps.__setitem__(it, x.copy()) and False)
    per = (time.perf_counter() - t) / max(op.n_matvec, 1)
    rel = res.residual_norms[:, 0] / res.rhs_norms[0]
    best = int(np.argmin(rel))
    ref = snaps[best] if best else np.zeros_like(b)
    print(f"\n{name}: N = {b.size} ({b.dtype}), δ = {op.damping:g}, loss at θ₀ {L0:.4f}, "
          f"{1e3 * per:.1f} ms per product; smallest relative residual {rel[best]:.1e} (iteration {best}), "
          f"{rel[min(100, rel.size - 1)]:.1e} at iteration 100")
    for tol in TOLS:
        hit = np.nonzero(rel <= tol)[0]
        if not hit.size:
            print(f"   rtol {tol:.0e}: not reached in {cap} iterations")
            continue
        k = int(hit[0])
        x = snaps[k] if k else np.zeros_like(b)
        err = float(np.linalg.norm(x - ref) / np.linalg.norm(ref))
        print(f"   rtol {tol:.0e}: {k:4d} iterations, step error vs the best iterate {err:.1e}, "
              f"loss at the step {op.value_at(op.unflatten(x), 1.0):.5f}")


def lm_cost(name, op, b, dampings, rtol, cap=1000, repeats=3):
    """Products and seconds to get every damping's step: multi-shift vs cold vs warm solves."""
    base = op.damping

    def shifted():
        return [r.x for r in conjugate_gradient_shifted(op.flat_matvec, b, [d - base for d in dampings],
                                                        rtol=rtol, max_iter=cap)]

    def sequential(warm):
        xs, x0 = [], None
        for d in dampings:
            r = conjugate_gradient(op.flat_matvec, b, damping=d - base, rtol=rtol, max_iter=cap, x0=x0)
            xs.append(r.x)
            x0 = r.x if warm else None
        return xs

    ways = {"multi-shift CG (one run)": shifted, "cold CG per δ": lambda: sequential(False),
            "warm-started CG per δ": lambda: sequential(True)}
    best = {k: np.inf for k in ways}
    prods, sols = {}, {}
    for _ in range(repeats):  # interleaved
        for k, f in ways.items():
            n0, t = op.n_matvec, time.perf_counter()
            sols[k] = f()
            best[k] = min(best[k], time.perf_counter() - t)
            prods[k] = op.n_matvec - n0
    ref = sols["cold CG per δ"]
    print(f"\n{name}: the steps at δ = {', '.join(f'{d:g}' for d in dampings)} (rtol {rtol:g})")
    for k in ways:
        err = max(float(np.linalg.norm(x - r) / np.linalg.norm(r)) for x, r in zip(sols[k], ref))
        print(f"   {k:<28}{prods[k]:5d} products {best[k]:8.3f} s  (×{best[k] / best['multi-shift CG (one run)']:.2f})"
              f"  max step difference vs cold {err:.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-v3", action="store_true", help="skip the quick v3 networks (trained on first use)")
    ap.add_argument("--rtol", type=float, default=kr.Options().cg_rtol, help="rtol of the damping comparison")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)
    X, y, Xt, yt = kr.data.load_split("adult", n_train=5000, n_test=2000, seed=0)
    kernel = kr.RBF(sigma=kr.median_sigma(X))
    lm = kr.select_landmarks(X, m="sqrt", method="kmeans++")
    for dt, coords in (("float32", "whitened"), ("float64", "whitened"), ("float32", "raw")):
        model = kr.NystromModel(kr.Nystrom(kernel, lm, dtype=dt), h=32, coords=coords)
        Xd = X.astype(dt)
        op, L0, b = system(model, "barlow_twins", Xd, "table", 1e-2)
        convergence(f"README Adult × Barlow Twins, {dt}, {coords}", op, L0, b)
        if coords == "raw":
            op, L0, b = system(model, "barlow_twins", Xd, "table", 1e-2)
            convergence(f"README Adult × Barlow Twins, {dt}, raw, FALKON-preconditioned", op, L0, b,
                        precond=falkon(op, model, Xd, 1e-2))
    if args.no_v3:
        return
    from krepes_lib.backend import to_device
    from krepes_lib.studies import v3
    for ds, loss, S in (("mnist", "simclr", 4), ("adult", "barlow_twins", 8)):
        net = v3.load_network(ds, loss, 0, "quick", progress=False)
        split = v3.network_split(net, 1000, 500)
        k = v3.TimedKernel(v3.entk_kernel(net, "sketch", S, 0))
        Xs = to_device(split.X, dtype="float64")
        k.scale = 1.0
        k.scale = v3.unit_diagonal_scale(k, Xs)
        lms = kr.select_landmarks(Xs, m=120, method="kmeans++", kernel=k, seed=0, kernel_space=True)
        model = kr.NystromModel(kr.Nystrom(k, lms, dtype=Xs.dtype), h=16, coords="raw", init="pc", seed=0)
        op, L0, b = system(model, loss, Xs, split.train, 1e-2, n_batches=2, batch_size=128)
        convergence(f"v3 quick {ds} × {loss}, eNTK (S={S}), float64, raw (notebook 14)", op, L0, b)
        convergence(f"v3 quick {ds} × {loss}, eNTK, FALKON-preconditioned", op, L0, b,
                    precond=falkon(op, model, Xs, 1e-2))
        if ds == "mnist":
            lm_cost(f"v3 quick {ds} × {loss}: Levenberg–Marquardt dampings", op, b,
                    [1e-2 * 10.0 ** j for j in range(6)], args.rtol)


if __name__ == "__main__":
    main()
