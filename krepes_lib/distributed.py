"""Row-parallel passes on Dask: the library's functions of one chunk of rows, mapped over a cluster.

Book: *Running on a cluster* (``book/cluster.md``); ``../shared/STYLE.md`` (Dask:
``map_blocks``, ``blockwise``, reductions).

**One way to use it**: pass a ``dask.array`` of rows (chunked along rows; NumPy or CuPy chunks)
where a NumPy or CuPy array goes, with a ``dask.distributed`` Client active — a
``LocalCluster``, ``dask_jobqueue.SLURMCluster`` or ``dask_cuda.LocalCUDACluster``::

    from dask.distributed import Client
    client = Client(cluster)                     # the only new line
    X = da.from_array(X, chunks=(100_000, -1))   # or generated / read on the workers
    lm = kr.select_landmarks(X, m=1000, method="kmeans++")
    model = kr.NystromModel(kr.Nystrom(kernel, lm), h=64)
    F = model.embed(X)                           # a Dask array, computed on the workers
    audit = kr.audit(model, "barlow_twins", X)   # every pass of the CG solve runs there
    top = audit.top_influential(X_test)          # a TopK of Dask arrays

These calls accept Dask rows: :meth:`Kernel.matmul` / :meth:`Kernel.rmatmul` (kernel blocks),
:meth:`Nystrom.features` and ``NystromModel.embed`` (F = K_nm Ã + 1γᵀ),
:func:`krepes_lib.audit` (the full-data objective, its gradient and the GGN products of the
CG solve), ``Audit.embed`` / ``influence_scores`` / ``top_influential`` / ``confidence_drop``
(influence, top-K, k-NN confidence), :func:`krepes_lib.select_landmarks` (uniform, k-means++ in
input or kernel space, ridge leverage scores, given) and :func:`krepes_lib.median_sigma`; a
kernel may be a network's eNTK (``TorchNTK``), whose weights travel with it. Any other call
refuses a Dask array with an error naming these (:func:`krepes_lib.backend.asarray`). The
core modules reach these implementations through :data:`krepes_lib.backend.ROW_PASSES`
(filled below when this module is imported; ``import krepes_lib`` does), never by importing
this module: it sits above them.

**What is shipped**: the small shared state — the kernel (a network's weights included), the
landmarks, Ã and γ, the K_mm factors, the loss and its arrays — is scattered once per call and
broadcast to every worker (``Client.scatter(..., broadcast=True)``); every task refers to it.
Rows never leave the workers: only per-partition partial sums (m×h numbers), scores, top-K
lists, chosen landmark rows and scalar totals come back. Stateful passes (the audit's batch
problems with their kernel blocks, k-means++'s running minimum) live in one Dask actor per
partition, on the worker that holds its rows.

**Equal to one process**: every partition runs the single-process function on its rows; sums
over partitions are the only change (different rounding order, ~1e-16 relative). The audit's
batches are drawn per partition (:func:`krepes_lib.views.partition_view_batches`); the same
batches in one process are :func:`krepes_lib.views.partition_batches` (``tests/test_distributed.py``
compares both on a two-process ``LocalCluster``). Without an active Client the same code runs
in this process, partition after partition.

Dask is the optional extra ``dask``; nothing here imports it before a Dask array is passed.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import DASK_ACCEPTED as ACCEPTS
from .backend import ROW_PASSES, get_xp, host_rng, is_dask_array, to_host

__all__ = ["is_dask_array", "features", "kernel_matmul", "kernel_rmatmul", "audit_operator",
           "select_landmarks", "median_sigma", "influence_scores", "top_influential",
           "confidence_drop", "map_rows", "kernel_features", "worker_config", "DaskGGNOperator",
           "ACCEPTS"]


def worker_config() -> dict:
    """Dask configuration for workers that run these passes: set it before starting a cluster,
    ``dask.config.set(kr.distributed.worker_config())``.

    Two of Dask's defaults were measured to slow the library's passes inside a worker against
    a plain process (``benchmarks/bench_dask.py``, book *Running on a cluster*):
    ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker's environment (it switches off glibc's
    adaptive mmap threshold, so each batch's kernel block becomes a fresh, page-faulted mmap)
    and the statistical profiler (a stack sample of every thread every 10 ms). This returns
    Dask's worker environment without the first and the profiler off; nothing else changes.
    """
    dask = _require_dask()
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return {"distributed.nanny.pre-spawn-environ": env, "distributed.worker.profile.enabled": False}


def _require_dask():
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised where dask is absent
        raise ImportError("Dask rows need the optional extra 'dask': pip install "
                          "'krepes-companion[dask]' (dask and distributed).") from err
    return dask


def _rows_only(X, name="X"):
    """X as a 2-D Dask array chunked along rows only (one block of columns)."""
    _require_dask()
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) Dask array of rows; got shape {X.shape}.")
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first.")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X


def _meta_xp(X):
    """NumPy or CuPy: the namespace of X's chunks."""
    return get_xp(X._meta)


def _float_dtype(*arrays):
    """The working dtype the single-process metric picks for these inputs (float32 or float64)."""
    from .backend import resolve_dtype

    dt = np.result_type(*[a.dtype for a in arrays if hasattr(a, "dtype")])
    return resolve_dtype(dt if np.issubdtype(dt, np.floating) else None)


class _Pool:
    """Where partition tasks run: the active ``dask.distributed`` Client, or this process."""

    def __init__(self):
        self.client = None
        try:
            from distributed import default_client

            self.client = default_client()
        except (ImportError, ValueError):
            self.client = None

    def share(self, obj):
        """The shared state, sent once to every worker (a Future), or ``obj`` itself locally."""
        if self.client is None:
            return obj
        return self.client.scatter(obj, broadcast=True, hash=False)

    @staticmethod
    def parts(X):
        """[(part, start, stop, delayed block)] over the row chunks of X."""
        starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
        blocks = X.to_delayed().ravel()
        return [(i, int(starts[i]), int(starts[i + 1]), b) for i, b in enumerate(blocks)]

    def actors(self, cls, parts, shared, extra=None):
        """One ``cls(block, part, start, shared, extra[i])`` per partition, built where its rows are."""
        extra = [None] * len(parts) if extra is None else list(extra)
        if self.client is None:
            return [cls(b.compute(scheduler="sync"), i, s, shared, x)
                    for (i, s, _, b), x in zip(parts, extra)]
        blocks = self.client.compute([b for *_, b in parts])
        futs = [self.client.submit(cls, blk, i, s, shared, x, actor=True, pure=False)
                for blk, (i, s, _, _), x in zip(blocks, parts, extra)]
        actors = [f.result() for f in futs]
        self._keep = (blocks, futs)  # the actors live as long as these futures
        return actors

    def call(self, actors, method, *args):
        """``actor.method(*args)`` on every partition (concurrently on a cluster), in order."""
        if self.client is None:
            return [getattr(a, method)(*args) for a in actors]
        futs = [getattr(a, method)(*args) for a in actors]
        return [f.result() for f in futs]

    def compute(self, delayed_list):
        if self.client is None:
            import dask

            return list(dask.compute(*delayed_list, scheduler="sync"))
        return self.client.gather(self.client.compute(delayed_list))


# ---------------------------------------------------------------------------------------------
# row maps: features, kernel blocks, influence, eNTK features
# ---------------------------------------------------------------------------------------------
def map_rows(fn, X, shared, width: int, dtype, name: str = "krepes-rows"):
    """``fn(block, shared)`` on every row chunk of X (a Dask array of ``width`` columns).

    ``shared`` is scattered once (the kernel, landmarks, coefficients, a network's weights);
    ``fn`` returns an array (rows, width) in the chunk's namespace.
    """
    X = _rows_only(X)
    pool = _Pool()
    xp = _meta_xp(X)
    return X.map_blocks(fn, pool.share(shared), dtype=np.dtype(dtype), chunks=(X.chunks[0], (int(width),)),
                        meta=xp.empty((0, int(width)), dtype=np.dtype(dtype)), token=name)


def _kernel_features_block(block, kernel):
    return kernel.features(block)


def kernel_features(kernel, X):
    """φ(X) of a feature-map kernel (a network's eNTK: ``TorchNTK.features``) over the row chunks
    of a Dask X: a Dask array (n, width). The kernel — the network's weights — is sent once;
    every worker computes the features of its own rows (each row once)."""
    X = _rows_only(X)
    first = X[:1].compute()                                   # one row, here, for the shape
    width = int(kernel.feature_width(first) if hasattr(kernel, "feature_width")
                else kernel.features(first).shape[1])
    dt = np.result_type(X.dtype, np.float32) if getattr(kernel, "dtype", None) is None \
        else np.dtype(kernel.dtype)
    return map_rows(_kernel_features_block, X, kernel, width, dt, name="krepes-kernel-features")


def _features_block(block, shared):
    nys, A, g = shared
    return nys.features(block, A, g)


def features(nystrom, X, A_tilde, gamma=None):
    """F = K_Xm Ã + 1γᵀ, eq. (nys-features), over the row chunks of a Dask X (a Dask array)."""
    if A_tilde.ndim != 2 or A_tilde.shape[0] != nystrom.m:
        raise ValueError(f"A_tilde must have shape (m={nystrom.m}, h); got {A_tilde.shape}.")
    return map_rows(_features_block, X, (nystrom, A_tilde, gamma), A_tilde.shape[1], nystrom.dtype,
                    name="krepes-features")


def _matmul_block(block, shared):
    kernel, Y, A, mb, rows = shared
    return kernel.matmul(block, Y, A, memory_budget=mb, rows=rows)


def kernel_matmul(kernel, X, Y, A, memory_budget, rows=None):
    """K(X, Y) @ A over the row chunks of a Dask X: a Dask array (n, k) (or (n,) for a vector A)."""
    A2 = A[:, None] if A.ndim == 1 else A
    dt = np.result_type(X.dtype, A2.dtype)
    out = map_rows(_matmul_block, X, (kernel, Y, A2, memory_budget, rows), A2.shape[1], dt,
                   name="krepes-kernel-matmul")
    return out[:, 0] if A.ndim == 1 else out


def _rmatmul_block(block, G, shared):
    kernel, Y, mb, rows = shared
    return kernel.rmatmul(block, Y, G, memory_budget=mb, rows=rows)


def kernel_rmatmul(kernel, X, Y, G, memory_budget, rows=None):
    """K(X, Y)ᵀ @ G summed over the row chunks of a Dask X (G: Dask or in-memory rows of X)."""
    from dask import delayed

    X = _rows_only(X)
    vec = G.ndim == 1
    if is_dask_array(G):
        G = G.rechunk((X.chunks[0],) + ((G.shape[1],) if not vec else ()))
        gparts = G.to_delayed().ravel()
    else:
        cuts = np.cumsum((0,) + X.chunks[0])
        gparts = [G[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    if G.shape[0] != X.shape[0]:
        raise ValueError(f"G has {G.shape[0]} rows but X has {X.shape[0]}; they must match.")
    pool = _Pool()
    shared = pool.share((kernel, Y, memory_budget, rows))
    parts = [delayed(_rmatmul_block)(b, g, shared) for (*_, b), g in zip(pool.parts(X), gparts)]
    out = None
    for r in pool.compute(parts):  # in partition order
        out = r if out is None else out + r
    return out


def _influence_block(block, shared):
    from .interpret import influence_scores as _is

    kernel, L, A, v, options = shared
    nbytes = block.shape[0] * L.shape[0] * block.dtype.itemsize
    return _is(kernel, L, block, A, v=v, options=options, max_bytes=max(nbytes, 1))


def influence_scores(kernel, landmarks, X_t, A, v=None, options=None):
    """IS(x̃_l, x_t) (or the concept score with ``v``) per row chunk of a Dask X_t: (n_t, m) Dask."""
    L = getattr(landmarks, "points", landmarks)
    return map_rows(_influence_block, X_t, (kernel, L, A, v, options),
                    L.shape[0], _float_dtype(L, A, X_t), name="krepes-influence")


def _topk_block(block, shared):
    from .interpret import top_influential as _top

    kernel, L, A, K, v, options = shared
    t = _top(kernel, L, block, A, K=K, v=v, options=options)
    return tuple(t)


def top_influential(kernel, landmarks, X_t, A, K, v=None, options=None):
    """The K most influential landmarks of every row of a Dask X_t: a TopK of Dask arrays."""
    import dask.array as da
    from dask import delayed

    from .interpret import TopK

    X_t = _rows_only(X_t, "X_t")
    L = getattr(landmarks, "points", landmarks)
    pool = _Pool()
    shared = pool.share((kernel, L, A, int(K), v, options))
    xp = _meta_xp(X_t)
    dt = _float_dtype(L, A, X_t)
    fields = [[], [], []]
    for _, s, e, b in pool.parts(X_t):
        r = delayed(_topk_block, nout=3)(b, shared)
        fields[0].append(da.from_delayed(r[0], (e - s, int(K)), dtype=np.int64,
                                         meta=xp.empty((0, 0), np.int64)))
        fields[1].append(da.from_delayed(r[1], (e - s, int(K)), dtype=dt, meta=xp.empty((0, 0), dt)))
        if v is not None:
            fields[2].append(da.from_delayed(r[2], (e - s, int(K)), dtype=dt, meta=xp.empty((0, 0), dt)))
    return TopK(da.concatenate(fields[0]), da.concatenate(fields[1]),
                da.concatenate(fields[2]) if v is not None else None)


def _drop_block(block, yt, start, shared):
    from .interpret import confidence_drop as _cd

    args, kw = shared
    out = _cd(*args[:2], block, *args[2:], y_t=yt, _row_offset=start, **kw)
    return out.confidence * block.shape[0], out.per_point_top, out.per_point_random


def confidence_drop(kernel, landmarks, X_t, A, y_landmarks, y_t=None, **kw):
    """k-NN confidence drop, eq. (int-drop), over the row chunks of a Dask X_t.

    Every chunk runs :func:`krepes_lib.interpret.confidence_drop` on its rows (the random
    landmark subsets are drawn by global row, as in one process); the per-point drops come
    back (n_t numbers each) and are averaged here.
    """
    from dask import delayed

    from .interpret import ConfidenceDrop

    X_t = _rows_only(X_t, "X_t")
    pool = _Pool()
    L = getattr(landmarks, "points", landmarks)
    shared = pool.share(((kernel, L, A, y_landmarks), kw))
    y_host = None if y_t is None else np.asarray(to_host(y_t.compute() if is_dask_array(y_t) else y_t))
    jobs = [delayed(_drop_block)(b, None if y_host is None else y_host[s:e], s, shared)
            for _, s, e, b in pool.parts(X_t)]
    res = pool.compute(jobs)
    conf = sum(r[0] for r in res) / X_t.shape[0]
    top = np.concatenate([r[1] for r in res])
    rnd = np.concatenate([r[2] for r in res])
    t, r = float(top.mean()), float(rnd.mean())
    ratio = t / r if (t > 0 and r > 0) else math.nan
    return ConfidenceDrop(t, r, ratio, float(conf), top, rnd)


# ---------------------------------------------------------------------------------------------
# the audit: full-data objective, gradient and GGN products
# ---------------------------------------------------------------------------------------------
class _AuditPart:
    """One partition's batch problems (kernel blocks kept when they fit ``memory_budget``),
    held by a Dask actor on the worker that holds the rows."""

    def __init__(self, block, part, start, shared, n_batches):
        from .backend import asarray

        model, objective, state, memory_budget, augment, seed, B = shared
        self.model, self.objective, self.state = model, objective, state
        self.memory_budget, self.augment, self.seed, self.B = memory_budget, augment, seed, B
        self.part, self.n_batches = int(part), int(n_batches)
        self.block = asarray(block, xp=model.xp, dtype=model.dtype, name="X")
        item = np.dtype(model.dtype).itemsize
        per_batch = objective.views * min(B, self.block.shape[0]) * (
            self.block.shape[1] + model.m + 2 * model.h) * item
        self.keep = self.n_batches * per_batch <= memory_budget
        self.problems = list(self._problems()) if self.keep else None

    def _problems(self):
        from .problem import BatchProblem
        from .views import partition_view_batches

        dt = self.model.dtype
        for b in partition_view_batches(self.block, self.part, self.n_batches, self.B,
                                        views=self.objective.views, augment=self.augment, seed=self.seed):
            yield BatchProblem(self.model, self.objective, self.state,
                               tuple(v.astype(dt, copy=False) for v in b), self.memory_budget)

    def _each(self):
        return iter(self.problems) if self.keep else self._problems()

    @staticmethod
    def _acc(total, b, u):
        if total is None:
            return {k: b * v for k, v in u.items()}
        return {k: total[k] + b * u[k] for k in u}

    def gradient(self, keys):
        """(rows, Σ_b B_b L_b, {k: Σ_b B_b ∇_k L_b}) over this partition's batches."""
        rows, val, tot = 0, 0.0, None
        for p in self._each():
            v, g = p.value_and_grad()
            b = p.batch.B
            rows, val = rows + b, val + b * float(v)
            tot = self._acc(tot, b, {k: g[k] for k in keys})
        return rows, val, tot

    def matvec(self, V, keys):
        """(rows, {k: Σ_b B_b (J_bᵀ Q_b J_b V)_k})."""
        rows, tot = 0, None
        for p in self._each():
            b = p.batch.B
            rows += b
            tot = self._acc(tot, b, p.ggn_matvec(V, keys))
        return rows, tot

    def value_at(self, V, t):
        """(rows, Σ_b B_b L_b(θ + tV))."""
        rows, val = 0, 0.0
        for p in self._each():
            b = p.batch.B
            rows, val = rows + b, val + b * float(p.value_at(V, t))
        return rows, val

    def nbytes(self):
        """Bytes this partition keeps (rows, and kernel blocks when kept)."""
        n = self.block.nbytes
        if self.keep:
            n += sum(int(p.batch.K.nbytes) + int(p.F.nbytes) + sum(int(v.nbytes) for v in p.batch.views)
                     for p in self.problems)
        return n


class _ModelOnly:
    """What a preconditioner may read of "the first batch" when the batches live on a cluster."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        raise AttributeError(f"the audit's batches are on the cluster (Dask rows): a preconditioner "
                             f"that reads the batch ({name!r}) cannot run here; use FalkonPrecond or none.")


def _mean_dicts(parts):
    rows = sum(p[0] for p in parts)
    tot = None
    for p in parts:
        d = p[-1]
        if d is None:
            continue
        tot = dict(d) if tot is None else {k: tot[k] + d[k] for k in d}
    return rows, tot


def _GGN():
    from .curvature import GGNOperator

    return GGNOperator


class DaskGGNOperator(_GGN()):
    """H_GN + δI of the mean objective over batches drawn per partition of Dask rows, eq. (ggn-lift).

    The :class:`~krepes_lib.curvature.GGNOperator` interface (``gradient``, ``matvec``,
    ``value_at``, flattening for CG): every call is one pass over the partitions' actors,
    which return row-weighted sums; the mean is taken here. ``n_matvec`` counts the products.
    """

    def __init__(self, model, state, keys, damping, pool, actors, parts_rows):
        self.model, self.xp = model, model.xp
        self._p0_state = state
        self._source, self.problems = None, None
        self.keys = tuple(keys)
        unknown = sorted(set(self.keys) - set(model.params) - set(state.params))
        if unknown:
            raise ValueError(f"keys {unknown} are not trainable arrays here.")
        if not damping >= 0:
            raise ValueError(f"damping={damping} must be >= 0.")
        self.damping = float(damping)
        self._shapes = {k: self._array(k).shape for k in self.keys}
        self.first = _ModelOnly(model)
        self.n_matvec = 0
        self.pool, self.actors, self.parts_rows = pool, actors, parts_rows

    @property
    def streamed(self) -> bool:
        return True

    def gradient(self):
        res = self.pool.call(self.actors, "gradient", self.keys)
        rows, tot = _mean_dicts(res)
        val = sum(r[1] for r in res) / rows
        return val, {k: v / rows for k, v in tot.items()}

    def value_at(self, V: dict, t: float) -> float:
        res = self.pool.call(self.actors, "value_at", V, float(t))
        return float(sum(r[1] for r in res) / sum(r[0] for r in res))

    def matvec(self, V: dict) -> dict:
        rows, tot = _mean_dicts(self.pool.call(self.actors, "matvec", V, self.keys))
        out = {k: v / rows for k, v in tot.items()}
        if self.damping:
            for k in self.keys:
                out[k] = out[k] + self.damping * V[k]
        self.n_matvec += 1
        return out

    def worker_bytes(self) -> list:
        """Bytes kept by each partition's actor (rows and, when kept, kernel blocks)."""
        return self.pool.call(self.actors, "nbytes")


def audit_operator(model, objective, state, X, *, augment="auto", seed: int = 0, n_batches: int = 4,
                   batch_size: int = 256, options=None) -> DaskGGNOperator:
    """The audit's operator over Dask rows: ``n_batches`` batches split over the partitions in
    proportion to their rows (:func:`krepes_lib.views.partition_batch_counts`), each drawn from
    its partition's rows on the worker (:func:`krepes_lib.views.partition_view_batches`).

    The model, the loss and its arrays are scattered once; each partition's actor keeps its
    batch problems (kernel blocks included) when ``n_batches_part`` batches fit
    ``options.memory_budget``, else regenerates them at every pass (streamed, as in one process).
    """
    from .options import resolve_options
    from .views import partition_batch_counts

    opts = resolve_options(options)
    X = _rows_only(X)
    if X.shape[0] < 2:
        raise ValueError(f"X must have n >= 2 rows; got shape {X.shape}.")
    if X.shape[1] != model.nystrom.landmarks.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the landmarks have "
                         f"{model.nystrom.landmarks.shape[1]}.")
    pool = _Pool()
    parts = pool.parts(X)
    counts = partition_batch_counts(n_batches, [e - s for _, s, e, _ in parts])
    keep = [(p, k) for p, k in zip(parts, counts) if k > 0]
    B = min(int(batch_size), int(X.shape[0]))
    shared = pool.share((model, objective, state, opts.memory_budget, augment, int(seed), B))
    actors = pool.actors(_AuditPart, [p for p, _ in keep], shared, [k for _, k in keep])
    return DaskGGNOperator(model, state, (model._main, "gamma"), opts.damping, pool, actors,
                           [p[2] - p[1] for p, _ in keep])


# ---------------------------------------------------------------------------------------------
# landmark selection and the bandwidth
# ---------------------------------------------------------------------------------------------
def _gather_rows(X, idx):
    """Rows ``idx`` (any order, host integers) of a Dask X, in memory (NumPy or CuPy)."""
    idx = np.asarray(idx, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    rows = X[np.sort(idx)].compute()
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    xp = get_xp(rows)
    return rows[xp.asarray(inv)]


class _KMeansPart:
    """k-means++'s running minimum D_min over one partition (a Dask actor), eq. (lm-kmeanspp)."""

    def __init__(self, block, part, start, shared, _unused=None):
        from .backend import asarray
        from .kernels import RBF, Laplacian

        kernel, mu = shared
        self.kernel, self.start = kernel, int(start)
        X = asarray(block, xp=get_xp(block), dtype=block.dtype, name="X", check_finite=False)
        xp = self.xp = get_xp(X)
        self.stationary = kernel is None or isinstance(kernel, (RBF, Laplacian))
        self.X = X
        if self.stationary:
            self.Xc = X - xp.asarray(mu)                 # centred on the global mean, eq. (k-sqdist-centred)
            self.sq = xp.einsum("ij,ij->i", self.Xc, self.Xc)
        else:
            self.kdiag = kernel.diag(X)
        self.d_min = None

    def _dist(self, c, cc):
        """Distances of the partition's rows to the centre (c: the centre as this side sees it)."""
        xp, kernel = self.xp, self.kernel
        if self.kernel is None:
            return xp.maximum(self.sq - 2.0 * (self.Xc @ c) + cc, 0.0)
        from .kernels import RBF

        if self.stationary:
            D2 = xp.maximum(self.sq - 2.0 * (self.Xc @ c) + cc, 0.0)
            if isinstance(kernel, RBF):
                kc = xp.exp(D2 * (-1.0 / (2.0 * kernel.sigma ** 2)))
            else:
                kc = xp.exp(xp.sqrt(D2) * (-1.0 / kernel.sigma))
            return xp.maximum(2.0 - 2.0 * kc, 0.0)
        kc = kernel.matmul(self.X, c[None, :], xp.ones((1, 1), dtype=self.X.dtype))[:, 0]
        return xp.maximum(self.kdiag - 2.0 * kc + cc, 0.0)

    def row(self, j):
        """The centre data of global row j: (centred row, its ‖·‖² or k(c, c), raw row)."""
        i = int(j) - self.start
        if self.stationary:
            return self.Xc[i].copy(), self.sq[i].copy(), self.X[i].copy()
        return self.X[i].copy(), self.kdiag[i].copy(), self.X[i].copy()

    def update(self, centre, j):
        """D_min ← min(D_min, D(·, c)), D_min[j] = 0 if row j is here; returns Σ D_min (float64,
        the last entry of the cumulative sum, as one process computes it)."""
        c, cc = centre
        d = self._dist(c, cc)
        if self.d_min is None:
            self.d_min = d
        else:
            self.xp.minimum(self.d_min, d, out=self.d_min)
        i = int(j) - self.start
        if 0 <= i < self.d_min.shape[0]:
            self.d_min[i] = 0.0
        self._cum = self.xp.cumsum(self.d_min, dtype=self.xp.float64)
        return float(self._cum[-1]) if self._cum.shape[0] else 0.0

    def pick(self, u):
        """The first global row whose cumulative D_min exceeds u (within this partition)."""
        n = self._cum.shape[0]
        return self.start + min(int(self.xp.searchsorted(self._cum, u, side="right")), n - 1)


def _kmeans_pp(X, m, seed, kernel, pool):
    """k-means++ over Dask rows: one actor per partition keeps D_min; per landmark one round to
    update every partition and one to pick the row (eq. (lm-kmeanspp), as in one process)."""
    from .kernels import RBF, Laplacian

    n = X.shape[0]
    rng = host_rng(seed)
    stationary = kernel is None or isinstance(kernel, (RBF, Laplacian))
    mu = to_host(X.mean(axis=0).compute()).astype(X.dtype) if stationary else None
    parts = pool.parts(X)
    shared = pool.share((kernel, mu))
    actors = pool.actors(_KMeansPart, parts, shared)
    starts = np.array([s for _, s, _, _ in parts])

    def owner(j):
        return int(np.searchsorted(starts, j, side="right") - 1)

    def centre(j):
        c, cc, _ = pool.call([actors[owner(j)]], "row", j)[0]
        return c, cc

    chosen = [int(rng.integers(n))]
    totals = np.array(pool.call(actors, "update", centre(chosen[0]), chosen[0]), dtype=np.float64)
    for _ in range(1, m):
        offsets = np.cumsum(totals)
        total = float(offsets[-1])
        if not total > 0:
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(rest, size=m - len(chosen), replace=False).tolist())
            break
        u = rng.random() * total
        p = min(int(np.searchsorted(offsets, u, side="right")), len(parts) - 1)
        while totals[p] <= 0 and p > 0:   # an empty tail partition: the last row before it
            p -= 1
        base = float(offsets[p - 1]) if p > 0 else 0.0
        j = pool.call([actors[p]], "pick", u - base)[0]
        chosen.append(j)
        totals = np.array(pool.call(actors, "update", centre(j), j), dtype=np.float64)
    return np.asarray(chosen, dtype=np.int64)


def _leverage_block(block, shared):
    kernel, XS, L, c = shared
    from .backend import scipy_linalg

    xp = get_xp(block)
    Xb = block.astype(xp.float64)
    K_bS = kernel(Xb, XS, dtype="float64")
    V = scipy_linalg(xp).solve_triangular(L, K_bS.T, lower=True)
    return (kernel.diag(Xb, dtype="float64") - xp.einsum("ij,ij->j", V, V)) / c


def _leverage_scores(X, kernel, lam, sketch_size, rng, pool):
    """Ridge leverage scores, eq. (lm-rls-nys), streamed over the partitions (host float64 (n,))."""
    n = X.shape[0]
    s = n if sketch_size is None else min(int(sketch_size), n)
    S_idx = np.sort(host_rng(rng).choice(n, size=s, replace=False))
    XS = _gather_rows(X, S_idx)
    xp = get_xp(XS)
    XS = XS.astype(xp.float64)
    c = n * lam
    K_SS = kernel(XS, XS, dtype="float64")
    L = xp.linalg.cholesky(K_SS + c * xp.eye(s, dtype=xp.float64))
    X = _rows_only(X)
    sc = X.map_blocks(_leverage_block, pool.share((kernel, XS, L, c)), drop_axis=1,
                      dtype=np.float64, meta=_meta_xp(X).empty((0,), np.float64),
                      token="krepes-leverage")
    return np.clip(np.asarray(to_host(sc.compute())), 0.0, None)


def select_landmarks(X, m=None, method="uniform", kernel=None, seed=0, indices=None, **options):
    """:func:`krepes_lib.select_landmarks` over Dask rows: the same strategies and draws, the
    passes over the rows on the workers; the m chosen rows come back (``Landmarks.points`` in
    the chunks' namespace)."""
    from .kernels import Kernel, make_kernel
    from .landmarks import METHODS, Landmarks, _check_m

    X = _rows_only(X)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float32)
    n = X.shape[0]
    pool = _Pool()
    if kernel is not None and not isinstance(kernel, Kernel):
        kernel = make_kernel(kernel)
    if method == "given":
        if indices is None:
            raise ValueError("method='given' needs indices=[...] (rows of X to use as landmarks).")
        idx = np.asarray(to_host(indices), dtype=np.int64).ravel()
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n or np.unique(idx).size != idx.size:
            raise ValueError(f"indices must be distinct row numbers in [0, {n}).")
        return Landmarks(points=_gather_rows(X, idx), indices=idx, method="given")
    if m is None:
        raise ValueError(f"method={method!r} needs m (the number of landmarks).")
    m = _check_m(m, n)
    if method == "uniform":
        idx = np.sort(host_rng(seed).choice(n, size=int(m), replace=False))
    elif method in ("kmeans++", "kmeanspp"):
        kspace = options.pop("kernel_space", False)
        options.pop("memory_budget", None)
        idx = _kmeans_pp(X, m, seed, kernel if kspace else None, pool)
        method = "kmeans++"
    elif method == "leverage":
        if kernel is None:
            raise ValueError("method='leverage' needs kernel=... (ridge leverage scores depend on it).")
        rng = host_rng(seed)
        s = options.get("sketch_size")
        s = min(n, max(4 * int(m), 500)) if s is None else s
        ell = _leverage_scores(X, kernel, options.get("lam", 1e-3), s, rng, pool)
        p = ell + 1e-12 * ell.max() if ell.max() > 0 else np.ones(n)
        idx = np.sort(rng.choice(n, size=int(m), replace=False, p=p / p.sum()))
    else:
        raise ValueError(f"method={method!r} is unknown; choose one of {METHODS}.")
    return Landmarks(points=_gather_rows(X, idx), indices=np.asarray(idx, dtype=np.int64), method=method)


def median_sigma(X, n_pairs: int = 2000, seed: int = 0) -> float:
    """:func:`krepes_lib.median_sigma` over Dask rows: one pass checks finiteness, only the
    sampled rows come back (the same pairs as in one process)."""
    import dask.array as da

    X = _rows_only(X)
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"median_sigma: X must be a 2-D (n, d) array with n >= 2 rows and d >= 1 "
                         f"columns; got shape {X.shape}. Pass the (non-empty) training inputs.")
    if int(n_pairs) < 1:
        raise ValueError(f"median_sigma: n_pairs={n_pairs} must be a positive integer.")
    n_nan, n_bad = (int(v) for v in da.compute(da.isnan(X).sum(), (~da.isfinite(X)).sum()))
    if n_bad:
        raise ValueError(f"median_sigma: X contains {n_nan} NaN and {n_bad - n_nan} infinite value(s); "
                         "clean or impute them (e.g. numpy.nan_to_num) before choosing a bandwidth.")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, X.shape[0], n_pairs)
    j = rng.integers(0, X.shape[0], n_pairs)
    Xi = np.asarray(to_host(_gather_rows(X, i)), dtype=np.float64)
    Xj = np.asarray(to_host(_gather_rows(X, j)), dtype=np.float64)
    dist = np.linalg.norm(Xi - Xj, axis=1)
    dist = dist[dist > 0]
    if dist.size == 0:
        raise ValueError("median_sigma: all sampled pairs of X are identical; X has no spread.")
    return float(np.median(dist))


ROW_PASSES.update(features=features, kernel_matmul=kernel_matmul, kernel_rmatmul=kernel_rmatmul,
                  audit_operator=audit_operator, select_landmarks=select_landmarks,
                  median_sigma=median_sigma, influence_scores=influence_scores,
                  top_influential=top_influential, confidence_drop=confidence_drop,
                  kernel_features=kernel_features)
