"""The paper's own setting: SSL networks trained here, audited (v3) and trained on (v1) through
their empirical NTK — the pipeline pieces notebooks 14–16 call.

Book: *The empirical NTK of a network* (``book/entk.md``, eqs. (entk-proj), (entk-sketch));
*Theory* eq. (audit-step); *Interpretability* eqs. (int-is), (int-drop), (lm-kappa);
spec §5–§7.

One configuration is (dataset, loss, seed). The **seed** seeds everything random of it: the
network's initialisation and batches (:class:`krepes_lib.neural.ssl.SSLConfig` ``seed``), the
landmarks (k-means++ in the kernel's own space, eq. (lm-kmeanspp) with the kernel distance),
the audit's view batches, the labelled subset of the probes and the random landmark sets of
the confidence drop — so the seed spread of every number includes the network's. The rows
(:func:`network_split`'s stratified subset) are fixed across seeds.

* :func:`load_network` — the trained network of a profile (:mod:`krepes_lib.neural.ssl`,
  cached on disk and shared by every notebook), and :func:`network_split`, its rows (the
  network's own training / held-out split) with the augmenter it was trained with;
* :func:`entk_kernel` — :class:`~krepes_lib.neural.TorchNTK` of the network's backbone (the
  representation that is probed), contraction "sum" (spec §5), exact or sketched;
  :func:`unit_entk` — the same divided by its mean diagonal on the training rows (ours: the
  damping δ then means for the eNTK what it means for an RBF, whose diagonal is 1);
* :class:`TimedKernel` — any kernel, with the seconds spent computing its blocks counted (the
  time breakdown kernel vs optimisation that the v1 reviewers asked for);
* :func:`run_entk_audit` — eNTK → m landmarks → Nyström + PC init → ``kr.audit`` (one GGN-Newton
  step by CG), returned as an :class:`krepes_lib.studies.audits.AuditRun`, so every metric
  collector of :mod:`krepes_lib.studies.audits` works on it unchanged;
* :func:`probe_pair` — the network's linear probe and KREPES' probe on the **same labelled
  subset**, Δ = KREPES − NN in accuracy points and Kendall-τ between their per-sample
  predicted-class probabilities (:func:`krepes_lib.interpret.kendall_tau`);
* :func:`v3_row` — one row of the v3 main table (probes, Δ, τ, confidence drop top vs random,
  times), for the eNTK or for the RBF comparison column;
* :func:`v1_row` — KREPES *trained* (``kr.fit``, several epochs) on the eNTK or the RBF kernel,
  next to the network, with parameter counts and the time breakdown;
* :func:`cell_text` — "mean [95 % bootstrap CI]" of a table cell.

The verdicts of notebooks 14–16 are the claims engine's (:mod:`krepes_lib.claims`: TOST for Δ,
a threshold rule for τ, paired tests for the drop; Holm across the cells of each family).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import stats
from .audits import AuditRun, audit_metrics, drop_m, run_audit
from ..backend import to_device, to_host
from ..defaults import DROP_KNN_K, DROP_N_REMOVE
from ..evaluate import linear_probe
from ..interpret import kendall_tau
from ..kernels import Kernel
from ..options import Options
from ..timing import Timer

__all__ = ["TimedKernel", "NetworkSplit", "load_network", "network_log", "network_split", "entk_kernel",
           "unit_entk", "unit_diagonal_scale", "EntkRun", "run_entk_audit", "run_rbf_audit", "probe_pair",
           "v3_row", "v1_row", "cell_text", "paper_value", "PAPER_NAMES",
           "NOT_OFFLINE", "LOSS_COLUMNS"]

#: Our dataset names → the paper's row names (spec §7); MNIST and Bank have no v3 row there.
PAPER_NAMES = {"adult": "Adult", "higgs": "Higgs", "covtype": "CoverType", "cifar10": "CIFAR-10"}
#: The paper's v3 rows that cannot be run offline, and why.
NOT_OFFLINE = {"ImageNet": "ImageNet-1K (1.2M images) is not among the offline data sets",
               "1M rows": "the paper's '1M' Adult / HIGGS / CoverType are not available: Adult has "
                          "48,842 rows, CoverType 581,012; HIGGS offline is a subset of the 11M rows"}


#: The paper's column order of the v3 table (spec §7).
LOSS_COLUMNS = ("barlow_twins", "simclr", "vicreg")


def paper_value(key: str, dataset: str, loss: str | None = None):
    """The paper's v3 number for a cell (:data:`krepes_lib.results.PAPER`): ``"v3_delta"`` and
    ``"v3_kendall_tau"`` per (dataset, loss), ``"v3_confidence_drop"`` per dataset (a (random,
    KREPES) pair); None where the paper has no such cell (MNIST, Bank, a loss outside its
    three columns)."""
    from .results import PAPER

    row = PAPER[key].get(PAPER_NAMES.get(dataset, ""))
    if row is None or key == "v3_confidence_drop":
        return row
    return row[LOSS_COLUMNS.index(loss)] if loss in LOSS_COLUMNS else None


# ---------------------------------------------------------------------------------------
# kernel time
# ---------------------------------------------------------------------------------------
class TimedKernel(Kernel):
    """``scale`` · ``base`` with the wall-clock seconds of every block / diagonal it computes
    counted by the one timer (:class:`krepes_lib.timing.Timer`, stages "block" and "prepare").

    Blocks are returned in the dtype of X (a float32 eNTK inside a float64 model is cast), so
    the model's linear algebra keeps its precision while the kernel computes in its own.
    ``seconds`` accumulates over calls; :meth:`reset` sets it to 0. ``scale`` > 0 multiplies
    the kernel (:func:`unit_diagonal_scale`).
    """

    def __init__(self, base: Kernel, scale: float = 1.0):
        if not isinstance(base, Kernel):
            raise TypeError(f"TimedKernel(base=...) needs a krepes_lib Kernel, got {type(base).__name__}.")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale={scale} must be a finite positive number.")
        self.base = base
        self.scale = float(scale)
        self.timer = Timer()
        self.name = f"timed_{getattr(base, 'name', 'kernel')}"

    def __repr__(self):
        return f"TimedKernel({self.base!r})"

    @property
    def seconds(self) -> float:
        """Seconds spent in the base kernel's blocks, diagonals and preparations."""
        return self.timer.total

    @property
    def calls(self) -> int:
        """Blocks and diagonals computed."""
        return int(self.timer.calls.get("block", 0))

    def reset(self):
        self.timer.reset()

    def _timed(self, fn, X, *args):
        with self.timer("block"):
            out = fn(*args)
            if hasattr(out, "dtype") and out.dtype != X.dtype:
                out = out.astype(X.dtype)
            if self.scale != 1.0:
                out = out * out.dtype.type(self.scale)
        return out

    def _block(self, xp, X, Y):
        return self._timed(self.base._block, X, xp, X, Y)

    def _diag(self, xp, X):
        return self._timed(self.base._diag, X, xp, X)

    def _prepare(self, xp, X, Y):
        with self.timer("prepare"):
            return self.base._prepare(xp, X, Y)

    def _block_prepared(self, xp, X, prep, out=None):
        return self._timed(self.base._block_prepared, X, xp, X, prep)


def unit_diagonal_scale(kernel: Kernel, X, rows: int = 256) -> float:
    """1 / mean k(x, x) over the first ``rows`` rows of X: the factor that gives the kernel a
    mean diagonal of 1, as an RBF has (ours). An eNTK's scale grows with the network's width
    and outputs; the audit's damping δ in H_GN + δI is relative to K² (eq. (audit-step)), so
    without this the same δ would be a much weaker damping for an eNTK than for the RBF.
    Scaling a kernel by c > 0 leaves the landmarks (k-means++ in kernel space), the PC
    representation's span and every ranking by IS unchanged; it only sets what δ means."""
    Xs = X[:int(rows)]
    d = np.asarray(to_host(kernel.diag(Xs, dtype=Xs.dtype if Xs.dtype == np.float64 else None)), dtype=np.float64)
    mu = float(d.mean())
    if not (np.isfinite(mu) and mu > 0):
        raise ValueError(f"the kernel's mean diagonal on X is {mu}; it cannot be normalised.")
    return 1.0 / mu


# ---------------------------------------------------------------------------------------
# networks and their rows
# ---------------------------------------------------------------------------------------
@dataclass
class NetworkSplit:
    """The rows a network was trained on and is probed with, shaped like a ``kr.data`` split for
    :mod:`krepes_lib.studies.audits` (``.X .y .X_test .y_test .train .n_classes .chance``).

    ``train`` is the augmenter the network was trained with (``make_augmenter`` of the image
    shape or "table", with the configuration's overrides): the audit's views are the network's.
    """

    dataset: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    train: object
    image_shape: tuple | None
    n_classes: int = 0
    chance: float = 0.0

    def __post_init__(self):
        self.n_classes = int(max(self.y.max(), self.y_test.max()) + 1)
        self.chance = float(np.bincount(self.y_test, minlength=self.n_classes).max() / self.y_test.size)

    def __iter__(self):
        return iter((self.X, self.y, self.X_test, self.y_test))


def load_network(dataset: str, loss: str, seed: int = 0, profile: str = "quick", force: bool = False,
                 progress: bool = True, **overrides):
    """The trained network of (dataset, loss, seed) at ``profile`` (:data:`krepes_lib.neural.ssl.
    PROFILES`; ``overrides`` replace fields of the :class:`~krepes_lib.neural.ssl.SSLConfig`).

    Loaded from the shared on-disk cache when present, else trained and stored
    (``TrainedNetwork.from_cache`` / ``.seconds`` say which and how long).
    """
    from ..neural import ssl

    cfg = ssl.SSLConfig.for_profile(dataset, loss, profile, seed=int(seed), **overrides)
    net = ssl.load_or_train(cfg, force=force, progress=progress)
    _LOG.append({"dataset": dataset, "loss": loss, "seed": int(seed), "profile": profile,
                 "from_cache": bool(net.from_cache), "train_s": 0.0 if net.from_cache else float(net.seconds)})
    return net


_LOG: list = []


def network_log(clear: bool = False) -> dict:
    """What :func:`load_network` did in this process: networks loaded from the cache, trained
    now and the seconds of training (the cold-cache cost); ``clear`` empties the log."""
    first = {}
    for r in _LOG:  # the first load of a configuration says whether this process trained it
        first.setdefault((r["dataset"], r["loss"], r["seed"], r["profile"]), r)
    rows = first.values()
    out = {"networks": len(rows), "trained": sum(not r["from_cache"] for r in rows),
           "train_s": float(sum(r["train_s"] for r in rows))}
    if clear:
        _LOG.clear()
    return out


def network_split(trained, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> NetworkSplit:
    """The network's own rows as a :class:`NetworkSplit` (no second load of the data set).

    ``n_train`` / ``n_test``: use a stratified random subset of about that many rows of the
    network's training / held-out split (round(n/N · N_c) rows of each class c, drawn with
    ``seed`` by :func:`krepes_lib.evaluate.labelled_subset`, kept in the split's order; None:
    all rows) — the splits are in the files' row order, which can follow the label or time
    (Bank), so a prefix would not do.
    """
    from ..augment import make_augmenter
    from ..evaluate import labelled_subset

    cfg = trained.config
    aug = make_augmenter(tuple(trained.image_shape) if trained.image_shape else "table", **cfg.augment)
    y, yt = np.asarray(trained.y), np.asarray(trained.y_test)

    def rows(labels, n, stream):
        if n is None or int(n) >= labels.size:
            return np.arange(labels.size)
        if int(n) < 2:
            raise ValueError(f"network_split: a subset of {n} rows is too small; pass None for all rows.")
        return labelled_subset(labels, int(n) / labels.size, seed=[int(seed), stream])

    a, b = rows(y, n_train, 1), rows(yt, n_test, 2)
    return NetworkSplit(cfg.dataset, trained.X[a], y[a], trained.X_test[b], yt[b], aug, trained.image_shape)


def entk_kernel(trained, implementation: str = "sketch", sketch_size: int = 8, seed: int = 0,
                contraction="sum", dtype: str = "float32"):
    """:class:`~krepes_lib.neural.TorchNTK` of the network's backbone, eq. (entk-proj) /
    (entk-sketch): k(x, x') = Σ_o ⟨∇_θ g_o(x), ∇_θ g_o(x')⟩ over the representation's outputs
    (``contraction="sum"``, spec §5), BatchNorm with running statistics (eval mode). The sketch
    estimates it without bias from ``sketch_size`` random directions (seeded by ``seed``)."""
    from ..neural import TorchNTK

    module = getattr(trained, "backbone", trained)
    return TorchNTK(module, contraction=contraction, implementation=implementation,
                    sketch_size=int(sketch_size), seed=int(seed), dtype=dtype)


def unit_entk(trained, X, implementation: str = "sketch", sketch_size: int = 8, seed: int = 0) -> TimedKernel:
    """:func:`entk_kernel` scaled to mean diagonal 1 on X (:func:`unit_diagonal_scale`) and
    timed: the eNTK as every v3 notebook uses it (also as ``kernel=`` of
    :func:`krepes_lib.studies.audits.entropy_sweep` / ``run_audit``)."""
    k = TimedKernel(entk_kernel(trained, implementation, sketch_size, seed))
    k.scale = unit_diagonal_scale(k, X)
    return k


# ---------------------------------------------------------------------------------------
# the v3 audit on the eNTK
# ---------------------------------------------------------------------------------------
@dataclass
class EntkRun(AuditRun):
    """An :class:`~krepes_lib.studies.audits.AuditRun` with the kernel's name, its parameter
    count (the network's, for an eNTK) and the seconds spent in kernel blocks."""

    kernel_name: str = ""
    kernel_seconds: float = 0.0
    n_network_parameters: int = 0
    extra: dict = field(default_factory=dict)

    def info(self) -> dict:
        return {**super().info(), "kernel": self.kernel_name, "kernel_s": self.kernel_seconds,
                "optim_s": max(self.seconds - self.kernel_seconds, 0.0),
                "n_network_parameters": self.n_network_parameters, **self.extra}


def run_entk_audit(trained, split, loss: str, seed: int = 0, *, kernel=None, h: int = 16, m="sqrt",
                   min_m: int = 0, landmarks: str = "kmeans++", damping: float | None = None,
                   n_batches: int = 2, batch_size: int = 128, cg_max_iter: int | None = None,
                   sketch_size: int = 8, implementation: str = "sketch", dtype: str = "float64",
                   normalise: bool = True, loss_hyper: dict | None = None) -> EntkRun:
    """eNTK → landmarks → Nyström + PC init → one GGN-Newton step (eq. (audit-step)): the
    network's unit-diagonal eNTK (timed) handed to :func:`krepes_lib.studies.audits.run_audit`,
    the one place a study audits, with k-means++ in the kernel's own space.

    Parameters
    ----------
    trained : krepes_lib.neural.ssl.TrainedNetwork
    split : NetworkSplit
        Its rows (``network_split(trained)``): landmarks and views come from ``split.X``.
    loss : str
        The SSL loss of the audit step (the network's own loss in the v3 table).
    seed : int
        Landmarks, view batches (and the sketch directions).
    kernel : Kernel, optional
        Default :func:`entk_kernel` (sketch of ``sketch_size`` directions, or exact).
    h, damping, n_batches, batch_size, cg_max_iter, dtype
        As in :func:`krepes_lib.studies.audits.run_audit` (coordinates "raw": δI on vec(Ã)).
    m : int or "sqrt"
        Landmarks (⌈√n⌉ by default), raised to ``min_m`` (e.g. :func:`drop_m`'s 120 for the
        confidence drop at k = 50).
    landmarks : "kmeans++" (in the kernel's space), "leverage" or "uniform"
    normalise : bool
        Divide the kernel by its mean diagonal on the training rows (:func:`unit_diagonal_scale`,
        ours) so the damping δ means what it means for the RBF.
    """
    T = Timer()
    with T("run"):
        base = kernel if kernel is not None else entk_kernel(trained, implementation, sketch_size, seed)
        X = to_device(split.X, dtype=dtype)  # the default device: the eNTK follows X (CuPy → CUDA tensors)
        k = base if isinstance(base, TimedKernel) else TimedKernel(base)
        k.reset()
        if normalise:
            k.scale = 1.0
            k.scale = unit_diagonal_scale(k, X)
        r = run_audit(split, loss, seed, dataset=trained.config.dataset, h=h, m=m, min_m=min_m, kernel=k,
                      landmarks=landmarks, landmark_space="kernel", damping=damping, coords="raw",
                      n_batches=n_batches, batch_size=batch_size, cg_max_iter=cg_max_iter, dtype=dtype,
                      loss_hyper=loss_hyper)
    return EntkRun(r.dataset, r.loss, r.seed, r.audit, r.y_landmarks, T.get("run"),
                   kernel_name=_kernel_label(k.base), kernel_seconds=k.seconds,
                   n_network_parameters=int(getattr(k.base, "n_parameters", 0)), extra={"kernel_scale": k.scale})


def _kernel_label(k) -> str:
    if getattr(k, "name", "") == "torch_ntk":
        return "eNTK (exact)" if k.implementation == "exact" else f"eNTK (sketch S={k.sketch_size})"
    return getattr(k, "name", type(k).__name__)


def probe_pair(trained, run: AuditRun, split, label_fraction: float = 0.1, seed: int = 0) -> dict:
    """The network's and KREPES' linear probes on the same labelled subset, Δ and Kendall-τ.

    Both probes are :func:`krepes_lib.linear_probe` with the same ``label_fraction`` and
    ``seed`` on the same training labels, so they see the **same** stratified labelled rows
    (:func:`krepes_lib.evaluate.labelled_subset`); the network's representation is its
    backbone output, KREPES' the audited f(x) = (Ã₀ + ΔÃ)ᵀk_x + γ. Returns ``nn_probe``,
    ``krepes_probe``, ``delta`` (KREPES − NN in accuracy **points**, the paper's unit),
    ``tau`` (Kendall-τ between the two probes' probabilities of their own predicted class per
    test point — spec §6's "linear-probe predicted-class probabilities"), ``tau_true`` (the
    same for the probability of the true class) and ``agreement`` (share of test points both
    probes put in the same class).
    """
    def fit(Z, Zt):
        acc, (scaler, clf, n_lab) = linear_probe(Z, split.y, Zt, split.y_test, label_fraction=label_fraction,
                                                 seed=seed, return_model=True)
        P = clf.predict_proba(scaler.transform(np.asarray(to_host(Zt), dtype=np.float64)))
        return acc, P, clf.classes_, n_lab

    a_nn, P_nn, c_nn, n_lab = fit(trained.network.embed(split.X), trained.network.embed(split.X_test))
    a_kr, P_kr, c_kr, _ = fit(run.audit.embed(split.X), run.audit.embed(split.X_test))
    if not np.array_equal(c_nn, c_kr):
        raise ValueError("probe_pair: the two probes saw different classes; the labelled subsets differ.")
    yt = np.searchsorted(c_nn, split.y_test)
    rows = np.arange(yt.size)
    return {"nn_probe": a_nn, "krepes_probe": a_kr, "delta": 100.0 * (a_kr - a_nn),
            "tau": kendall_tau(P_nn.max(axis=1), P_kr.max(axis=1)),
            "tau_true": kendall_tau(P_nn[rows, yt], P_kr[rows, yt]),
            "agreement": float((P_nn.argmax(1) == P_kr.argmax(1)).mean()), "n_labelled": int(n_lab)}


def v3_row(trained, split, seed: int = 0, *, kernel: str = "entk", loss: str | None = None, h: int = 16,
           m="sqrt", damping: float | None = None, n_batches: int = 2, batch_size: int = 128,
           cg_max_iter: int | None = None, sketch_size: int = 8, implementation: str = "sketch",
           label_fraction: float = 0.1, drop_k: int = DROP_KNN_K, drop_n_remove: int = DROP_N_REMOVE,
           kappa: bool = False, p1: bool = False, return_run: bool = False):
    """One row of the v3 main table for one trained network and seed.

    ``kernel="entk"``: :func:`run_entk_audit` on the network's eNTK; ``"rbf"``: the same audit
    with an RBF kernel on the raw rows (median-heuristic bandwidth, k-means++ in input space —
    :func:`krepes_lib.studies.audits.run_audit`), the "what changes when the kernel is the
    network's own" column. The audit's loss is the network's unless ``loss`` is given; m is
    raised to :func:`~krepes_lib.studies.audits.drop_m` (≥ 2(k + n_remove)) for the drop.

    Returns the flat row: :meth:`AuditRun.info`, :func:`probe_pair`, the confidence drop of
    the true class (``drop_top_true``, ``drop_random_true``, eq. (int-drop)) and, optionally,
    κ and Precision@1 (:func:`krepes_lib.studies.audits.audit_metrics`); with ``return_run``
    also the run.
    """
    loss = loss or trained.config.loss
    mm = drop_m(len(split.y), m, drop_k, drop_n_remove)
    if kernel == "entk":
        run = run_entk_audit(trained, split, loss, seed, h=h, m=mm, damping=damping, n_batches=n_batches,
                             batch_size=batch_size, cg_max_iter=cg_max_iter, sketch_size=sketch_size,
                             implementation=implementation)
    elif kernel == "rbf":
        run = run_rbf_audit(split, loss, seed, h=h, m=mm, damping=damping, n_batches=n_batches,
                       batch_size=batch_size, cg_max_iter=cg_max_iter)
    else:
        raise ValueError(f"kernel={kernel!r}: use 'entk' (the network's eNTK) or 'rbf'.")
    T = Timer()
    with T("metrics"):
        row = audit_metrics(run, split, kappa=kappa, p1=p1, drop=True, drop_k=drop_k, drop_n_remove=drop_n_remove)
        row.update(probe_pair(trained, run, split, label_fraction, seed))
    row.update(network_seed=int(trained.config.seed), network_loss=trained.config.loss,
               metrics_s=T.get("metrics"), n_train=int(len(split.y)), n_test=int(len(split.y_test)))
    return (row, run) if return_run else row


def run_rbf_audit(split, loss, seed: int = 0, **kw) -> EntkRun:
    """:func:`krepes_lib.studies.audits.run_audit` with the RBF kernel on the raw rows
    (median-heuristic bandwidth, float64), timed like the eNTK runs (``kw``: its options)."""
    from ..recipe import default_kernel

    k = TimedKernel(default_kernel(np.asarray(split.X, dtype=np.float64), "rbf"))
    r = run_audit(split, loss, seed, dataset=getattr(split, "dataset", ""), kernel=k, dtype="float64", **kw)
    return EntkRun(r.dataset, r.loss, r.seed, r.audit, r.y_landmarks, r.seconds, kernel_name="rbf",
                   kernel_seconds=k.seconds)


# ---------------------------------------------------------------------------------------
# v1: KREPES trained on the eNTK
# ---------------------------------------------------------------------------------------
def v1_row(trained, split, seed: int = 0, *, kernel: str = "entk", loss: str | None = None, h: int = 32,
           m="sqrt", epochs: int = 5, batch_size: int = 128, lr: float = 1e-3, sketch_size: int = 8,
           implementation: str = "sketch", label_fraction: float = 0.1, n_fit: int | None = None) -> dict:
    """KREPES trained (``kr.fit``, Adam, ``epochs`` epochs, PC init, whitened coordinates) on the
    network's eNTK (``kernel="entk"``) or an RBF kernel (``"rbf"``), next to the network.

    ``n_fit`` rows of ``split.X`` (default all) are the training rows of the fit (landmarks and
    views); the probes use the whole split with the same labelled subset. Returns the
    network's probe, KREPES' probe (trained and at its PC init), Δ in points, the parameter
    counts (``History.n_trained``: what ``fit`` trained; ``m·h + h``; the network's backbone
    and backbone + projector) and the time breakdown: seconds in kernel blocks vs the rest of
    the fit (optimisation: losses, gradients, Adam), landmark selection + Nyström included in
    the kernel column when they compute kernel blocks.
    """
    from ..recipe import build_model, default_kernel
    from ..train import fit

    loss = loss or trained.config.loss
    X = to_device(split.X, dtype=np.float32)  # the default device: the eNTK follows X
    Xf = X if n_fit is None else X[:int(n_fit)]
    if kernel not in ("entk", "rbf"):
        raise ValueError(f"kernel={kernel!r}: use 'entk' or 'rbf'.")
    T = Timer()
    with T("setup"):
        k = (unit_entk(trained, Xf, implementation, sketch_size, seed) if kernel == "entk"
             else TimedKernel(default_kernel(Xf, "rbf")))
        model = build_model(Xf, h, m=m, kernel=k, landmarks="kmeans++", seed=seed, coords="whitened", init="pc",
                            landmark_space="kernel" if kernel == "entk" else "input")
    setup_s, setup_k = T.get("setup"), k.seconds
    Z0 = (model.embed(X), model.embed(split.X_test))
    k0 = k.seconds
    with T("fit"):
        hist = fit(model, Xf, loss, epochs=epochs, batch_size=batch_size, seed=seed, augment=split.train,
                   options=Options(lr=lr, optimizer="adam"), progress=False)
    fit_s, fit_k = T.get("fit"), k.seconds - k0
    Z_tr = model.embed(X)
    getattr(k.base, "clear_cache", lambda: None)()  # test time without the eNTK's feature cache
    k_tr = k.seconds
    Z_te, test_s = T.call(lambda: model.embed(split.X_test), "test")
    test_k = k.seconds
    acc = linear_probe(Z_tr, split.y, Z_te, split.y_test, label_fraction=label_fraction, seed=seed)
    acc0 = linear_probe(*_pair(Z0, split), label_fraction=label_fraction, seed=seed)
    N_tr = trained.network.embed(split.X)
    N_te, nn_test_s = T.call(lambda: trained.network.embed(split.X_test), "nn_test")
    nn = linear_probe(N_tr, split.y, N_te, split.y_test, label_fraction=label_fraction, seed=seed)
    n_bb = int(sum(p.numel() for p in trained.backbone.parameters()))
    n_all = int(sum(p.numel() for p in trained.network.parameters()))
    return {"dataset": trained.config.dataset, "loss": loss, "seed": int(seed), "kernel": _kernel_label(k.base),
            "m": int(model.m), "h": int(model.h), "epochs": int(epochs), "n_fit": int(Xf.shape[0]),
            "nn_probe": nn, "krepes_probe": acc, "krepes_probe_pc": acc0, "delta": 100.0 * (acc - nn),
            "n_trained": int(hist.n_trained), "mh_plus_h": int(model.m * model.h + model.h),
            "nn_backbone_parameters": n_bb, "nn_parameters": n_all,
            "loss_first": float(hist.loss[0]), "loss_last": float(hist.loss[-1]),
            "setup_s": setup_s, "setup_kernel_s": setup_k, "fit_s": fit_s, "fit_kernel_s": fit_k,
            "fit_optim_s": max(fit_s - fit_k, 0.0), "krepes_test_s": test_s,
            "krepes_test_kernel_s": test_k - k_tr, "nn_test_s": nn_test_s,
            "n_test": int(len(split.y_test)), "nn_train_s": float(trained.seconds),
            "nn_from_cache": bool(trained.from_cache)}


def _pair(Z, split):
    return Z[0], split.y, Z[1], split.y_test


# ---------------------------------------------------------------------------------------
# table cells
# ---------------------------------------------------------------------------------------
def cell_text(values, digits: int = 3, scale: float = 1.0) -> str:
    """"mean [95% bootstrap CI]" of per-seed values (for table cells)."""
    v = np.asarray(values, dtype=np.float64) * scale
    if v.size < 2:
        return f"{v.mean():.{digits}f}" if v.size else "—"
    mu, lo, hi = stats.bootstrap_ci(v)
    return f"{mu:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
