"""Dask scaling: the row-parallel passes on 1 and 2 local workers against one plain process.

Usage::

    python benchmarks/bench_dask.py                      # the issue's sizes (about 15-25 min here)
    python benchmarks/bench_dask.py --rows 1000000 --entk-rows 4000   # a smaller run
    python benchmarks/bench_dask.py --stages entk --workers 1 2 --json /tmp/dask.json

Two workloads, each run three ways in one invocation — single-process (the library on rows in
memory, no Dask), and on a ``LocalCluster`` of 1 and of 2 worker processes (one thread each) —
every run in a fresh child process, so peak memory is that run's own:

* ``audit``: the one-step audit (Barlow Twins, batches of 2×B views, CG capped at
  ``--cg-iters`` like ``bench_scale.py``) over ``--rows`` synthetic rows (default 10⁷, d = 16),
  generated on the workers by ``dask.array.random`` and never materialised on the client; the
  plain process generates the same rows in memory. Batches: ⌊n/B⌋, per partition on Dask.
* ``entk``: the eNTK features φ(x) (``TorchNTK.features``, sketch of ``--entk-size``
  directions) of ``krepes_lib.neural.networks.SmallConvNet`` (random initialisation, seed 0)
  over ``--entk-rows`` MNIST training images (default 20,000), mapped over partitions with the
  network sent once (``TorchNTK.features`` on Dask rows, :mod:`krepes_lib.distributed`).

Printed per run: wall time of the pass (cluster start and data set-up excluded, reported
apart), speed-up against 1 worker and against the plain process, peak RSS of every worker and
of the client, and the scheduler's overhead: for ``entk`` the share of worker time not spent in
tasks (task stream), for ``audit`` the round trip of a no-op call to every partition's actor
times the number of passes. The machine's load average is printed before and after each run
(2 shared cores here: a busy machine distorts the 2-worker speed-up; rerun when quieter).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker_peak_mb():
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def workers_cpu(client) -> dict:
    return client.run(cpu_s)


def cpu_delta(before, after) -> list:
    return sorted(after[w] - before[w] for w in after)


def worker_settings(dask_defaults: bool) -> dict:
    """Dask configuration of the workers: ``krepes_lib.distributed.worker_config()`` (no
    ``MALLOC_TRIM_THRESHOLD_`` in the workers' environment, profiler off), or Dask's own
    settings with ``--dask-defaults``."""
    from krepes_lib.distributed import worker_config

    return {} if dask_defaults else worker_config()


def cluster(workers, dask_defaults=False):
    import dask
    from distributed import Client, LocalCluster

    dask.config.set(worker_settings(dask_defaults))
    cl = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40, memory_limit=0)
    return cl, Client(cl)


# --- the audit workload ---------------------------------------------------------------------
def audit_rows(a):
    import dask.array as da

    chunk = -(-a.rows // a.parts)
    return da.random.default_rng(a.seed).standard_normal((a.rows, a.d), chunks=(chunk, a.d),
                                                         dtype=np.float32)


def audit_model(a, X):
    import krepes_lib as kr

    lm = kr.select_landmarks(X, m=a.m, method="uniform", seed=0)
    return kr.NystromModel(kr.Nystrom(kr.RBF(sigma=float(np.sqrt(2 * a.d))), lm), h=a.h)


def child_audit(a, workers):
    import krepes_lib as kr

    out = {"stage": "audit", "workers": workers, "load_before": load()}
    opts = kr.Options(cg_max_iter=a.cg_iters, damping=1e-2)
    nb = max(1, a.rows // a.batch)
    t0 = time.perf_counter()
    if workers == 0:
        X = audit_rows(a).compute(scheduler="sync")   # the same rows, in this process
        model = audit_model(a, X)
        out["setup_s"] = time.perf_counter() - t0
        c0, t0 = cpu_s(), time.perf_counter()
        res = kr.audit(model, "barlow_twins", X, augment="table", seed=0, n_batches=nb,
                       batch_size=a.batch, options=opts)
        out["wall_s"] = time.perf_counter() - t0
        out["cpu_s"] = [cpu_s() - c0]
        out["client_peak_mb"] = peak_mb()
    else:
        cl, client = cluster(workers, a.dask_defaults)
        out["cluster_start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        Xd = audit_rows(a)                                  # generated on the workers
        model = audit_model(a, Xd)                          # m rows come back
        out["setup_s"] = time.perf_counter() - t0
        w0, t0 = workers_cpu(client), time.perf_counter()
        res = kr.audit(model, "barlow_twins", Xd, augment="table", seed=0, n_batches=nb,
                       batch_size=a.batch, options=opts)
        out["wall_s"] = time.perf_counter() - t0
        out["cpu_s"] = cpu_delta(w0, workers_cpu(client))
        out["worker_peak_mb"] = sorted(client.run(_worker_peak_mb).values())
        # round trip of one pass without work: a no-op call to every partition's actor
        from krepes_lib.distributed import audit_operator

        op = audit_operator(model, res.objective, res.objective.init_state(model), Xd, augment="table",
                            seed=0, n_batches=nb, batch_size=a.batch, options=opts)
        ts = []
        for _ in range(7):
            t1 = time.perf_counter()
            op.worker_bytes()
            ts.append(time.perf_counter() - t1)
        out["round_trip_s"] = float(np.median(ts))
        out["passes"] = int(res.n_matvec) + 2     # gradient, CG products, the step's value
        out["overhead_s"] = out["round_trip_s"] * out["passes"]
        out["client_peak_mb"] = peak_mb()
        client.close()
        cl.close()
    out.update(loss_before=res.loss_before, loss_after=res.loss_after, cg_iterations=int(res.cg.iterations),
               n_batches=nb, load_after=load())
    return out


# --- the eNTK-features workload -------------------------------------------------------------
def entk_data(a):
    import krepes_lib as kr

    ds = kr.data.load("mnist")
    X = np.asarray(ds.X[: a.entk_rows], dtype=np.float32)
    if X.max() > 1.5:
        X = X / np.float32(255.0)
    return X


def entk_kernel(a):
    import torch

    from krepes_lib.neural import TorchNTK
    from krepes_lib.neural.networks import SmallConvNet

    torch.manual_seed(0)
    net = SmallConvNet((28, 28, 1), out=64)
    return TorchNTK(net, implementation=a.entk_impl, sketch_size=a.entk_size, contraction="sum",
                    cache_bytes=0)


def child_entk(a, workers):
    import torch

    torch.set_num_threads(1)
    out = {"stage": "entk", "workers": workers, "load_before": load()}
    X = entk_data(a)
    kern = entk_kernel(a)
    if workers == 0:
        c0, t0 = cpu_s(), time.perf_counter()
        F = kern.features(X)
        out["wall_s"] = time.perf_counter() - t0
        out["cpu_s"] = [cpu_s() - c0]
        out["client_peak_mb"] = peak_mb()
    else:
        import dask.array as da


        t0 = time.perf_counter()
        cl, client = cluster(workers, a.dask_defaults)
        client.run(lambda: __import__("torch").set_num_threads(1))
        out["cluster_start_s"] = time.perf_counter() - t0
        Xd = da.from_array(X, chunks=(-(-X.shape[0] // a.entk_parts), -1))
        client.get_task_stream()  # start recording
        with __import__("distributed").get_task_stream(client) as ts:
            w0, t0 = workers_cpu(client), time.perf_counter()
            F = kern.features(Xd).compute()     # TorchNTK.features on Dask rows
            out["wall_s"] = time.perf_counter() - t0
            out["cpu_s"] = cpu_delta(w0, workers_cpu(client))
        busy = sum(sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
                   for t in ts.data)
        out["task_compute_s"] = busy
        out["overhead_share"] = 1.0 - busy / (workers * out["wall_s"])
        out["worker_peak_mb"] = sorted(client.run(_worker_peak_mb).values())
        out["client_peak_mb"] = peak_mb()
        client.close()
        cl.close()
    out.update(shape=list(F.shape), checksum=float(np.abs(F).sum()), load_after=load())
    return out


# --- driver ---------------------------------------------------------------------------------
def run_child(a, stage, workers):
    cmd = [sys.executable, __file__, "--child", stage, str(workers)] + a.passthrough
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if p.returncode != 0:
        return {"stage": stage, "workers": workers, "error": p.stderr[-2000:],
                "elapsed_s": time.perf_counter() - t0}
    return json.loads(p.stdout.strip().splitlines()[-1])


def report(rows, emit=print):
    emit("| stage | run | wall (s) | vs 1 worker | vs plain | CPU s per worker (share of wall) "
         "| peak RSS per worker (MB) | client peak (MB) | scheduler overhead | load before → after |")
    emit("|---|---|---:|---:|---:|---|---|---:|---|---|")
    for stage in ("audit", "entk"):
        rs = {r["workers"]: r for r in rows if r["stage"] == stage and "wall_s" in r}
        if not rs:
            continue
        plain, one = rs.get(0), rs.get(1)
        for w in sorted(rs):
            r = rs[w]
            name = "plain process" if w == 0 else f"Dask, {w} worker{'s' if w > 1 else ''}"
            vs1 = f"{one['wall_s'] / r['wall_s']:.2f}×" if one and w else ""
            vsp = f"{plain['wall_s'] / r['wall_s']:.2f}×" if plain and w else ""
            peaks = ", ".join(f"{x:.0f}" for x in r.get("worker_peak_mb", [])) or "—"
            if stage == "entk" and w:
                ov = f"{100 * r['overhead_share']:.1f} % of worker time idle"
            elif w:
                ov = f"{r['overhead_s']:.2f} s ({r['passes']} passes × {1000 * r['round_trip_s']:.0f} ms)"
            else:
                ov = "—"
            cpu = ", ".join(f"{c:.0f} ({100 * c / r['wall_s']:.0f} %)" for c in r.get("cpu_s", []))
            emit(f"| {stage} | {name} | {r['wall_s']:.1f} | {vs1} | {vsp} | {cpu} | {peaks} | "
                 f"{r['client_peak_mb']:.0f} | {ov} | {r['load_before']} → {r['load_after']} |")
    emit("")
    for stage in ("audit", "entk"):
        rs = {r["workers"]: r for r in rows if r["stage"] == stage and "cpu_s" in r}
        if 1 in rs and 2 in rs:
            c1, c2 = sum(rs[1]["cpu_s"]), max(rs[2]["cpu_s"])
            emit(f"- {stage}: the busier of the two workers used {c2:.0f} CPU s against {c1:.0f} for the "
                 f"single worker — {c1 / c2:.2f}× less CPU time on the critical path: the 1→2 speed-up "
                 "with a free core per worker (a projection from CPU time, not a wall-time measurement).")
    for r in rows:
        if "error" in r:
            emit(f"# {r['stage']} with {r['workers']} worker(s) failed:\n{r['error']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stages", nargs="+", default=["audit", "entk"], choices=("audit", "entk"))
    ap.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2],
                    help="0 = the plain process; n > 0 = a LocalCluster of n workers")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--h", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--parts", type=int, default=8, help="row partitions of the audit's rows")
    ap.add_argument("--cg-iters", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--entk-rows", type=int, default=20_000)
    ap.add_argument("--entk-parts", type=int, default=8)
    ap.add_argument("--entk-impl", default="sketch")
    ap.add_argument("--entk-size", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--dask-defaults", action="store_true",
                    help="keep Dask's worker settings (see worker_settings)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--book", action="store_true",
                    help="write the table to book/generated/dask_<stage>.md (the cluster page includes it)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        stage, w = a.child[0], int(a.child[1])
        out = child_audit(a, w) if stage == "audit" else child_entk(a, w)
        print(json.dumps(out))
        return
    keep = ("--rows", "--d", "--m", "--h", "--batch", "--parts", "--cg-iters", "--seed", "--entk-rows",
            "--entk-parts", "--entk-impl", "--entk-size")
    a.passthrough = [x for k in keep for x in (k, str(getattr(a, k[2:].replace("-", "_"))))]
    if a.dask_defaults:
        a.passthrough.append("--dask-defaults")
    print(f"# bench_dask — {os.cpu_count()} CPUs, load {load()}; audit: n = {a.rows}, d = {a.d}, "
          f"m = {a.m}, h = {a.h}, B = {a.batch}, {a.parts} partitions, CG ≤ {a.cg_iters}; eNTK: "
          f"{a.entk_rows} MNIST rows, SmallConvNet, {a.entk_impl} S = {a.entk_size}, "
          f"{a.entk_parts} partitions; workers: "
          + ("Dask's default settings" if a.dask_defaults else
             "no MALLOC_TRIM_THRESHOLD_, profiler off (see worker_settings)"), flush=True)
    rows = []
    for stage in a.stages:
        for w in a.workers:
            r = run_child(a, stage, w)
            rows.append(r)
            print(f"# {stage}, {'plain' if w == 0 else f'{w} worker(s)'}: "
                  + (f"{r['wall_s']:.1f} s" if "wall_s" in r else "FAILED")
                  + f" (load {r.get('load_before')} → {r.get('load_after')})", flush=True)
    report(rows)
    if a.book:
        from pathlib import Path

        gen = Path(__file__).resolve().parents[1] / "book" / "generated"
        gen.mkdir(parents=True, exist_ok=True)
        for stage in a.stages:
            lines = [f"<!-- written by benchmarks/bench_dask.py --book; do not edit -->",
                     f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
                     f"shared CPUs (`python benchmarks/bench_dask.py {' '.join(a.passthrough)} "
                     f"--stages {stage}`); load average (1, 5, 15 min) before and after each run in the "
                     "last column.", ""]
            report([r for r in rows if r["stage"] == stage], emit=lines.append)
            path = gen / f"dask_{stage}.md"
            path.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
            os.replace(path.with_suffix(".tmp"), path)
            print(f"# wrote {path}")
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"args": {k: v for k, v in vars(a).items() if k != "passthrough"}, "rows": rows},
                      f, indent=1)
        os.replace(a.json + ".tmp", a.json)
        print(f"# saved {a.json}")


if __name__ == "__main__":
    main()
