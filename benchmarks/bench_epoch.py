"""Time one training epoch and the GEMM work it contains, in the same run.

The hot path of :func:`krepes_lib.train.fit` is three matrix products per batch (DESIGN.md):
the kernel block's X Lᵀ (2B×d by d×m), F = K Ã (2B×m by m×h) and Kᵀ ∇F (m×2B by 2B×h).
This script times one epoch of ``fit`` (shuffle, two augmented views, kernel blocks, loss,
backward, Adam) and then the same products alone for the same shapes and batch count,
and prints both times and their ratio epoch / GEMM: how far the epoch is from being
GEMM-bound. It also times the kernel blocks (GEMM + elementwise) and the augmentations
alone, as a breakdown. The device is the backend's choice (CuPy on a usable GPU,
``KREPES_BACKEND=numpy`` forces the host); timings synchronise with
:func:`krepes_lib.backend.synchronize`.

Usage::

    python benchmarks/bench_epoch.py --n 20000 --m 1000 --h 64 --d 256 --batch-size 512
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, resolve_dtype, timed, to_device
from krepes_lib.kernels import RBF, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.train import fit


def device_name(xp) -> str:
    if xp is np:
        return f"CPU ({platform.processor() or platform.machine()}), NumPy {np.__version__}"
    props = xp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"GPU {name}, CuPy {xp.__version__}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="training samples")
    ap.add_argument("--m", type=int, default=1000, help="landmarks")
    ap.add_argument("--h", type=int, default=64, help="representation dimensions")
    ap.add_argument("--d", type=int, default=256, help="input dimensions (synthetic data)")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--loss", default="barlow_twins")
    ap.add_argument("--coords", default="whitened", choices=["whitened", "raw"])
    ap.add_argument("--augment", default="table", choices=["table", "image", "none"],
                    help="image: the data is read as sqrt(d)×sqrt(d) images")
    ap.add_argument("--repeats", type=int, default=3, help="GEMM timing: best of this many")
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
    model = NystromModel(nys, h=h, coords=args.coords)
    if args.augment == "table":
        aug = make_augmenter("table")
    elif args.augment == "image":
        side = int(round(np.sqrt(args.d)))
        if side * side != args.d:
            ap.error(f"--augment image needs a square d; got d={args.d}")
        aug = make_augmenter((side, side))
    else:
        aug = None
    B = min(args.batch_size, args.n)
    n_batches = args.n // B

    # warm-up (CuPy kernel compilation, BLAS threads) on a small slice
    fit(NystromModel(nys, h=h, coords=args.coords), X[: 2 * B], args.loss, epochs=1, batch_size=B, augment=aug,
        progress=False)

    hist = fit(model, X, args.loss, epochs=1, batch_size=B, seed=args.seed, augment=aug,
               progress=False)
    t_epoch = hist.time[0]

    # the same GEMMs alone: per batch X2 Lᵀ, K Ã, Kᵀ dF with the shapes fit uses
    X2 = X[: 2 * B]
    L = nys.landmarks
    A = model.A_tilde
    K = xp.asarray(rng.random((2 * B, args.m)), dtype=dt)
    dF = xp.asarray(rng.standard_normal((2 * B, h)), dtype=dt)

    def gemms():
        for _ in range(n_batches):
            X2 @ L.T
            K @ A
            K.T @ dF

    def whitening_gemms():  # Ã = T W and ∇_W = Tᵀ ∇_Ã, once per batch (whitened coordinates)
        if model.T is None:
            return
        W = model.params["W"]
        for _ in range(n_batches):
            model.T @ W
            model.T.T @ A

    def kernel_blocks():
        for _ in range(n_batches):
            for _sl, _K in nys.kernel.blocks(X2, L, rows=2 * B):
                pass

    def augmentations():
        r = np.random.default_rng(1)
        for _ in range(n_batches):
            if aug is not None:
                aug(X[:B], r)
                aug(X[:B], r)

    t_gemm = timed(gemms, xp, args.repeats)
    t_kern = timed(kernel_blocks, xp, args.repeats)
    t_aug = timed(augmentations, xp, 1)
    t_white = timed(whitening_gemms, xp, args.repeats)
    flop = n_batches * (2 * (2 * B) * args.d * args.m + 2 * (2 * B) * args.m * h * 2)

    print(f"device        : {device_name(xp)}")
    print(f"problem       : n={args.n} d={args.d} m={args.m} h={h} B={B} ({n_batches} batches × 2 views) "
          f"dtype={dt.name} loss={args.loss} coords={args.coords} augment={args.augment}")
    print(f"epoch (fit)   : {t_epoch:.4f} s   (mean loss {hist.loss[0]:.4g})")
    print(f"GEMM alone    : {t_gemm:.4f} s   ({flop / 1e9:.2f} GFLOP, {flop / t_gemm / 1e9:.1f} GFLOP/s)")
    print(f"ratio epoch / GEMM = {t_epoch / t_gemm:.2f}")
    print(f"breakdown     : kernel blocks (GEMM + exp) {t_kern:.4f} s, augmentations {t_aug:.4f} s, "
          f"whitening GEMMs T W and Tᵀ∇ {t_white:.4f} s")


if __name__ == "__main__":
    main()
