"""Peak resident memory and seconds of every pass over the data, for n = 10⁴ … 10⁶ (issue 11).

Each (stage, n) runs in a **fresh subprocess** (``--child``), so its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the child) is that stage's alone, on top of
the data X itself (the ``data`` stage: X only). Synthetic Gaussian-mixture data (10 clusters,
d = 100, float32), m = 1000 landmarks, h = 64, RBF with the median bandwidth, Barlow Twins.
Target: peak RSS ≤ 2 GB at n = 10⁶ (the n×m kernel alone would be 4 GB).

Stages
------
data          generate X (n, d) and nothing else: the baseline.
median_sigma  krepes_lib.median_sigma(X) on all rows (the median-heuristic bandwidth).
kmeans        k-means++ landmarks in input space (krepes_lib.landmarks.kmeans_pp).
kmeans_kernel k-means++ in kernel space (one streamed n×1 kernel column per landmark).
leverage      ridge leverage scores with a uniform sketch of s = ``--sketch`` rows.
pc_init       Nyström eigendecomposition + model at the PC init (uniform landmarks).
kernel_pass   one streamed pass of K_nm blocks (kernel.blocks).
features      f(X) = K_nm Ã + 1γᵀ streamed (model.embed), an (n, h) output.
epoch         one training epoch (krepes_lib.train.fit, B = 1024).
objective_grad full-data objective and gradient (krepes_lib.scaling.full_objective_and_gradient).
ggn_stream    one full-data GGN product (krepes_lib.scaling.StreamedGGN.matvec).
audit_lib     krepes_lib.audit.audit over n/B batches (the library audit; CG capped at 2).
topk          top-5 influential landmarks for all n rows as queries (Audit.top_influential).
knn_conf      k-NN confidence drop (k = 50, 10 removed) for all n rows as queries.
knn_eval      k-NN accuracy of 1000 queries against the n embedded rows (evaluate.knn_accuracy).

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_scale.py                 # all stages, 1e4 1e5 1e6
    python benchmarks/bench_scale.py --n 10000 100000 --stages kmeans epoch

Threads: the parent sets OPENBLAS_NUM_THREADS/OMP_NUM_THREADS for the children (``--threads``,
default 1); dtype float32. Output: one line per (stage, n) and a table; ``--json`` writes it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

STAGES = ("data", "median_sigma", "kmeans", "kmeans_kernel", "leverage", "pc_init", "kernel_pass", "features",
          "epoch", "objective_grad", "ggn_stream", "audit_lib", "topk", "knn_conf", "knn_eval")
TARGET_BYTES = 2 * 10**9


def make_data(n, d, seed=0, clusters=10):
    """Gaussian mixture: cluster centres N(0, 4I), rows centre + N(0, I), float32, built in chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(clusters, d)).astype(np.float32)
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        r = np.random.default_rng([seed, start])
        lab = r.integers(clusters, size=stop - start)
        X[start:stop] = centres[lab] + r.standard_normal((stop - start, d), dtype=np.float32)
        y[start:stop] = lab
    return X, y


def child(stage, n, d, m, h, B, sketch):
    import numpy as np

    import krepes_lib as kr
    from krepes_lib.studies import scaling
    from krepes_lib.interpret import confidence_drop

    X, y = make_data(n, d)
    # Bandwidth from 20k seeded rows: kr.median_sigma(X) on all rows casts X to float64 first
    # (the median_sigma stage measures that).
    sub = np.random.default_rng(0).choice(n, size=min(n, 20_000), replace=False)
    kern = kr.RBF(sigma=kr.median_sigma(X[sub]))
    out = {}
    t0 = time.perf_counter()

    def model_at_init():
        lm = kr.select_landmarks(X, m=m, method="uniform", seed=0)
        return kr.NystromModel(kr.Nystrom(kern, lm), h=h), lm

    if stage == "data":
        pass
    elif stage == "median_sigma":
        kr.median_sigma(X)
    elif stage == "kmeans":
        kr.select_landmarks(X, m=m, method="kmeans++", seed=0)
    elif stage == "kmeans_kernel":
        kr.select_landmarks(X, m=m, method="kmeans++", kernel=kern, kernel_space=True, seed=0)
    elif stage == "leverage":
        kr.select_landmarks(X, m=m, method="leverage", kernel=kern, seed=0, sketch_size=sketch)
    else:
        t_setup = time.perf_counter()
        model, lm = model_at_init()
        out["setup_s"] = time.perf_counter() - t_setup
        t0 = time.perf_counter()
        if stage == "pc_init":
            t0 = t_setup
        elif stage == "kernel_pass":
            for _ in kern.blocks(X, lm.points):
                pass
        elif stage == "features":
            model.embed(X)
        elif stage == "epoch":
            kr.fit(model, X, "barlow_twins", epochs=1, batch_size=B, progress=False)
        elif stage == "objective_grad":
            scaling.full_objective_and_gradient(model, "barlow_twins", X, batch_size=B)
        elif stage == "ggn_stream":
            op = scaling.StreamedGGN(model, "barlow_twins", X, damping=1e-2, batch_size=B)
            V = {k: np.ones(s, dtype=np.float32) for k, s in op._shapes.items()}
            op.matvec(V)
        elif stage == "audit_lib":
            kr.audit(model, "barlow_twins", X, n_batches=max(1, n // B), batch_size=B,
                     options=kr.Options(cg_max_iter=2))
        elif stage in ("topk", "knn_conf"):
            a = kr.audit(model, "barlow_twins", X, n_batches=4, batch_size=B,
                         options=kr.Options(cg_max_iter=5))
            t0 = time.perf_counter()
            if stage == "topk":
                a.top_influential(X, K=5)
            else:
                confidence_drop(kern, a.landmarks, X, a.delta_A, y[lm.indices], y_t=y, A_repr=a.A,
                                gamma=a.gamma, k=50, n_remove=10)
        elif stage == "knn_eval":
            Z = model.embed(X)
            t0 = time.perf_counter()
            kr.knn_accuracy(Z, y, Z[:1000], y[:1000])
        else:
            raise ValueError(f"unknown stage {stage!r}; choose from {STAGES}")
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--m", type=int, default=1000)
    p.add_argument("--h", type=int, default=64)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--sketch", type=int, default=1000, help="leverage-score sketch rows s")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per (stage, n)")
    p.add_argument("--json", default=None, help="write the rows to this file")
    p.add_argument("--child", nargs=2, metavar=("STAGE", "N"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(a.child[0], int(a.child[1]), a.d, a.m, a.h, a.batch, a.sketch)
        return
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads),
           "MKL_NUM_THREADS": str(a.threads)}
    print(f"bench_scale: d={a.d} m={a.m} h={a.h} B={a.batch} float32, {a.threads} BLAS thread(s), "
          f"load {os.getloadavg()[0]:.2f}; target peak RSS <= {TARGET_BYTES / 1e9:.0f} GB", flush=True)
    rows = []
    for n in a.n:
        for stage in a.stages:
            cmd = [sys.executable, __file__, "--child", stage, str(n), "--d", str(a.d), "--m", str(a.m),
                   "--h", str(a.h), "--batch", str(a.batch), "--sketch", str(a.sketch)]
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=a.timeout)
                ok = r.returncode == 0
                res = json.loads(r.stdout.strip().splitlines()[-1]) if ok else {}
                err = "" if ok else (r.stderr.strip().splitlines() or ["?"])[-1][:160]
            except subprocess.TimeoutExpired:
                res, err = {}, f"timeout after {a.timeout:.0f} s"
            row = {"stage": stage, "n": n, **res, "error": err}
            rows.append(row)
            if err:
                print(f"n={n:>8d} {stage:<15s} FAILED: {err}", flush=True)
            else:
                gb = res["peak_rss_bytes"] / 1e9
                print(f"n={n:>8d} {stage:<15s} peak RSS {gb:6.2f} GB  {res['seconds']:8.2f} s"
                      f"  {'OK' if res['peak_rss_bytes'] <= TARGET_BYTES else 'OVER 2 GB'}", flush=True)
    for n in a.n:
        sel = [r for r in rows if r["n"] == n and not r["error"]]
        if sel:
            worst = max(sel, key=lambda r: r["peak_rss_bytes"])
            print(f"n={n}: max peak RSS {worst['peak_rss_bytes'] / 1e9:.2f} GB ({worst['stage']}); "
                  f"stages over 2 GB: {[r['stage'] for r in sel if r['peak_rss_bytes'] > TARGET_BYTES] or 'none'}; "
                  f"failed: {[r['stage'] for r in rows if r['n'] == n and r['error']] or 'none'}")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=1)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
