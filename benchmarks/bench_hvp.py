"""Time one gradient, one lifted GGN product (HVP) and one k-iteration CG solve per loss.

Book: *Theory*, section "Second-order steps", eqs. (ggn-lift) and (newton-step); the
per-loss products are in *Derivations* §Gauss–Newton products.

For every two-view loss (and BYOL with ``--byol``) on the same batch of B samples × 2 views,
in the same run, this script times

* ``grad``        : one gradient as training computes it (:func:`krepes_lib.train.train_step`:
                    the (2B, m) kernel block, F = K Ã + 1γᵀ, the loss and its hand-derived
                    gradient, the backward Kᵀ∇F);
* ``grad|K``      : the same with the kernel block given (forward, loss, backward only);
* ``HVP``         : one lifted GGN product (H_GN + δI) v, eq. (ggn-lift)
                    (:meth:`krepes_lib.ggn.GGNOperator.matvec`, kernel block cached as inside
                    CG): jvp K V, the loss's Q-product, vjp Kᵀ U;
* ``CG(k)``       : one solve of (H_GN + δI) d = −∇L, eq. (newton-step), by exactly k CG
                    iterations (``rtol = 0``; k products plus the residual refreshes), from a
                    zero start (:func:`krepes_lib.ggn.newton_direction`),

and prints the ratios HVP / grad, HVP / grad|K and CG(k) / grad. Each time is the best of
``--repeats`` synchronised wall times. The data are synthetic (uniform in [0, 1]^d), the
landmarks a uniform draw, the kernel RBF with the median bandwidth, the model PC-initialised.
The device is the backend's choice (CuPy on a usable GPU; ``KREPES_BACKEND=numpy`` forces
the host).

Usage::

    python benchmarks/bench_hvp.py --n 20000 --m 1000 --h 64 --d 256 --batch-size 512 --cg-iters 10
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

from krepes_lib import losses as LOSSES
from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, resolve_dtype, timed, to_device
from krepes_lib.ggn import GGNOperator, newton_direction
from krepes_lib.kernels import RBF, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.train import train_step


def device_name(xp) -> str:
    if xp is np:
        return f"CPU ({platform.processor() or platform.machine()}), NumPy {np.__version__}"
    props = xp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"GPU {name}, CuPy {xp.__version__}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="training samples (landmarks are drawn from them)")
    ap.add_argument("--m", type=int, default=1000, help="landmarks")
    ap.add_argument("--h", type=int, default=64, help="representation dimensions")
    ap.add_argument("--d", type=int, default=256, help="input dimensions (synthetic data)")
    ap.add_argument("--batch-size", type=int, default=512, help="B samples (2B rows with both views)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--coords", default="whitened", choices=["whitened", "raw"])
    ap.add_argument("--losses", default=",".join(LOSSES.TWO_VIEW),
                    help="comma-separated two-view losses (default: all five)")
    ap.add_argument("--byol", action="store_true", help="also BYOL (predictor and target held fixed)")
    ap.add_argument("--cg-iters", type=int, default=10, help="k, CG iterations of the timed solve")
    ap.add_argument("--damping", type=float, default=1e-2, help="δ of H_GN + δI")
    ap.add_argument("--repeats", type=int, default=5, help="best of this many timings")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    xp = default_xp()
    dt = resolve_dtype(args.dtype)
    rng = np.random.default_rng(args.seed)
    X_host = rng.random((args.n, args.d), dtype=np.float32)
    X = to_device(X_host, xp, dtype=dt)
    lm = select_landmarks(X, args.m, seed=args.seed)
    nys = Nystrom(RBF(sigma=median_sigma(X_host)), lm.points, dtype=dt)
    h = min(args.h, nys.rank)
    B = min(args.batch_size, args.n)
    aug = make_augmenter("table")
    Xb = X[xp.asarray(rng.permutation(args.n)[:B])]
    views = (aug(Xb, rng), aug(Xb, rng))
    names = [s.strip() for s in args.losses.split(",") if s.strip()]
    if args.byol:
        names.append("byol")

    print(f"device  : {device_name(xp)}")
    print(f"problem : n={args.n} d={args.d} m={args.m} (rank {nys.rank}) h={h} B={B} (×2 views) "
          f"dtype={dt.name} coords={args.coords} damping={args.damping} CG k={args.cg_iters} "
          f"best of {args.repeats}")
    head = (f"{'loss':<22}{'grad ms':>10}{'grad|K ms':>11}{'HVP ms':>10}{'CG(k) ms':>11}"
            f"{'HVP/grad':>10}{'HVP/grad|K':>12}{'CG(k)/grad':>12}{'CG its':>8}  stopped by")
    print(head)
    print("-" * len(head))
    for name in names:
        loss = LOSSES.get(name)
        model = NystromModel(nys, h=h, coords=args.coords, predictor=(name == "byol"))
        op = GGNOperator(model, loss, [views], damping=args.damping)
        _, g = op.gradient()
        K = op._K_of(0)  # the cached (2B, m) block of this batch

        def grad_cached():
            F = model.forward(K)
            if name == "byol":
                T = model.forward(K, model.target["A_tilde"], model.target["gamma"])
                _, (dZa, dZb, _) = loss.value_and_grad(F[:B], F[B:], T[:B], T[B:], model.params["P"])
            else:
                _, (dZa, dZb) = loss.value_and_grad(F[:B], F[B:])
            dA_extra = None
            lam = float(getattr(loss, "rkhs_penalty", 0.0) or 0.0)
            if lam > 0:
                dA_extra = (2.0 * lam) * (model.nystrom.K_mm @ model.A_tilde)
            return model.backward(K, xp.concatenate([dZa, dZb]).astype(model.dtype, copy=False), dA_extra)

        its = []

        def cg_solve():
            _, res = newton_direction(op, g, rtol=0.0, max_iter=args.cg_iters)
            its.append((res.iterations, res.stopped_by))

        t_grad = timed(lambda: train_step(model, loss, views), xp, args.repeats, warmup=True)
        t_gk = timed(grad_cached, xp, args.repeats, warmup=True)
        t_hvp = timed(lambda: op.matvec(g), xp, args.repeats, warmup=True)
        t_cg = timed(cg_solve, xp, args.repeats, warmup=True)
        print(f"{name:<22}{1e3 * t_grad:>10.3f}{1e3 * t_gk:>11.3f}{1e3 * t_hvp:>10.3f}{1e3 * t_cg:>11.3f}"
              f"{t_hvp / t_grad:>10.2f}{t_hvp / t_gk:>12.2f}{t_cg / t_grad:>12.2f}{its[-1][0]:>8d}  {its[-1][1]}")
    print("grad = train_step (kernel block included); grad|K = the same with the block cached; "
          "HVP = one (H_GN + δI)v with the block cached; CG(k) = k iterations from zero (+ refreshes);\n"
          "fewer CG iterations than k: CG stopped early (exact convergence or a breakdown guard).")


if __name__ == "__main__":
    main()
