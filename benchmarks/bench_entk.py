"""Cost per kernel entry of the eNTK of a torch network: exact, sketch, and the naive recipe.

Book: *The empirical NTK of a network* (``book/entk.md``), eqs. (entk-proj), (entk-sketch),
(entk-cost).

On one network (an MLP encoder of :mod:`krepes_lib.neural.networks`, or the small CNN with
``--arch cnn``) and the same rows X (nx) and Y (ny), in the same run, this script times

* ``exact``  : :class:`krepes_lib.neural.TorchNTK` ``implementation="exact"`` — per-sample
               Jacobians of the contracted outputs by ``vmap(jacrev)``, chunked under the
               memory budget, one GEMM per block pair (feature cache off);
* ``sketch`` : ``implementation="sketch"`` with S directions — S forward-mode jvps per row
               (feature cache off, the directions drawn inside the timed call);
* ``naive``  : the PyTorch ``torch.func`` tutorial's Jacobian contraction — full Jacobians of
               all nx + ny rows at once, ``einsum("Naf,Mbf->NMab")`` (every output pair), then
               the trace over outputs (the "sum" contraction),

and prints seconds per kernel entry, the ratios exact/naive and sketch/naive, the torch
thread count and dtype, and the relative Frobenius error of the sketch against the exact
kernel for several S (mean ± std over seeds, on ``--error-rows`` rows in float64). Each time
is the best of ``--repeats`` wall times. The data are synthetic (standard normal; uniform
[0, 1] images for the CNN).

Usage::

    python benchmarks/bench_entk.py                       # MLP, d=100, width 128, O=16
    python benchmarks/bench_entk.py --arch cnn --nx 128 --ny 32
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--d", type=int, default=100, help="table columns (MLP)")
    ap.add_argument("--width", type=int, default=128, help="hidden width (MLP) / channels (CNN)")
    ap.add_argument("--depth", type=int, default=2, help="hidden layers (MLP) / conv blocks (CNN)")
    ap.add_argument("--out", type=int, default=16, help="outputs O of the network")
    ap.add_argument("--nx", type=int, default=128)
    ap.add_argument("--ny", type=int, default=32)
    ap.add_argument("--sketch-size", type=int, default=128)
    ap.add_argument("--error-sizes", default="16,64,256,1024")
    ap.add_argument("--error-seeds", type=int, default=3)
    ap.add_argument("--error-rows", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from torch.func import functional_call, jacrev, vmap

    from krepes_lib.neural import TorchNTK, sketch_error
    from krepes_lib.neural.networks import MLPEncoder, SmallConvNet

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.arch == "mlp":
        net = MLPEncoder(args.d, (args.width,) * args.depth, args.out)
        d = args.d
        draw = lambda n: rng.standard_normal((n, d))  # noqa: E731
    else:
        net = SmallConvNet((28, 28, 1), tuple(args.width * 2 ** i for i in range(args.depth)), args.out)
        d = 28 * 28
        draw = lambda n: rng.random((n, d))  # noqa: E731
    net = net.eval()
    dt = np.dtype(args.dtype)
    X, Y = draw(args.nx).astype(dt), draw(args.ny).astype(dt)
    p = sum(q.numel() for q in net.parameters())
    entries = args.nx * args.ny

    def best(fn):
        fn()  # warm-up (lazy imports, vmap tracing)
        t = math.inf
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            t = min(t, time.perf_counter() - t0)
        return t

    exact = TorchNTK(net, implementation="exact", cache_bytes=0)
    sketch = TorchNTK(net, implementation="sketch", sketch_size=args.sketch_size, cache_bytes=0)

    tnet = net.to(torch.float64 if dt == np.float64 else torch.float32)
    params = {k: v.detach() for k, v in tnet.named_parameters()}
    buffers = {k: v.detach() for k, v in tnet.named_buffers()}

    def f1(prm, x):
        return functional_call(tnet, (prm, buffers), (x.unsqueeze(0),)).squeeze(0)

    def naive():
        x1, x2 = torch.from_numpy(X), torch.from_numpy(Y)
        with torch.no_grad():
            j1 = vmap(jacrev(f1), (None, 0))(params, x1)
            j2 = vmap(jacrev(f1), (None, 0))(params, x2)
            j1 = [j.flatten(2) for j in j1.values()]
            j2 = [j.flatten(2) for j in j2.values()]
            full = sum(torch.einsum("Naf,Mbf->NMab", a, b) for a, b in zip(j1, j2))
            return torch.diagonal(full, dim1=2, dim2=3).sum(-1)

    K_exact = exact(X, Y)
    diff = float(np.abs(naive().numpy() - K_exact).max() / np.abs(K_exact).max())
    t_exact, t_sketch, t_naive = best(lambda: exact(X, Y)), best(lambda: sketch(X, Y)), best(naive)

    print(f"device: CPU ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, dtype {dt.name}")
    print(f"network: {args.arch}, p = {p} parameters, O = {args.out} outputs; "
          f"block {args.nx} x {args.ny} = {entries} entries; repeats {args.repeats} (best)")
    print(f"exact vs naive: max relative difference {diff:.2e}")
    print(f"{'implementation':<22}{'s/block':>10}{'us/entry':>11}{'ns/(entry*p)':>14}{'vs naive':>10}")
    for name, t in (("exact", t_exact), (f"sketch S={args.sketch_size}", t_sketch), ("naive vmap(jacrev)", t_naive)):
        print(f"{name:<22}{t:>10.4f}{1e6 * t / entries:>11.3f}{1e9 * t / entries / p:>14.5f}{t / t_naive:>10.3f}")

    sizes = [int(s) for s in args.error_sizes.split(",")]
    Xe = draw(args.error_rows)
    t0 = time.perf_counter()
    err = sketch_error(net.double(), Xe, sizes=sizes, seeds=range(args.error_seeds), dtype="float64")
    print(f"sketch error ||K_S - K||_F / ||K||_F on {args.error_rows} rows (float64, "
          f"{args.error_seeds} seeds, {time.perf_counter() - t0:.1f} s):")
    print(f"{'S':>6}{'mean':>10}{'std':>10}{'mean*sqrt(S)':>14}")
    for S, m, s in zip(err["sizes"], err["mean"], err["std"]):
        print(f"{S:>6}{m:>10.4f}{s:>10.4f}{m * math.sqrt(S):>14.3f}")


def _peer_projectors(p, k, seed):
    """The peers' projections of per-sample gradients (rows of p numbers) to k numbers, with the
    scale that makes ⟨Pg, Pg'⟩ an unbiased estimate of ⟨g, g'⟩; each entry is (name, fn) or the
    reason it is left out."""
    from importlib.metadata import version

    import torch

    out = []
    try:
        import trak.projectors as tp

        P = tp.BasicProjector(p, k, seed, tp.ProjectionType.rademacher, torch.device("cpu"))
        out.append((f"TRAK {version('traker')} BasicProjector (Rademacher)",
                    lambda G: P.project(G.contiguous(), model_id=0) / k ** 0.5))
    except Exception as err:  # not installed, or an API change
        out.append(f"TRAK projector left out: {type(err).__name__}: {err}")
    try:
        from dattri.func.projection import random_project

        for kind in ("rademacher", "normal"):
            cache = {}

            def fn(G, kind=kind, cache=cache):
                if G.shape[0] not in cache:
                    cache[G.shape[0]] = random_project(G, G.shape[0], k, 32, proj_seed=seed, proj_type=kind,
                                                       device="cpu")
                return cache[G.shape[0]](G.contiguous())
            out.append((f"dattri {version('dattri')} random_project ({kind})", fn))
    except Exception as err:
        out.append(f"dattri left out: {type(err).__name__}: {err}")
    try:
        import neural_tangents  # noqa: F401
    except Exception as err:
        out.append(f"neural-tangents left out (does not import here: {type(err).__name__}: {str(err)[:120]})")
    return out


def _calibrate(fn, p, k):
    """Scale c with E‖c·Pg‖² = ‖g‖² for a projector fn (the peers differ in convention)."""
    import torch

    g = torch.randn(64, p, generator=torch.Generator().manual_seed(1))
    ratio = float((fn(g) ** 2).sum() / (g ** 2).sum())
    return 1.0 / ratio ** 0.5


def features_line(quick=False, repeats=2, threads=1, n=None, k=None, seed=0):
    """eNTK features per row: TorchNTK ``project`` (per-sample Jacobians + CountSketch) and
    ``sketch`` (forward-mode) against TRAK's and dattri's projections of the same per-sample
    Jacobians, on the same MLP and rows in the same run: seconds per row and kernel error
    ‖K̂ − K‖_F/‖K‖_F against the exact eNTK, at the same k numbers per contracted output.

    Returns a list of dicts (what, ours_s, peer_s, peer, error_ours, error_peer, note)."""
    import torch
    from torch.func import functional_call, jacrev, vmap

    from krepes_lib.neural import TorchNTK
    from krepes_lib.neural.networks import MLPEncoder

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    d, width, depth, O = 100, 128, 2, 16
    n = n or (64 if quick else 128)
    k = k or 256
    net = MLPEncoder(d, (width,) * depth, O, batchnorm=False).eval().float()
    p = sum(q.numel() for q in net.parameters())
    X = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    K = TorchNTK(net, cache_bytes=0)(X.astype(np.float64))
    nrm = np.linalg.norm(K)
    params = {kk: v.detach() for kk, v in net.named_parameters()}
    buffers = {kk: v.detach() for kk, v in net.named_buffers()}

    def f1(prm, x):
        return functional_call(net, (prm, buffers), (x.unsqueeze(0),)).squeeze(0)

    x = torch.from_numpy(X)

    def jac():  # the per-sample Jacobians (n, O, p) every projection starts from
        with torch.no_grad():
            J = vmap(jacrev(f1), (None, 0))(params, x)
            return torch.cat([J[kk].reshape(n, O, -1) for kk in params], dim=2)

    ours = TorchNTK(net, implementation="project", projection_dim=k, seed=seed, cache_bytes=0)
    sk = TorchNTK(net, implementation="sketch", sketch_size=k // O * 4, seed=seed, cache_bytes=0)

    def err(F):
        F = np.asarray(F, dtype=np.float64)
        return float(np.linalg.norm(F @ F.T - K) / nrm)

    rows = []
    fns = {"ours": lambda: ours.features(X), "sketch": lambda: sk.features(X)}
    peers = []
    for item in _peer_projectors(p, k, seed):
        if isinstance(item, str):
            rows.append({"note": item})
            continue
        name, fn = item
        c = _calibrate(fn, p, k)
        peers.append((name, fn, c))
        fns[name] = (lambda fn=fn, c=c: (c * fn(jac().reshape(n * O, p))).reshape(n, O * k))
    times = {kk: float("inf") for kk in fns}
    outs = {kk: fn() for kk, fn in fns.items()}  # warm-up, and the features the error is read from
    for _ in range(repeats):
        for kk, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[kk] = min(times[kk], time.perf_counter() - t0)
    e_ours = err(outs["ours"])
    what = f"eNTK features/row, MLP {d}-{width}x{depth}-{O} (p = {p}), k = {k} per output, {n} rows"
    for name, _, _ in peers:
        rows.append({"what": what, "ours_s": times["ours"] / n, "peer_s": times[name] / n, "peer": name,
                     "error_ours": e_ours, "error_peer": err(outs[name]),
                     "note": f"kernel error vs exact: ours (CountSketch) {e_ours:.3f}, peer {err(outs[name]):.3f}"})
    rows.append({"what": what.replace("features/row", f"sketch S={k // O * 4} vs project"),
                 "ours_s": times["ours"] / n, "peer_s": times["sketch"] / n,
                 "peer": f"TorchNTK sketch S={k // O * 4} (forward mode)", "error_ours": e_ours,
                 "error_peer": err(outs["sketch"]),
                 "note": f"kernel error: project {e_ours:.3f}, sketch {err(outs['sketch']):.3f} "
                         f"({k // O * 4 * O} vs {k * O} features)"})
    return rows


if __name__ == "__main__":
    import sys

    if "--features" in sys.argv:
        for r in features_line(quick="--quick" in sys.argv):
            print(r)
    else:
        main()
