"""Scaling study: larger data sets from real rows, stage timers, log-log slope fits, streamed passes.

Book: notebook *13 Scaling* (``notebooks/13_scaling.ipynb``); spec §7 ("runtime grows like
n^1.5 (m ≈ √n) vs n² for the full kernel, accuracy on par"), issue 11.

What is here
------------
* :func:`resample_rows` — **our** construction of data sets larger than the real table (the
  paper's "1M Adult" construction is not public): the real rows first (a seeded permutation),
  then bootstrap copies of real rows with a small Gaussian jitter on the non-binary columns,
  eq. (sc-resample) below. For n ≤ the number of real rows only real rows are used.
* stages are timed by the one timer, :class:`krepes_lib.timing.Timer`; slopes are fitted by
  :func:`krepes_lib.stats.fit_loglog` (log t = a + s·log n, t-interval and bootstrap interval),
  :func:`krepes_lib.stats.crossover_n` says where two fitted power laws meet.
* :func:`full_objective_and_gradient` and :class:`StreamedGGN` — the objective, its
  gradient and Gauss–Newton products **over all rows of X**, streamed batch by batch (thin
  compositions of :class:`krepes_lib.problem.BatchProblem`): memory O(B·(m + d) + m·h), the
  views of a batch are regenerated from a per-batch seed at every pass instead of being kept.
* :func:`nystrom_timings` / :func:`full_kernel_timings` — the stages of one KREPES run
  (landmarks, kernel blocks, PC init, one epoch, evaluation) with m = ⌈√n⌉, and of the exact
  kernel (m = n, every row a landmark), timed separately.

Resampling, eq. (sc-resample)
-----------------------------
Given real rows x_1..x_N (labels y_i) and a target n:

* n ≤ N: rows π(1..n) of a seeded permutation π of the real rows (real rows only);
* n > N: all N real rows (in the order π), then n − N synthetic rows
  x̂ = x_s + ε ⊙ (τ σ) with s uniform on {1..N} (bootstrap, with replacement), ŷ = y_s,
  σ_j the standard deviation of column j over the real rows, τ = ``jitter`` (default 0.05)
  and ε ~ N(0, I); columns with at most two distinct values (one-hot, binary) are copied
  exactly (ε_j = 0).

Synthetic rows are drawn in fixed chunks of :data:`CHUNK` rows, chunk c from
``default_rng([seed, 1, c])``, so the data set of size n is a prefix of the one of size
n' > n and the same seed gives the same rows on every machine. This is ours, not the paper's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..backend import default_xp, get_xp, to_device, to_host
from ..timing import Timer

__all__ = ["Resampled", "resample_rows", "real_rows", "full_data_batches", "full_objective_and_gradient",
           "StreamedGGN", "nystrom_timings", "full_kernel_timings", "m_sweep", "scaling_curve",
           "smallest_sufficient_m", "load_tables", "stage_table", "train_seconds", "time_breakdown",
           "TRAIN_STAGES", "CHUNK"]

#: Rows per chunk of synthetic rows (each chunk has its own seeded generator).
CHUNK = 65536


# ============================================================================================
# data
# ============================================================================================
@dataclass(frozen=True)
class Resampled:
    """A data set built by :func:`resample_rows`.

    Attributes
    ----------
    X : numpy.ndarray (n, d), float32
    y : numpy.ndarray (n,)
    source : numpy.ndarray (n,), int64
        The real row each row comes from (identity copy or jittered bootstrap copy).
    n_real : int
        The first ``n_real`` rows are real rows, unchanged; the rest are synthetic.
    jittered : numpy.ndarray (d,), bool
        Columns that receive jitter (more than two distinct values among the real rows).
    """

    X: np.ndarray
    y: np.ndarray
    source: np.ndarray
    n_real: int
    jittered: np.ndarray

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


def resample_rows(X, y, n: int, seed: int = 0, jitter: float = 0.05) -> Resampled:
    """n rows built from the real rows (X, y) by eq. (sc-resample) (module docstring); ours.

    Parameters
    ----------
    X : array (N, d)
        The real rows (host array; any float dtype, returned as float32).
    y : array (N,)
        Their labels (copied to the synthetic rows of the same source).
    n : int
        Rows wanted (any positive integer; beyond N the rest is synthetic).
    seed : int
    jitter : float, default 0.05
        τ: jitter standard deviation as a fraction of each column's standard deviation.

    Returns
    -------
    Resampled
    """
    X = np.asarray(to_host(X))
    y = np.asarray(to_host(y))
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X must be a non-empty 2-D (N, d) array of real rows; got shape {X.shape}.")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one label per row of X, shape ({X.shape[0]},); got {y.shape}.")
    if int(n) != n or n < 1:
        raise ValueError(f"n={n} must be a positive integer number of rows.")
    if not jitter >= 0:
        raise ValueError(f"jitter={jitter} must be >= 0 (a fraction of each column's std).")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or inf; clean the real rows first.")
    n, N, d = int(n), X.shape[0], X.shape[1]
    order = np.random.default_rng([seed, 0]).permutation(N)
    n_real = min(n, N)
    jittered = np.array([np.unique(X[:, j]).size > 2 for j in range(d)], dtype=bool)
    out = np.empty((n, d), dtype=np.float32)
    source = np.empty(n, dtype=np.int64)
    source[:n_real] = order[:n_real]
    out[:n_real] = X[order[:n_real]]
    if n > N:
        scale = (jitter * X[:, jittered].astype(np.float64).std(axis=0)).astype(np.float32)
        for c, start in enumerate(range(N, n, CHUNK)):
            stop = min(n, start + CHUNK)
            rng = np.random.default_rng([seed, 1, c])
            src = rng.integers(N, size=CHUNK)[:stop - start]
            eps = rng.standard_normal((CHUNK, int(jittered.sum())), dtype=np.float32)[:stop - start]
            block = X[src].astype(np.float32)
            block[:, jittered] += eps * scale[None, :]
            out[start:stop] = block
            source[start:stop] = src
    return Resampled(out, y[source], source, n_real, jittered)


def real_rows(name: str, n_test: int = 2000, seed: int = 0):
    """The real rows of a table for the scaling study: ``(X, y, X_test, y_test, note)``.

    ``adult``: the ``train`` split (30,162 complete rows) to grow from, ``n_test`` rows of the
    ``test`` split to evaluate on. ``bank``: all 45,211 rows, ``n_test`` of them (seeded) held
    out. Raises what :func:`krepes_lib.data.load` raises (FileNotFoundError with the fetch
    command when a file is missing).
    """
    from .. import data

    if name == "adult":
        tr = data.load("adult", split="train")
        te = data.load("adult", split="test", n=n_test, seed=seed)
        return tr.X, tr.y, te.X, te.y, "adult: train split grows, test split evaluates"
    ds = data.load(name)
    if n_test >= ds.X.shape[0]:
        raise ValueError(f"n_test={n_test} must be below the {ds.X.shape[0]} rows of {name!r}.")
    perm = np.random.default_rng([seed, 2]).permutation(ds.X.shape[0])
    te, tr = perm[:n_test], perm[n_test:]
    return ds.X[tr], ds.y[tr], ds.X[te], ds.y[te], f"{name}: {n_test} rows held out (seed {seed})"


# ============================================================================================
# streamed passes over all rows (thin compositions of BatchProblem)
# ============================================================================================
def full_data_batches(X, batch_size: int, views: int, augment="auto", seed: int = 0):
    """Yield the views of every batch of a seeded permutation of all rows of X (last partial batch kept).

    Batch b's views come from ``default_rng([seed, 1, b])``, so iterating again yields the same
    views: a pass can be repeated (CG) without keeping anything.
    """
    from ..views import resolve_augment

    xp = get_xp(X)
    n = X.shape[0]
    B = int(min(batch_size, n))
    aug = resolve_augment(augment, views)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    for b, start in enumerate(range(0, n, B)):
        rng = np.random.default_rng([seed, 1, b])
        Xb = X[xp.asarray(perm[start:start + B])]
        yield tuple(aug(Xb, rng) for _ in range(views))


def _source(model, objective, state, X, batch_size, augment, seed, options):
    """A callable giving a fresh pass of batch problems over all rows (for a streamed GGNOperator);
    each batch's kernel block within ``options.memory_budget``."""
    from ..options import resolve_options
    from ..problem import BatchProblem

    budget = resolve_options(options).memory_budget

    def one_pass():
        for vw in full_data_batches(X, batch_size, objective.views, augment, seed):
            vw = tuple(v.astype(model.dtype, copy=False) for v in vw)
            yield BatchProblem(model, objective, state, vw, budget)

    return one_pass


def StreamedGGN(model, loss, X, damping: float = 0.0, batch_size: int = 1024, augment="auto",
                seed: int = 0, options=None, keys=None, state=None):
    """(H_GN + δI) of the full-data objective (row-weighted batch mean), streamed (eq. ggn-lift).

    A :class:`krepes_lib.curvature.GGNOperator` over a *callable* source: every gradient and
    product regenerates the batch views (:func:`full_data_batches`) and recomputes their kernel
    blocks; nothing per batch is kept. Memory O(B·(m + d) + m·h); time per product: one pass.
    ``keys`` defaults to the main parameter and γ (the audit's blocks); ``options``: its
    ``memory_budget`` bounds a batch's kernel block.
    """
    from ..curvature import GGNOperator
    from ..losses import make_objective

    objective = make_objective(loss)
    state = objective.init_state(model) if state is None else state
    src = _source(model, objective, state, X, batch_size, augment, seed, options)
    return GGNOperator(src, damping=damping, keys=(model._main, "gamma") if keys is None else keys)


def full_objective_and_gradient(model, loss, X, batch_size: int = 1024, augment="auto", seed: int = 0,
                                options=None, state=None):
    """Row-weighted mean over all batches of the objective and its gradient (eq. model-grad).

    The full-data objective of a batch loss is the mean of the batch objectives over a
    partition of the rows (the SSL losses are defined per batch). Streamed: one kernel block
    of B rows at a time. Returns ``(value, grads)`` over every trainable array.
    """
    from ..curvature import GGNOperator
    from ..losses import make_objective

    objective = make_objective(loss)
    state = objective.init_state(model) if state is None else state
    src = _source(model, objective, state, X, batch_size, augment, seed, options)
    return GGNOperator(src).gradient()


# ============================================================================================
# the timed stages of the scaling notebook
# ============================================================================================
def _probe(model_or_Z, X, y, X_test, y_test, seed):
    from ..evaluate import linear_probe

    Z = model_or_Z.embed(X)
    Zt = model_or_Z.embed(X_test)
    return linear_probe(to_host(Z), to_host(y), to_host(Zt), to_host(y_test), seed=seed)


def nystrom_timings(X, y, X_test, y_test, m="sqrt", h: int = 32, loss: str = "barlow_twins",
                    batch_size: int = 512, landmarks: str = "kmeans++", seed: int = 0,
                    kernel=None, stage: str = "epoch", probe: bool = True, breakdown: bool = False) -> dict:
    """Time the stages of one KREPES run on X: ``landmarks``, ``kernel`` (one streamed pass of
    K_nm blocks), ``pc_init`` (Nyström eigendecomposition, model at Ã₀), ``epoch`` (one
    training epoch, ``stage="epoch"``) or ``audit`` (one GGN-Newton audit over n/B batches,
    ``stage="audit"``), ``evaluation`` (embedding train and test rows, 10%-label linear probe).

    With ``breakdown``, one extra pass over the batches of :func:`full_data_batches` times
    ``epoch_views`` (drawing the rows and augmenting the p = 2 views) and ``epoch_kernel``
    (their kernel blocks k(views, x̃)) apart — the epoch's own data and kernel work, so
    ``epoch − epoch_views − epoch_kernel`` is the optimisation's share.

    Returns ``{"n", "m", "seconds": {stage: s}, "accuracy"}`` (accuracy NaN without ``probe``).
    """
    from ..audit import audit as run_audit
    from ..recipe import default_kernel
    from ..landmarks import select_landmarks
    from ..model import NystromModel
    from ..nystrom import Nystrom
    from ..train import fit

    if stage not in ("epoch", "audit"):
        raise ValueError(f"stage={stage!r}: use 'epoch' or 'audit'.")
    xp = default_xp()  # CuPy on a GPU: the data move there once, before any timer starts
    X = to_device(X, xp, dtype="float32")
    X_test = to_device(X_test, xp, dtype="float32")
    T = Timer(xp)
    # median bandwidth from (at most) 20k rows: median_sigma casts its whole input to float64
    k = default_kernel(X[:20000]) if kernel is None else kernel
    with T("landmarks"):
        lm = select_landmarks(X, m=m, method=landmarks, seed=seed)
    with T("kernel"):
        for _ in k.blocks(X, lm.points):
            pass
    with T("pc_init"):
        nys = Nystrom(k, lm)
        model = NystromModel(nys, h=min(h, nys.rank), seed=seed)
    if breakdown:
        B = min(batch_size, X.shape[0])
        batches = full_data_batches(X, B, 2, seed=seed)
        while True:
            with T("epoch_views"):
                views = next(batches, None)
            if views is None:
                break
            with T("epoch_kernel"):
                for v in views:
                    for _ in k.blocks(v, nys.landmarks, rows=v.shape[0]):
                        pass
    with T(stage):
        if stage == "epoch":
            fit(model, X, loss, epochs=1, batch_size=min(batch_size, X.shape[0]), seed=seed, progress=False)
        else:
            B = min(batch_size, X.shape[0])
            a = run_audit(model, loss, X, n_batches=max(1, X.shape[0] // B), batch_size=B, seed=seed)
            model = a
    acc = math.nan
    if probe:
        with T("evaluation"):
            acc = _probe(model, X, y, X_test, y_test, seed)
    return {"n": int(X.shape[0]), "m": lm.m, "seconds": dict(T.seconds), "accuracy": float(acc)}


def full_kernel_timings(X, y, X_test, y_test, h: int = 32, loss: str = "barlow_twins",
                        batch_size: int = 512, seed: int = 0, kernel=None, stage: str = "epoch",
                        probe: bool = True, breakdown: bool = False) -> dict:
    """The same stages with the exact kernel: every row is a landmark (m = n). ``landmarks``
    is then free, ``kernel`` forms all n² entries, ``pc_init`` is the full eigendecomposition
    (O(n³), float64 n×n: the memory limit), an epoch costs O(n²h)."""
    return nystrom_timings(X, y, X_test, y_test, m=X.shape[0], h=h, loss=loss, batch_size=batch_size,
                           landmarks="uniform", seed=seed, kernel=kernel, stage=stage, probe=probe,
                           breakdown=breakdown)


def m_sweep(X, y, X_test, y_test, ms, h: int = 32, landmarks: str = "kmeans++", seed: int = 0,
            kernel=None, error_rows: int = 2000, n: int | None = None) -> list:
    """Accuracy (linear probe at the PC initialisation) and Nyström error vs m at fixed n.

    With ``n`` given, (X, y) are the real rows and the data set is ``resample_rows(X, y, n,
    seed)``; m larger than n is skipped. The kernel defaults to the RBF with the median
    bandwidth of X as passed (the real rows), so every n shares it. For each m: landmarks, Nyström, model at Ã₀, 10%-label probe, and the relative
    Frobenius error ‖K − K̃‖_F/‖K‖_F on ``error_rows`` rows of X (seeded; eq. nys-approx).
    Returns a list of dicts ``{"n", "m", "accuracy", "nystrom_error", "seconds"}``.
    """
    from ..recipe import build_model, default_kernel

    X = np.asarray(to_host(X), dtype=np.float32)
    k = default_kernel(X) if kernel is None else kernel
    if n is not None:
        R = resample_rows(X, y, n, seed=seed)
        X, y = R.X, R.y
        ms = [m for m in ms if m <= n]
    xp = default_xp()
    X = to_device(X, xp, dtype="float32")
    X_test = to_device(X_test, xp, dtype="float32")
    rows = np.sort(np.random.default_rng([seed, 3]).choice(X.shape[0], size=min(error_rows, X.shape[0]),
                                                           replace=False))
    out = []
    for m in ms:
        T = Timer(xp)
        with T("m"):
            model = build_model(X, h, m=int(m), kernel=k, landmarks=landmarks, seed=seed)
            acc = _probe(model, X, y, X_test, y_test, seed)
            err = model.nystrom.relative_error(X[xp.asarray(rows)])
        out.append({"n": int(X.shape[0]), "m": int(m), "accuracy": float(acc), "nystrom_error": float(err),
                    "seconds": T.get("m")})
    return out


def scaling_curve(X_real, y_real, X_test, y_test, ns, seeds=(0,), method: str = "nystrom", h: int = 32,
                  loss: str = "barlow_twins", batch_size: int = 512, stage: str = "epoch", kernel=None,
                  jitter: float = 0.05, progress: bool = True, warmup: bool = True,
                  breakdown: bool = False) -> list:
    """Timed runs over sizes n and seeds: one row per (n, seed).

    The data set of size n is ``resample_rows(X_real, y_real, n, seed)`` (real rows first); the
    seed also draws the landmarks, views and labelled subset. ``method="nystrom"``: m = ⌈√n⌉
    k-means++ landmarks (:func:`nystrom_timings`); ``"full"``: m = n (:func:`full_kernel_timings`).
    The kernel is the RBF with the median bandwidth of the real rows unless ``kernel`` is given
    (one kernel for every n, so only n changes). ``warmup`` runs the smallest configuration
    once untimed first. Rows: ``{"method", "n", "seed", "m", "n_real",
    "seconds", "total", "accuracy"}``.
    """
    from tqdm.auto import tqdm

    from ..recipe import default_kernel

    if method not in ("nystrom", "full"):
        raise ValueError(f"method={method!r}: use 'nystrom' (m = ceil(sqrt(n))) or 'full' (m = n).")
    k = default_kernel(np.asarray(X_real, dtype=np.float32)) if kernel is None else kernel
    rows = []
    jobs = [(int(n), int(s)) for n in ns for s in seeds]
    if warmup and jobs:  # untimed: first-call imports and caches (scikit-learn, BLAS) out of the fit
        R = resample_rows(X_real, y_real, min(n for n, _ in jobs), seed=jobs[0][1], jitter=jitter)
        nystrom_timings(R.X, R.y, X_test, y_test, h=h, loss=loss, batch_size=batch_size, kernel=k,
                        stage=stage)
    for n, s in tqdm(jobs, desc=f"scaling {method}", disable=not progress, leave=False):
        R = resample_rows(X_real, y_real, n, seed=s, jitter=jitter)
        run = nystrom_timings if method == "nystrom" else full_kernel_timings
        kw = {} if method == "full" else {"m": "sqrt"}
        out = run(R.X, R.y, X_test, y_test, h=h, loss=loss, batch_size=batch_size, seed=s, kernel=k,
                  stage=stage, breakdown=breakdown, **kw)
        rows.append({"method": method, "n": n, "seed": s, "m": out["m"], "n_real": R.n_real,
                     "seconds": out["seconds"], "total": float(sum(out["seconds"].values())),
                     "accuracy": out["accuracy"]})
    return rows


def smallest_sufficient_m(rows, tol: float = 0.01) -> dict:
    """Per n: the smallest m of an :func:`m_sweep` whose probe accuracy is within ``tol`` of the
    best accuracy over the sweep (a rule for choosing m; ours). Returns ``{n: m}``."""
    out = {}
    for n in sorted({r["n"] for r in rows}):
        sel = sorted((r for r in rows if r["n"] == n), key=lambda r: r["m"])
        best = max(r["accuracy"] for r in sel)
        out[n] = next(r["m"] for r in sel if r["accuracy"] >= best - tol)
    return out


def load_tables(names, n_test: int = 2000, seed: int = 0):
    """:func:`real_rows` for each name; a table whose files are missing is skipped with its
    reason instead of failing the study. Returns ``(tables, skipped)``: ``{name: (X, y, X_test,
    y_test, note)}`` and ``{name: reason}``."""
    tables, skipped = {}, {}
    for name in names:
        try:
            tables[name] = real_rows(name, n_test=n_test, seed=seed)
        except FileNotFoundError as err:
            skipped[name] = str(err).split(". ")[0]
    return tables, skipped


def stage_table(rows, stages=None) -> dict:
    """Mean seconds per stage and n over the seeds of :func:`scaling_curve` rows: ``{n: {stage: s}}``."""
    out = {}
    for n in sorted({r["n"] for r in rows}):
        sel = [r["seconds"] for r in rows if r["n"] == n]
        keys = stages or list(sel[0])
        out[n] = {k: float(np.mean([s.get(k, 0.0) for s in sel])) for k in keys}
    return out


#: Stages of the training time (evaluation is reported apart).
TRAIN_STAGES = ("landmarks", "kernel", "pc_init", "epoch")


def train_seconds(row) -> float:
    """Training time of a :func:`scaling_curve` row: landmarks + kernel pass + PC init + epoch."""
    return float(sum(row["seconds"].get(k, 0.0) for k in TRAIN_STAGES if k in row["seconds"]) +
                 row["seconds"].get("audit", 0.0))


def time_breakdown(row, views: int = 2) -> dict:
    """Kernel vs views vs optimisation vs evaluation seconds of a :func:`scaling_curve` row.

    kernel = landmarks + kernel pass + PC init + the kernel blocks inside the epoch; views =
    drawing and augmenting the epoch's views; both measured on the epoch's own batches when
    the row was run with ``breakdown=True`` (``epoch_kernel``, ``epoch_views``), else the
    epoch's kernel work is estimated as ``views`` kernel passes and its views as 0; each is
    capped so that the parts never exceed the epoch. optimisation = the rest of the epoch
    (loss, gradients, step); evaluation as measured (embedding of train and test rows, probe).
    """
    s = row["seconds"]
    step = s.get("epoch", s.get("audit", 0.0))
    in_step = min(step, s["epoch_kernel"] if "epoch_kernel" in s else views * s["kernel"])
    aug = min(step - in_step, s.get("epoch_views", 0.0))
    return {"kernel": s["landmarks"] + s["kernel"] + s["pc_init"] + in_step, "views": aug,
            "optimisation": step - in_step - aug, "evaluation": s.get("evaluation", 0.0)}
