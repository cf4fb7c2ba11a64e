"""The performance suite: the library's hot paths against peers measured in the same run.

Usage::

    python benchmarks/run.py                 # default problem, 1 BLAS thread, < 5 min
    python benchmarks/run.py --quick         # smaller problem (CI / a smoke test)
    python benchmarks/run.py --threads 2 --out /tmp/perf.json --no-book
    python benchmarks/run.py --device gpu    # the library on CuPy, the torch twins on CUDA

Lines (book: *Performance*, ``book/performance.md``):

1. a training epoch (``fit``: batches, two views, kernel block, loss, gradient, Adam) vs a
   PyTorch-autograd twin of the same computation, for barlow_twins, simclr and vicreg;
2. that epoch vs its floor: the GEMMs it contains (X·Lᵀ, K·Ã, Kᵀ·∇F) plus the kernel
   exponential, for the same shapes and batch count; augmentations timed separately;
3. Nyström features Φ = K_Xm U_r Λ_r^{-1/2} vs scikit-learn's ``Nystroem.transform``;
4. one lifted GGN product (H_GN + δI)v and a k-step CG solve vs torch.func jvp∘vjp on the
   same model and batch, and the product's cost relative to one gradient;
5. the one-step audit end to end vs the same audit written with torch and torch.func;
6. k-means++ landmarks vs scikit-learn's ``kmeans_plusplus`` (one local trial: the same
   algorithm);
7. eNTK blocks vs a naive vmap(jacrev) contraction (``benchmarks/bench_entk.py``, when present);
8. eNTK features per row — CountSketch projection of per-sample Jacobians (TorchNTK
   ``project``) vs TRAK's ``BasicProjector`` and dattri's ``random_project`` on the same
   Jacobians, and the forward-mode sketch; kernel errors vs the exact eNTK in the notes
   (peers that do not install or import are named in the notes).

Every pair is measured **interleaved** (ours, peer, ours, peer, ...) after one warm-up call of
each, and the best of ``--repeats`` is kept, so both sides see the same machine load. Before
timing, every peer is checked to compute the library's numbers (column ``check``: relative
difference). Ratios are ``peer / ours`` (speed-up, > 1: the library is faster) or
``ours / floor`` (≥ 1, 1 is the hardware floor). The table is printed, saved as JSON
(``benchmarks/results/perf-<UTC time>.json`` and ``latest.json``, or ``--out``), and
rendered for the book (``book/generated/performance_table.md`` and ``performance.png``).
Peers (torch, scikit-learn, matplotlib) are benchmark dependencies only.

``--device gpu`` runs the library on the device namespace (CuPy; the rows are moved there once,
before any timer) and the PyTorch twins on the tensors' device (CUDA, through DLPack); every
timed call is followed by a device synchronisation. scikit-learn peers stay on the host (lines
3 and 6 then compare a GPU with the CPU); line 8, whose rows and peers live on the host, is left
out. Results go to ``results/perf-gpu-<time>.json``; the
book's CPU table is not overwritten.
"""
from __future__ import annotations

import argparse
import os
import sys


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="a smaller problem (about a minute)")
    ap.add_argument("--repeats", type=int, default=None, help="best of k interleaved runs (default 3, quick 2)")
    ap.add_argument("--lines", default="1,2,3,4,5,6,7,8", help="comma-separated line numbers to run")
    ap.add_argument("--n", type=int, default=None, help="training rows (default 8000, quick 3000)")
    ap.add_argument("--m", type=int, default=None, help="landmarks (default 1000, quick 400)")
    ap.add_argument("--h", type=int, default=64, help="representation dimensions")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--cg-iters", type=int, default=10, help="k of the CG line")
    ap.add_argument("--damping", type=float, default=1e-2)
    ap.add_argument("--audit-cg", type=int, default=20, help="CG iteration cap of the audit line (both sides)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/perf-<time>.json)")
    ap.add_argument("--no-book", action="store_true", help="do not write book/generated/*")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                    help="cpu (NumPy, default) or gpu (CuPy + CUDA tensors; implies --no-book)")
    return ap.parse_args(argv)


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:  # thread counts must be set before NumPy / torch load their BLAS
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

LOSSES3 = ("barlow_twins", "simclr", "vicreg")


# --- measurement ----------------------------------------------------------------------------
SYNC = [lambda: None]  # waits for queued device work (set by main for --device gpu)


def interleaved(fns: dict, repeats: int, warmup: bool = True) -> dict:
    """Best wall time of each callable over ``repeats`` rounds that alternate between them
    (each call followed by a device synchronisation on a GPU)."""
    sync = SYNC[0]
    if warmup:
        for f in fns.values():
            f()
        sync()
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            sync()
            t0 = time.perf_counter()
            f()
            sync()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def host(a):
    """Any array or tensor as a NumPy array (the explicit device -> host copy)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    from krepes_lib.backend import to_host

    return to_host(a)


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def rel(a, b) -> float:
    a = np.asarray(host(a), dtype=np.float64)
    b = np.asarray(host(b), dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def row(line, what, ours, peer, peer_name, ratio, kind, target, check, dtype, threads, note=""):
    met = None
    if target is not None and ratio is not None:
        op, val = target
        met = bool(ratio >= val) if op == ">=" else bool(ratio <= val)
    return dict(line=line, what=what, ours_s=ours, peer_s=peer, peer=peer_name, ratio=ratio,
                ratio_kind=kind, target=None if target is None else f"{target[0]} {target[1]:g}",
                met=met, check=check, dtype=dtype, threads=threads, note=note)


# --- the problem ----------------------------------------------------------------------------
def load_data(n):
    """The first n MNIST training images in [0, 1] (float32, d = 784), read straight from the
    IDX file under ``$KREPES_DATA/mnist`` (independent of the library's data API, so runs of
    two library versions see the same rows); else uniform synthetic rows of the same shape."""
    import gzip

    path = Path(os.environ.get("KREPES_DATA", "")) / "mnist" / "train-images-idx3-ubyte.gz"
    try:
        with gzip.open(path, "rb") as f:
            head = np.frombuffer(f.read(16), dtype=">i4")
            if head[0] != 2051 or head[2] * head[3] != 784:
                raise ValueError(f"{path} is not an MNIST IDX image file")
            raw = np.frombuffer(f.read(int(n) * 784), dtype=np.uint8)
        if raw.size < int(n) * 784:
            raise ValueError(f"{path} holds fewer than n={n} images")
        X = raw.reshape(int(n), 784).astype(np.float32) / np.float32(255.0)
        return X, f"MNIST (first {n} training images, d = 784)"
    except (OSError, ValueError) as err:  # no data: still a meaningful timing (the shapes are what count)
        X = np.random.default_rng(0).random((n, 784), dtype=np.float32)
        return X, f"synthetic uniform [0,1]^784 ({n} rows; MNIST unavailable: {type(err).__name__}: {err})"


def noise_augment(Xb, rng):
    """The views of lines 1, 2, 4, 5: Xb + 0.1·N(0, 1), drawn in float32 from the host RNG
    (moved to Xb's device first, so both devices see the same views)."""
    from krepes_lib.backend import get_xp

    noise = rng.standard_normal(Xb.shape, dtype=np.float32)
    xp = get_xp(Xb)
    return Xb + np.float32(0.1) * (noise if xp is np else xp.asarray(noise))


# --- lines ----------------------------------------------------------------------------------
def line_epoch(P, rows):
    import adapters as ad
    import torch
    import twins

    X, B, nys, h = P["X"], P["B"], P["nys"], P["h"]
    L = nys.landmarks
    hyper = ad.adam_hyper()
    n_batches = X.shape[0] // B
    A0 = ad.model(nys, h).params["A_tilde"]
    g0 = P["xp"].zeros(h, np.float32)
    epochs = {}
    for loss in LOSSES3:
        out = {}

        def ours():
            out["ours"] = ad.epoch(ad.model(nys, h), X, loss, B, noise_augment, seed=0, lr=hyper["lr"])

        def peer():
            tw = twins.EpochTwin(loss, L, P["sigma"], A0, g0, **hyper)
            rng, perm = ad.epoch_plan(X.shape[0], B, seed=0)
            out["peer"] = twins.run_epoch_twin(tw, X, B, noise_augment, rng, perm)

        t = interleaved({"ours": ours, "peer": peer}, P["repeats"])
        epochs[loss] = t["ours"]
        rows.append(row(1, f"training epoch, {loss} ({n_batches} batches of 2×{B}, m={nys.m}, h={h}, raw)",
                        t["ours"], t["peer"], f"PyTorch {torch.__version__} autograd twin",
                        t["peer"] / t["ours"], "peer/ours", None,
                        rel(out["ours"], out["peer"]), "float32", P["threads"],
                        "check: mean epoch loss, library vs twin"))
    return epochs


def line_floor(P, rows):
    """The epoch, its GEMM + exp floor, the kernel blocks alone and the augmentations, interleaved."""
    import adapters as ad
    from krepes_lib.augment import make_augmenter

    X, B, nys, h, xp = P["X"], P["B"], P["nys"], P["h"], P["xp"]
    m, d = nys.m, X.shape[1]
    n_batches = X.shape[0] // B
    L = nys.landmarks
    rng = np.random.default_rng(1)
    X2 = xp.ascontiguousarray(X[: 2 * B])
    A = xp.asarray(rng.standard_normal((m, h)).astype(np.float32))
    dF = xp.asarray(rng.standard_normal((2 * B, h)).astype(np.float32))
    K = xp.empty((2 * B, m), np.float32)
    Ls = xp.ascontiguousarray(-L / np.float32(P["sigma"] ** 2))  # keeps exp's argument ≤ 0 (no overflow)

    def floor():  # per batch: X·Lᵀ into the block, exp in place, K·Ã, Kᵀ·∇F
        for _ in range(n_batches):
            xp.matmul(X2, Ls.T, out=K)
            xp.exp(K, out=K)
            K @ A
            K.T @ dF

    def kernel_floor():  # the kernel block's share of the floor: X·Lᵀ and exp
        for _ in range(n_batches):
            xp.matmul(X2, Ls.T, out=K)
            xp.exp(K, out=K)

    def kernel_blocks():  # the library's kernel block of 2B rows, as training computes it
        for _ in range(n_batches):
            for _sl, _K in nys.kernel.blocks(X2, L, rows=2 * B):
                pass

    def gemm_only():
        for _ in range(n_batches):
            xp.matmul(X2, Ls.T, out=K)
            K @ A
            K.T @ dF

    augs = {"noise (lines 1, 2)": noise_augment, "table (default for tables)": make_augmenter("table"),
            "image 28×28 (default for MNIST)": make_augmenter((28, 28))}

    def aug_epoch(fn):
        def run():
            r = np.random.default_rng(2)
            for bi in range(n_batches):
                Xb = X[bi * B:(bi + 1) * B]
                fn(Xb, r)
                fn(Xb, r)
        return run

    def epoch(loss, augment=noise_augment):
        return lambda: ad.epoch(ad.model(nys, h), X, loss, B, augment, seed=0)

    fns = {"floor": floor, **{f"epoch {loss}": epoch(loss) for loss in LOSSES3},
           **{f"bare epoch {loss}": epoch(loss, None) for loss in LOSSES3}, "gemm": gemm_only,
           "kernel floor": kernel_floor, "kernel blocks": kernel_blocks,
           **{k: aug_epoch(f) for k, f in augs.items()}}
    t = interleaved(fns, P["repeats"], warmup=False)  # line 1 warmed the epoch; best of the rounds
    flop = n_batches * (2 * (2 * B) * d * m + 2 * 2 * (2 * B) * m * h)
    gflops = flop / t["gemm"] / 1e9
    t_noise = t["noise (lines 1, 2)"]
    for loss in LOSSES3:
        te, tb = t[f"epoch {loss}"], t[f"bare epoch {loss}"]
        rows.append(row(2, f"epoch without augmentation / floor, {loss} (GEMMs + exp at {gflops:.0f} GFLOP/s)",
                        tb, t["floor"], "GEMM + exp floor", tb / t["floor"], "ours/floor",
                        ("<=", 1.2), None, "float32", P["threads"],
                        "fit with augment=None (the views are copies of the batch)"))
        rows.append(row(2, f"epoch with noise views / floor, {loss}", te, t["floor"], "GEMM + exp floor",
                        te / t["floor"], "ours/floor", None, None, "float32", P["threads"],
                        f"the epoch of line 1; (epoch − its noise views)/floor = {(te - t_noise) / t['floor']:.2f}"))
    rows.append(row(2, "kernel blocks per epoch / their floor (X·Lᵀ + exp)", t["kernel blocks"],
                    t["kernel floor"], "X·Lᵀ GEMM + exp", t["kernel blocks"] / t["kernel floor"],
                    "ours/floor", None, None, "float32", P["threads"],
                    "centring, norm columns, clip, exp: one GEMM into the block"))
    for name, _ in augs.items():
        rows.append(row(2, f"augmentation per epoch, {name}", t[name], t["floor"], "GEMM + exp floor",
                        t[name] / t["floor"], "ours/floor", None, None, "float32", P["threads"],
                        "2 views × batches, timed alone"))


def line_features(P, rows):
    import adapters as ad
    import sklearn
    from sklearn.kernel_approximation import Nystroem

    X, Xh, m, sigma, xp = P["X"], P["X_host"], P["m"], P["sigma"], P["xp"]
    sk = Nystroem(kernel="rbf", gamma=1.0 / (2.0 * sigma**2), n_components=m, random_state=0).fit(Xh)
    nys = ad.rbf_nystrom(X[xp.asarray(sk.component_indices_)], sigma)
    Phi = host(ad.features(nys, X[:300]))
    Psi = sk.transform(Xh[:300])
    check = rel(Phi.astype(np.float64) @ Phi.T, Psi @ Psi.T)  # same Nyström kernel K̃ = ΦΦᵀ
    t = interleaved({"ours": lambda: ad.features(nys, X), "peer": lambda: sk.transform(Xh)}, P["repeats"])
    rows.append(row(3, f"Nyström features ({X.shape[0]}×{m}, rank {nys.rank})", t["ours"], t["peer"],
                    f"scikit-learn {sklearn.__version__} Nystroem.transform", t["peer"] / t["ours"],
                    "peer/ours", (">=", 1.5), check, "float32", P["threads"],
                    "check: ΦΦᵀ vs ΨΨᵀ (same landmarks)"))


def line_ggn(P, rows):
    import adapters as ad
    import torch
    import twins

    X, B, nys, h, k = P["X"], P["B"], P["nys"], P["h"], P["cg_iters"]
    rng, perm = ad.epoch_plan(X.shape[0], B, seed=0)
    Xb = X[perm[:B]]
    views = (noise_augment(Xb, rng), noise_augment(Xb, rng))
    for loss in LOSSES3:
        mdl = ad.model(nys, h)
        prob = ad.problem(mdl, loss, views)
        op = ad.ggn_operator(prob, P["damping"])
        _, g = prob.value_and_grad()
        V = {kk: g[kk] for kk in op.keys}
        tw = twins.GGNTwin(loss, [prob.batch.K], mdl.params["A_tilde"], mdl.params["gamma"], P["damping"])
        v_t = (twins.as_t(V["A_tilde"]), twins.as_t(V["gamma"]))
        ours_v = ad.ggn_matvec(op, V)
        peer_v = tw.matvec(v_t)
        check = rel(np.concatenate([host(ours_v["A_tilde"]).ravel(), host(ours_v["gamma"])]),
                    np.concatenate([host(peer_v[0]).ravel(), host(peer_v[1])]))
        _, gt = tw.gradient()
        t = interleaved({  # cheap calls: more rounds, a steadier minimum
            "grad": lambda: ad.gradient(mdl, loss, views),
            "hvp": lambda: ad.ggn_matvec(op, V),
            "peer_hvp": lambda: tw.matvec(v_t),
        }, 2 * P["repeats"] + 1)
        t.update(interleaved({
            "cg": lambda: ad.cg_solve(op, g, k),
            "peer_cg": lambda: twins.cg(tw.matvec, tuple(-x for x in gt), k),
        }, P["repeats"]))
        peer = f"torch.func {torch.__version__} jvp→HVP→vjp"
        rows.append(row(4, f"GGN product, {loss} (2×{B} rows, m={nys.m}, h={h})", t["hvp"], t["peer_hvp"],
                        peer, t["peer_hvp"] / t["hvp"], "peer/ours", (">=", 2.0), check, "float32",
                        P["threads"], "check: (H_GN + δI)v, library vs torch.func"))
        rows.append(row(4, f"GGN product / one gradient, {loss}", t["hvp"], t["grad"],
                        "one gradient (kernel block, forward, loss, backward)", t["hvp"] / t["grad"],
                        "ours/gradient", ("<=", 1.0), None, "float32", P["threads"],
                        "the product reuses the batch's cached kernel block"))
        rows.append(row(4, f"CG, {k} iterations, {loss}", t["cg"], t["peer_cg"], peer,
                        t["peer_cg"] / t["cg"], "peer/ours", None, None, "float32", P["threads"],
                        "library CG refreshes the residual every 10 iterations (one extra product)"))


def line_audit(P, rows):
    import adapters as ad
    import torch
    import twins

    X, nys, h = P["X"], P["nys"], P["h"]
    L = nys.landmarks
    batches = ad.view_batches(X, 4, 256, noise_augment, seed=0)
    for loss in LOSSES3:
        mdl = ad.model(nys, h)
        A0, g0 = mdl.params["A_tilde"].copy(), mdl.params["gamma"].copy()
        dA, dg, iters, after = ad.audit(mdl, loss, batches, P["damping"], cg_max_iter=P["audit_cg"])
        (tA, tg), t_after = twins.audit_twin(loss, batches, L, P["sigma"], A0, g0, P["damping"], iters)
        check = rel(np.concatenate([host(dA).ravel(), host(dg)]),
                    np.concatenate([host(tA).ravel(), host(tg)]))
        t = interleaved({
            "ours": lambda: ad.audit(mdl, loss, batches, P["damping"], cg_max_iter=P["audit_cg"]),
            "peer": lambda: twins.audit_twin(loss, batches, L, P["sigma"], A0, g0, P["damping"], iters),
        }, P["repeats"])
        rows.append(row(5, f"one-step audit, {loss} (4 batches of 2×256, {iters} CG iterations)", t["ours"],
                        t["peer"], f"torch {torch.__version__} + torch.func twin", t["peer"] / t["ours"],
                        "peer/ours", (">=", 2.0), check, "float32", P["threads"],
                        "check: (ΔÃ, Δγ), library vs twin (same CG iteration count)"))


def line_kmeanspp(P, rows):
    import adapters as ad
    import sklearn
    from sklearn.cluster import kmeans_plusplus

    # half the rows and half the landmarks: scikit-learn's seeding takes seconds per call here
    half = P["X"].shape[0] // 2
    Xd, X, m = P["X"][:half], P["X_host"][:half], P["m"] // 2
    out = {}

    def ours():
        out["ours"] = ad.kmeanspp(Xd, m, seed=0)

    def peer():
        out["peer"] = kmeans_plusplus(X, m, random_state=0, n_local_trials=1)[1]

    t = interleaved({"ours": ours, "peer": peer}, P["repeats"], warmup=False)

    def potential(idx):  # Σ_j min_c ‖x_j − c‖², in float64 blocks
        C = X[np.asarray(host(idx))].astype(np.float64)
        cc = (C * C).sum(1)
        tot = 0.0
        for s in range(0, X.shape[0], 2048):
            Xb = X[s:s + 2048].astype(np.float64)
            D = (Xb * Xb).sum(1)[:, None] + cc[None, :] - 2 * Xb @ C.T
            tot += float(np.maximum(D.min(1), 0).sum())
        return tot

    check = potential(out["ours"]) / potential(out["peer"]) - 1.0
    rows.append(row(6, f"k-means++ landmarks ({X.shape[0]} rows, m={m})", t["ours"], t["peer"],
                    f"scikit-learn {sklearn.__version__} kmeans_plusplus(n_local_trials=1)",
                    t["peer"] / t["ours"], "peer/ours", None, check, "float32", P["threads"],
                    "check: k-means potential ours/peer − 1 (different random draws)"))


def line_entk(P, rows, notes):
    """eNTK block of a torch MLP: the library's TorchNTK (exact) vs the naive vmap(jacrev) recipe.

    Uses ``bench_entk.line(quick, repeats, threads)`` when that script provides it; otherwise
    the same comparison as ``benchmarks/bench_entk.py`` (MLP d=100, width 128, depth 2, O=16).
    """
    try:
        import bench_entk
    except ImportError:
        bench_entk = None
    fn = getattr(bench_entk, "line", None)
    if fn is not None:
        r = fn(quick=P["quick"], repeats=P["repeats"], threads=P["threads"])
        rows.append(row(7, r["what"], r["ours_s"], r["peer_s"], r["peer"], r["peer_s"] / r["ours_s"],
                        "peer/ours", None, r.get("check"), r.get("dtype", "float32"), P["threads"],
                        r.get("note", "")))
        return
    try:
        import torch
        from torch.func import functional_call, jacrev, vmap

        from krepes_lib.neural import TorchNTK
        from krepes_lib.neural.networks import MLPEncoder
    except ImportError as err:
        notes.append(f"line 7 (eNTK vs vmap(jacrev)) left out: {err}")
        return
    torch.manual_seed(0)
    d, width, depth, O = 100, 128, 2, 16
    nx, ny = (64, 16) if P["quick"] else (128, 32)
    net = MLPEncoder(d, (width,) * depth, O).eval().float()
    rng = np.random.default_rng(0)
    xp = P["xp"]
    X = xp.asarray(rng.standard_normal((nx, d)).astype(np.float32))
    Y = xp.asarray(rng.standard_normal((ny, d)).astype(np.float32))
    exact = TorchNTK(net, implementation="exact", cache_bytes=0)
    import twins

    Xt, Yt = twins.as_t(X), twins.as_t(Y)
    net = net.to(Xt.device)  # the naive peer on the rows' device (TorchNTK copies the net itself)
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}

    def f1(prm, x):
        return functional_call(net, (prm, buffers), (x.unsqueeze(0),)).squeeze(0)

    def naive():  # the torch.func tutorial's contraction: every output pair, then the trace
        with torch.no_grad():
            j1 = vmap(jacrev(f1), (None, 0))(params, Xt)
            j2 = vmap(jacrev(f1), (None, 0))(params, Yt)
            full = sum(torch.einsum("Naf,Mbf->NMab", a.flatten(2), b.flatten(2))
                       for a, b in zip(j1.values(), j2.values()))
            return torch.diagonal(full, dim1=2, dim2=3).sum(-1)

    K = host(exact(X, Y))
    check = rel(K, naive())
    t = interleaved({"ours": lambda: exact(X, Y), "peer": naive}, P["repeats"])
    p = sum(q.numel() for q in net.parameters())
    rows.append(row(7, f"eNTK block {nx}×{ny}, MLP {d}-{width}×{depth}-{O} (p = {p})", t["ours"], t["peer"],
                    f"torch {torch.__version__} vmap(jacrev) + einsum", t["peer"] / t["ours"], "peer/ours",
                    None, check, "float32", P["threads"], "check: kernel block, library vs naive"))


def line_entk_features(P, rows, notes):
    """eNTK features per row against TRAK's and dattri's gradient projectors (and our
    forward-mode sketch): seconds per row, kernel error vs exact in the note
    (``bench_entk.features_line``)."""
    try:
        import bench_entk

        out = bench_entk.features_line(quick=P["quick"], repeats=P["repeats"], threads=P["threads"])
    except ImportError as err:
        notes.append(f"line 8 (eNTK features vs TRAK/dattri) left out: {err}")
        return
    for r in out:
        if "what" not in r:
            notes.append(f"line 8: {r['note']}")
            continue
        rows.append(row(8, r["what"], r["ours_s"], r["peer_s"], r["peer"], r["peer_s"] / r["ours_s"],
                        "peer/ours", None, r["error_ours"], "float32", P["threads"], r["note"]))


# --- output ---------------------------------------------------------------------------------
def fmt_table(rows) -> list[str]:
    head = "| line | what | ours (s) | peer / floor (s) | ratio | target | met | check | threads, dtype |"
    out = [head, "|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        chk = "" if r["check"] is None else f"{r['check']:.1e}"
        out.append(f"| {r['line']} | {r['what']} | {r['ours_s']:.4f} | {r['peer_s']:.4f} ({r['peer']}) | "
                   f"{r['ratio']:.2f} {r['ratio_kind']} | {r['target'] or ''} | {met} | {chk} | "
                   f"{r['threads']}, {r['dtype']} |")
    return out


def figure(rows, path):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sp = [r for r in rows if r["ratio_kind"] == "peer/ours"]
    fl = [r for r in rows if r["ratio_kind"] != "peer/ours"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.32 * max(len(sp), len(fl)) + 1.6),
                             gridspec_kw=dict(width_ratios=[1, 1]))
    for ax, rs, title, ref in ((axes[0], sp, "speed-up over the peer (peer time / ours)", 1.0),
                               (axes[1], fl, "cost over the floor (ours / floor or gradient)", 1.0)):
        y = np.arange(len(rs))[::-1]
        vals = [r["ratio"] for r in rs]
        colors = ["tab:green" if r["met"] else ("tab:red" if r["met"] is False else "tab:gray") for r in rs]
        ax.barh(y, vals, color=colors)
        for yi, r in zip(y, rs):
            if r["target"]:
                ax.plot([float(r["target"].split()[1])] * 2, [yi - 0.4, yi + 0.4], "k-", lw=2)
            ax.text(r["ratio"], yi, f" {r['ratio']:.2f}", va="center", fontsize=7)
        ax.axvline(ref, color="k", lw=0.8, ls=":")
        ax.set_yticks(y)
        ax.set_yticklabels([f"({r['line']}) {r['what'].split(' (')[0]}" for r in rs], fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([0.1, 0.2, 0.5, 1, 2, 5, 10])
        lo = min([0.8] + [0.8 * v for v in vals])
        hi = max([2.5] + [1.5 * v for v in vals])
        ax.set_xlim(lo, hi)
        ax.set_title(title, fontsize=9)
    fig.suptitle("green: target met, red: missed, grey: no target; black bar: target", fontsize=8)
    fig.tight_layout()
    from krepes_lib.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(args):
    import torch

    torch.set_num_threads(args.threads)
    import krepes_lib as kr
    import adapters as ad

    quick = args.quick
    n = args.n or (3000 if quick else 8000)
    m = args.m or (400 if quick else 1000)
    repeats = args.repeats or (2 if quick else 3)
    lines = {int(s) for s in args.lines.split(",") if s.strip()}
    t_start = time.perf_counter()
    load_start = load_avg()
    xp, device = device_setup(args.device)
    X_host, data_desc = load_data(n)
    X = kr.to_device(X_host, xp)  # once, before any timer
    idx = kr.select_landmarks(X_host, m, seed=0).indices
    sigma = kr.median_sigma(X_host)
    nys = ad.rbf_nystrom(X[xp.asarray(idx)], sigma)
    h = min(args.h, nys.rank)
    B = min(args.batch_size, n // 2)
    P = dict(X=X, X_host=X_host, xp=xp, nys=nys, h=h, B=B, m=m, sigma=sigma, repeats=repeats,
             threads=args.threads, cg_iters=args.cg_iters, damping=args.damping, quick=quick,
             audit_cg=args.audit_cg)
    meta = dict(started=datetime.now(timezone.utc).isoformat(timespec="seconds"), device=device,
                machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                python=platform.python_version(), numpy=np.__version__, torch=torch.__version__,
                threads=args.threads, repeats=repeats, data=data_desc, m=m, h=h, batch_size=B,
                sigma=sigma, dtype="float32", load_avg_start=load_start, quick=quick,
                krepes_lib=str(Path(kr.__file__).parent))
    print(f"# KREPES performance suite — {meta['started']}  {meta['machine']}  device: {device}  "
          f"threads={args.threads}  "
          f"float32  best of {repeats} interleaved\n# data: {data_desc}; m={m}, h={h}, B={B}, σ={sigma:.3g}; "
          f"load average at start: {load_start}\n# library: {meta['krepes_lib']}", flush=True)
    rows, notes = [], []
    steps = [(1, "epoch vs PyTorch twin"), (2, "epoch vs floor"), (3, "features vs scikit-learn"),
             (4, "GGN product / CG vs torch.func"), (5, "audit vs torch.func"), (6, "k-means++"),
             (7, "eNTK"), (8, "eNTK features vs TRAK/dattri")]
    from tqdm.auto import tqdm

    for num, title in tqdm(steps, desc="benchmark lines", leave=False):
        if num not in lines:
            continue
        if num == 8 and args.device == "gpu":  # its peers and rows live on the host
            notes.append("line 8 (eNTK features vs TRAK/dattri) runs on the host only: left out with --device gpu")
            continue
        t0 = time.perf_counter()
        run_line = {1: line_epoch, 2: line_floor, 3: line_features, 4: line_ggn, 5: line_audit,
                    6: line_kmeanspp, 7: lambda P, rows: line_entk(P, rows, notes),
                    8: lambda P, rows: line_entk_features(P, rows, notes)}[num]
        run_line(P, rows)
        print(f"# line {num} ({title}): {time.perf_counter() - t0:.1f} s, load {load_avg()}", flush=True)
    meta["load_avg_end"] = load_avg()
    meta["wall_s"] = round(time.perf_counter() - t_start, 1)
    table = fmt_table(rows)
    print("\n".join(table))
    for s in notes:
        print("#", s)
    print(f"# wall time {meta['wall_s']} s; load average at end: {meta['load_avg_end']}")

    from krepes_lib.files import atomic_path

    stamp = meta["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    tag = "perf-gpu" if args.device == "gpu" else "perf"
    out = Path(args.out) if args.out else HERE / "results" / f"{tag}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(meta=meta, rows=rows, notes=notes)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1))
    if not args.out and args.device == "cpu":
        with atomic_path(HERE / "results" / "latest.json") as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=1))
    print(f"# saved {out}")
    if not args.no_book and args.device == "cpu":
        write_book(payload, out)


def device_setup(device):
    """(namespace, description) for ``--device``; on a GPU also the timer's synchronisation."""
    import torch

    from krepes_lib.backend import default_xp, synchronize

    if device == "cpu":
        SYNC[0] = lambda: None
        return np, "CPU (NumPy; torch CPU)"
    xp = default_xp()
    if xp is np:
        raise SystemExit("--device gpu: no usable GPU (CuPy imports and a CUDA device answers); "
                         "install the 'gpu' extra on a CUDA machine, or use --device cpu.")
    probe = torch.from_dlpack(xp.zeros(1, dtype=np.float32))

    def sync():
        synchronize(xp)
        if probe.is_cuda:
            torch.cuda.synchronize(probe.device)

    SYNC[0] = sync
    try:
        name = xp.cuda.runtime.getDeviceProperties(0)["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # a stand-in namespace in tests
        name = xp.__name__
    return xp, f"{name} ({xp.__name__} {getattr(xp, '__version__', '')}; torch {probe.device})"


def write_book(payload, json_path):
    """The table and figure ``book/performance.md`` includes, from one run's JSON."""
    from krepes_lib.files import atomic_path

    gen = ROOT / "book" / "generated"
    gen.mkdir(parents=True, exist_ok=True)
    meta, rows = payload["meta"], payload["rows"]
    figure(rows, gen / "performance.png")
    try:
        jp = Path(json_path).resolve().relative_to(ROOT)
    except ValueError:
        jp = Path(json_path)
    lines = [f"<!-- written by benchmarks/run.py from {jp}; do not edit -->",
             f"Run of {meta['started']} on {meta['machine']}, {meta['threads']} thread(s), "
             f"{meta['dtype']}, best of {meta['repeats']} interleaved; data: {meta['data']}; "
             f"m = {meta['m']}, h = {meta['h']}, B = {meta['batch_size']}; load average "
             f"{meta['load_avg_start']} at the start and {meta['load_avg_end']} at the end "
             f"(1, 5, 15 min); wall time {meta['wall_s']} s. Source: `{jp}`.", ""]
    lines += fmt_table(rows)
    lines += [""] + [f"- {s}" for s in payload["notes"]]
    with atomic_path(gen / "performance_table.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    print(f"# wrote {gen / 'performance_table.md'} and {gen / 'performance.png'}")


if __name__ == "__main__":
    main(ARGS)
