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
           "v3_row", "v1_row", "entk_error", "drop_sweep", "cell_claims", "cell_text", "paper_value", "PAPER_NAMES", "PER_ROW_FIELDS",
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

    # a feature-map base (the eNTK, k = φ·φ) keeps its fast paths through the wrapper: kernel-space
    # k-means++ on φ(X) (each row's features computed once) instead of one kernel column per landmark
    @property
    def features_fit(self):
        """The base kernel's ``features_fit`` (None when it has no feature map)."""
        return getattr(self.base, "features_fit", None)

    def features(self, X, dtype=None):
        """√scale · φ(X) of a feature-map base kernel, timed: (√scale φ(x))·(√scale φ(y)) = k(x, y)."""
        if getattr(self.base, "features", None) is None:
            raise TypeError(f"{type(self.base).__name__} has no feature map.")
        with self.timer("block"):
            F = self.base.features(X, dtype=dtype)
            if self.scale != 1.0:
                F = F * F.dtype.type(np.sqrt(self.scale))
        return F


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


def probe_pair(trained, run: AuditRun, split, label_fraction: float = 0.1, seed: int = 0, *,
               ceiling: bool = False, n_draws: int = 4, init=None, per_row: bool = False) -> dict:
    """The network's and KREPES' linear probes on the same labelled subset: Δ, the three
    readings of Kendall-τ, and (optionally) what the same measurement reaches on its own.

    Both probes are :func:`krepes_lib.linear_probe` on the **same** stratified labelled rows
    (``label_fraction`` of each class of ``split.y``, drawn with ``seed``); the network's
    representation is its backbone output, KREPES' the audited f(x) = (Ã₀ + ΔÃ)ᵀk_x + γ.
    Returns ``nn_probe``, ``krepes_probe``, ``delta`` (KREPES − NN in accuracy **points**, the
    paper's unit), the readings of eq. (int-tau) (:func:`krepes_lib.studies.calibration.
    tau_readings`): ``tau`` (predicted-class probabilities, spec §6), ``tau_pooled`` (the n × C
    probabilities), ``agreement`` (same predicted class), ``tau_true`` (true-class
    probabilities) and ``n_labelled``.

    ``ceiling``: also the same readings between the network's probe and the network's probe
    refit on another labelled subset of the same class counts (``ceil_subset_tau``,
    ``ceil_subset_tau_pooled``, ``ceil_subset_agreement``) and on a stratified bootstrap of its
    labelled rows (``ceil_boot_*``), each the mean over ``n_draws`` draws, eq. (int-tau-ceiling). ``init``: the network at its random
    initialisation (:func:`krepes_lib.neural.ssl.initial_network`): its probe on the same rows
    (``nn_init_probe``). ``per_row``: also ``correct_nn`` and ``correct_krepes`` (booleans per
    test row, for the paired bootstrap over test rows; not JSON — leave them out of saved
    records).
    """
    from . import calibration as cal

    rows = cal.labelled_rows(split.y, label_fraction, seed)
    Z_nn = (trained.network.embed(split.X), trained.network.embed(split.X_test))
    nn = cal.probe_scores(Z_nn[0], split.y, Z_nn[1], split.y_test, rows)
    kr_ = cal.probe_scores(run.audit.embed(split.X), split.y, run.audit.embed(split.X_test), split.y_test, rows)
    if not np.array_equal(nn["classes"], kr_["classes"]):
        raise ValueError("probe_pair: the two probes saw different classes; the labelled subsets differ.")
    yt = np.searchsorted(nn["classes"], split.y_test)
    t = np.arange(yt.size)
    out = {"nn_probe": nn["acc"], "krepes_probe": kr_["acc"], "delta": 100.0 * (kr_["acc"] - nn["acc"]),
           **cal.tau_readings(nn["P"], kr_["P"]), "tau_true": kendall_tau(nn["P"][t, yt], kr_["P"][t, yt]),
           "n_labelled": nn["n_labelled"]}
    if ceiling:
        for tag, method in cal.CEILINGS.items():
            c = cal.same_features_ceiling(Z_nn[0], split.y, Z_nn[1], split.y_test, rows, method=method, n_draws=n_draws,
                                          seed=seed, reference=nn)
            out.update({f"{tag}_{k}": c[k] for k in cal.READINGS})
    if init is not None:
        out["nn_init_probe"] = cal.probe_scores(init.network.embed(split.X), split.y, init.network.embed(split.X_test),
                                                split.y_test, rows)["acc"]
    if per_row:
        out.update(correct_nn=nn["correct"], correct_krepes=kr_["correct"])
    return out


#: Row fields that hold per-test-row arrays (for the paired bootstrap), not JSON numbers.
PER_ROW_FIELDS = ("correct_nn", "correct_krepes")


def v3_row(trained, split, seed: int = 0, *, kernel: str = "entk", loss: str | None = None, h: int = 16,
           m="sqrt", damping: float | None = None, n_batches: int = 2, batch_size: int = 128,
           cg_max_iter: int | None = None, sketch_size: int = 8, implementation: str = "sketch",
           label_fraction: float = 0.1, drop_k: int = DROP_KNN_K, drop_n_remove: int = DROP_N_REMOVE,
           drop_classes: bool = False, kappa: bool = False, p1: bool = False, return_run: bool = False,
           sketch_seed: int | None = None, ceiling: bool = False, n_draws: int = 4, init=None,
           control_audit: bool = False, per_row: bool = False, entk=None, init_entk=None):
    """One row of the v3 main table for one trained network and one audit seed.

    ``kernel="entk"``: :func:`run_entk_audit` on the network's eNTK; ``"rbf"``: the same audit
    with an RBF kernel on the raw rows (median-heuristic bandwidth, k-means++ in input space —
    :func:`krepes_lib.studies.audits.run_audit`), the "what changes when the kernel is the
    network's own" column. The audit's loss is the network's unless ``loss`` is given; m is
    raised to :func:`~krepes_lib.studies.audits.drop_m` for the drop (with ``drop_classes``:
    to at least C·k as well, so a class's landmarks can fill the k-NN vote, eq. (int-drop-m)).

    ``seed`` seeds the audit (landmarks, views, labelled subset, random landmark sets);
    ``sketch_seed`` the eNTK's sketch directions (default ``seed``). ``entk`` / ``init_entk``:
    the network's (its initialisation's) eNTK built once by :func:`entk_kernel` and passed to
    every audit of the network — the feature store keys rows by kernel object, so one kernel
    computes each row's features once for all audit seeds (default: a new kernel per call).

    Returns the flat row: :meth:`AuditRun.info`, :func:`probe_pair` (``ceiling``, ``n_draws``,
    ``init`` and ``per_row`` passed on), the confidence drop of the true class
    (``drop_top_true``, ``drop_random_true``, eq. (int-drop)) with the cap
    ``drop_capacity`` of eq. (int-drop-m), optionally κ and Precision@1
    (:func:`krepes_lib.studies.audits.audit_metrics`) and, with ``init`` and ``control_audit``,
    the control audit on the random-initialisation eNTK (``init_krepes_probe``, ``init_delta``
    = its KREPES − its network probe, ``init_tau``, ``init_tau_pooled``, ``init_agreement``,
    ``init_damping_accepted``, ``init_loss_rose``, ``init_cg_converged``); with
    ``return_run`` also the run.
    """
    from .calibration import READINGS, drop_capacity

    loss = loss or trained.config.loss
    C = int(len(np.unique(np.concatenate([np.asarray(split.y), np.asarray(split.y_test)]))))
    mm = drop_m(len(split.y), m, drop_k, drop_n_remove, n_classes=C if drop_classes else None)
    sk = seed if sketch_seed is None else int(sketch_seed)
    kw = dict(h=h, m=mm, damping=damping, n_batches=n_batches, batch_size=batch_size, cg_max_iter=cg_max_iter)
    if kernel == "entk":
        run = run_entk_audit(trained, split, loss, seed, sketch_size=sketch_size, implementation=implementation,
                             kernel=entk if entk is not None else entk_kernel(trained, implementation, sketch_size, sk),
                             **kw)
    elif kernel == "rbf":
        run = run_rbf_audit(split, loss, seed, **kw)
    else:
        raise ValueError(f"kernel={kernel!r}: use 'entk' (the network's eNTK) or 'rbf'.")
    T = Timer()
    with T("metrics"):
        row = audit_metrics(run, split, kappa=kappa, p1=p1, drop=True, drop_k=drop_k, drop_n_remove=drop_n_remove)
        row.update(probe_pair(trained, run, split, label_fraction, seed, ceiling=ceiling, n_draws=n_draws, init=init,
                              per_row=per_row))
        row["drop_capacity"] = drop_capacity(row["m"], C, drop_k)
    if init is not None and control_audit:
        with T("control"):
            r0 = run_entk_audit(init, split, loss, seed, sketch_size=sketch_size, implementation=implementation,
                                kernel=init_entk if init_entk is not None else
                                entk_kernel(init, implementation, sketch_size, sk), **kw)
            p0 = probe_pair(init, r0, split, label_fraction, seed)
        row.update(init_krepes_probe=p0["krepes_probe"], init_delta=p0["delta"],
                   **{f"init_{k}": p0[k] for k in READINGS}, init_damping_accepted=r0.audit.damping_accepted,
                   init_loss_rose=bool(r0.audit.loss_rose), init_cg_converged=bool(r0.audit.cg_converged))
    elif init is not None:  # the control audit ran for another audit of this network: NaN here
        row.update({f"init_{k}": np.nan for k in ("krepes_probe", "delta", *READINGS, "damping_accepted")},
                   init_loss_rose=None, init_cg_converged=None)
    row.update(network_seed=int(trained.config.seed), network_loss=trained.config.loss, sketch_seed=sk,
               n_classes=C, metrics_s=T.get("metrics"), control_s=T.get("control"), n_train=int(len(split.y)),
               n_test=int(len(split.y_test)))
    return (row, run) if return_run else row


def drop_sweep(trained, split, seed: int = 0, m_values=(120, 250, 500, 1000), *, loss: str | None = None,
               kernel=None, sketch_size: int = 8, implementation: str = "sketch", drop_k: int = DROP_KNN_K,
               drop_n_remove: int = DROP_N_REMOVE, **audit_kw) -> list:
    """The confidence drop (eq. (int-drop)) of the network's eNTK audit at several m, one row per
    m: ``m``, ``drop_top_true``, ``drop_random_true``, their ``ratio`` (NaN unless both are
    positive), ``drop_capacity`` (eq. (int-drop-m)) and the audit's diagnostics. The seed (and
    so the view batches) is the same at every m; ``kernel``: the network's eNTK, built once
    (:func:`entk_kernel`), so each row's features are computed once for the whole sweep.
    ``audit_kw``: :func:`run_entk_audit` options (h, damping, n_batches, ...)."""
    from .calibration import drop_capacity

    loss = loss or trained.config.loss
    k = kernel if kernel is not None else entk_kernel(trained, implementation, sketch_size, seed)
    C = int(len(np.unique(np.asarray(split.y))))
    rows = []
    for m in m_values:
        mm = drop_m(len(split.y), int(m), drop_k, drop_n_remove)
        run = run_entk_audit(trained, split, loss, seed, kernel=k, m=mm, **audit_kw)
        r = audit_metrics(run, split, drop=True, drop_k=drop_k, drop_n_remove=drop_n_remove)
        top, rnd = r["drop_top_true"], r["drop_random_true"]
        rows.append({**r, "m_asked": int(m), "ratio": top / rnd if top > 0 and rnd > 0 else float("nan"),
                     "drop_capacity": drop_capacity(r["m"], C, drop_k), "n_classes": C,
                     "network_seed": int(trained.config.seed)})
    return rows


def entk_error(trained, X, sketch_size: int = 8, seed: int = 0, rows: int = 32, implementation: str = "sketch",
               kernel=None) -> dict:
    """How far the eNTK the audits use is from the exact one, on the first ``rows`` rows of X:
    :func:`krepes_lib.neural.kernel_error` (‖K̂ − K‖_F / ‖K‖_F against the exact eNTK by plain
    autograd) of :func:`entk_kernel` with this ``sketch_size`` and ``seed`` (or of ``kernel``, the
    one the audits use). The relative error is unchanged by the unit-diagonal scaling. Returns ``error``, ``n_rows``, ``seconds_exact``,
    ``seconds`` and ``sketch_size``."""
    from ..neural import kernel_error

    k = kernel if kernel is not None else entk_kernel(trained, implementation, sketch_size, seed)
    out = kernel_error(k, np.asarray(X[:int(rows)]), dtype="float64")
    return {**out, "sketch_size": int(sketch_size) if implementation == "sketch" else 0}


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


# ---------------------------------------------------------------------------------------
# the calibrated claims of the v3 table (decided by krepes_lib.claims)
# ---------------------------------------------------------------------------------------
def _fmt(v, digits=3, scale=1.0) -> str:
    v = np.asarray(v, dtype=np.float64) * scale
    v = v[np.isfinite(v)]
    return stats.mean_std(v, digits) if v.size else "n/a"


def cell_claims(table, cells, *, delta_margin: float = 2.0, tau_margin: float = 0.05, ceiling: str = "subset",
                tau_tolerance: float = 0.1, control_margin: float = 0.0, drop_k: int = DROP_KNN_K,
                drop_n_remove: int = DROP_N_REMOVE, kernel_errors: dict | None = None, n_boot: int = 1000) -> dict:
    """The v3 table's claims per cell, decided under the calibrated rules with the old rules'
    verdicts beside them (:func:`krepes_lib.claims.beside`).

    ``table``: :func:`v3_row` rows of the eNTK audits (with ``ceiling``, ``init``,
    ``per_row``), ``seed`` the audit seed (unique in a cell), ``network_seed`` the network's.
    ``cells``: (dataset, loss) pairs. The rules (fixed before the run; the notebook's parameters
    and ``experiments.yml``):

    * **control** (every claim of a cell): the network's probe beats its random
      initialisation's probe on the same labelled and test rows by more than
      ``control_margin`` points — one-sided paired t-test over the cell's audits at α; a cell
      whose control does not hold "does not test the claim" and leaves every family;
    * **Δ**: TOST over the audits, |mean Δ| < ``delta_margin`` points; the row states the
      minimum detectable effect (:func:`krepes_lib.claims.minimum_detectable_effect`, 80 %
      power at the first Holm level α/K) and the paired bootstrap over test rows
      (:func:`krepes_lib.stats.paired_bootstrap`);
    * **τ**: non-inferiority of τ (predicted-class reading, spec §6) to the same-features
      ceiling of the same audit (:func:`krepes_lib.studies.calibration.same_features_ceiling`;
      ``ceiling="subset"``: the network's probe refit on another labelled subset, or
      ``"bootstrap"``: on a bootstrap of its labelled rows), margin ``tau_margin``; the pooled
      and agreement readings and both ceilings are reported;
    * **drop**: KREPES' drop above the random drop, one-sided paired t-test over the audits.

    Old rules (the previous notebook's, on this run's audits whose seed is the network's seed —
    the old design, one audit per network — and without the control): Δ TOST ±``delta_margin``,
    τ above the paper's τ − ``tau_tolerance``, drop paired t-test. Holm over the cells of each
    family. Audits are nested in networks; the t-tests use the audits' total spread, which
    contains the spread between networks: the claims are about the networks trained here.

    Returns ``{"delta": rows, "tau": rows, "drop": rows}``.
    """
    from .. import claims as C
    from .calibration import READINGS
    from .results import PAPER

    from .calibration import CEILINGS

    if ceiling not in CEILINGS.values():
        raise ValueError(f"ceiling={ceiling!r}: use 'subset' (another labelled subset) or 'bootstrap'.")
    prefix = next(p for p, m in CEILINGS.items() if m == ceiling)
    refit = "another labelled subset of the same size" if ceiling == "subset" else "a bootstrap of its labelled rows"
    kernel_errors = kernel_errors or {}
    cells = list(cells)
    K = len(cells)
    lowest_tau = min(min(v) for v in PAPER["v3_kendall_tau"].values())
    out = {"delta": ([], []), "tau": ([], []), "drop": ([], [])}
    for ds, loss in cells:
        w = dict(dataset=ds, loss=loss)
        rows = table.select(**w)
        old = [r for r in rows if r["seed"] == r["network_seed"]]
        val = lambda key, rs=rows: np.array([r.get(key, np.nan) for r in rs], dtype=np.float64)  # noqa: E731
        name = f"v3 {PAPER_NAMES.get(ds, ds)} × {loss}"
        n_net = len({r["network_seed"] for r in rows})
        control = C.Control(f"the network beats its random initialisation (10 %-label probe, same rows, margin "
                            f"{control_margin:g} points)", a=val("nn_probe"), b=val("nn_init_probe"),
                            rule=C.Paired("greater", margin=control_margin / 100.0))
        ctrl = (f"control: network probe {_fmt(val('nn_probe'), 2, 100)} % vs random init {_fmt(val('nn_init_probe'), 2, 100)} %"
                + (f"; audit on the random-init eNTK: Δ {_fmt(val('init_delta'), 2)} points, τ {_fmt(val('init_tau'))}"
                   if np.isfinite(val("init_delta")).any() else ""))
        acc = val("damping_accepted")
        diag = (f"{len(rows)} audits = {n_net} networks × {len(rows) // max(n_net, 1)} audit seeds; accepted δ "
                f"{np.nanmin(acc):g}–{np.nanmax(acc):g}; CG converged in {int(sum(bool(r['cg_converged']) for r in rows))}/"
                f"{len(rows)} ({int(min(r['cg_iterations'] for r in rows))}–{int(max(r['cg_iterations'] for r in rows))} "
                f"iterations)")
        step = val("step_ratio")
        if np.isfinite(step).any():  # a large accepted δ leaves KREPES near its PC start: say how near
            diag += f"; step ‖ΔÃ‖/‖Ã₀‖ {np.nanmin(step):.2g}–{np.nanmax(step):.2g}"
        if (ds, loss) in kernel_errors or ds in kernel_errors:
            ke = kernel_errors.get((ds, loss), kernel_errors.get(ds))
            diag += f"; eNTK sketch error ‖K̂ − K‖_F/‖K‖_F {ke['error']:.3f} (S = {ke['sketch_size']}, {ke['n_rows']} rows)"
        flags = table.flags(**w)
        # --- Δ -----------------------------------------------------------------------------
        d = val("delta")
        mde = C.minimum_detectable_effect(float(np.nanstd(d, ddof=1)), int(np.isfinite(d).sum()), alpha=C.ALPHA / K)
        boot = ""
        if all("correct_nn" in r for r in rows):
            D = np.array([np.asarray(r["correct_krepes"], float) - np.asarray(r["correct_nn"], float) for r in rows])
            b = stats.paired_bootstrap(100.0 * D, n_boot=n_boot, seed=0)
            boot = f"; paired bootstrap over the {D.shape[1]} test rows: 95 % CI {b['lo']:+.2f} … {b['hi']:+.2f} points"
        pd = paper_value("v3_delta", ds, loss)
        txt = (f"NN {_fmt(val('nn_probe'), 2, 100)} %, KREPES {_fmt(val('krepes_probe'), 2, 100)} %{boot}; minimum "
               f"detectable effect {mde:.2f} points (80 % power, α/{K}); {ctrl}; {diag}")
        claim = f"{name}: the KREPES audit's probe is on par with the network's, Δ = KREPES − NN within ±{delta_margin:g} points (eNTK)"
        paper = f"Δ = {pd:+.2f} points" if pd is not None else "no cell in the paper's table"
        out["delta"][0].append(C.Claim(claim, paper, a=d, what="d = Δ = KREPES − NN, accuracy points", ours=txt,
                                       flags=flags, control=control, extra=dict(mde=mde, cell=[ds, loss])))
        out["delta"][1].append(C.Claim(claim, paper, a=np.array([r["delta"] for r in old]),
                                       what="d = Δ, one audit per network (old design), no control", flags=flags))
        # --- τ -----------------------------------------------------------------------------
        pt = paper_value("v3_kendall_tau", ds, loss)
        ref = pt if pt is not None else lowest_tau
        readings = "; ".join(f"{k} {_fmt(val(k))} (ceiling: other subset {_fmt(val('ceil_subset_' + k))}, bootstrap "
                             f"{_fmt(val('ceil_boot_' + k))}; random-init eNTK {_fmt(val('init_' + k))})" for k in READINGS)
        claim = (f"{name}: Kendall-τ between the network's and KREPES' predicted-class probabilities reaches the "
                 f"same-features ceiling ({ceiling}, margin {tau_margin:g})")
        paper = f"τ = {pt:.3f}" if pt is not None else f"no cell; the paper's lowest τ {lowest_tau:.3f}"
        txt = (f"{readings}; the paper does not define the ranked quantity: 'tau' ranks the predicted-class "
               f"probabilities (spec §6), 'tau_pooled' the n × C probabilities, 'agreement' is the share of equal "
               f"predictions; {ctrl}; {diag}")
        out["tau"][0].append(C.Claim(claim, paper, a=val("tau"), b=val(f"{prefix}_tau"), ours=txt, flags=flags,
                                     control=control, what=f"d = τ(KREPES, NN) − τ(NN, NN refit on {refit})",
                                     extra=dict(cell=[ds, loss])))
        out["tau"][1].append(C.Claim(claim, paper, a=np.array([r["tau"] for r in old]), flags=flags,
                                     rule=C.Threshold("greater", threshold=ref - tau_tolerance,
                                                      name=f"paper τ − {tau_tolerance:g}"),
                                     what="τ per network (old design), no control"))
        # --- drop --------------------------------------------------------------------------
        pdr = paper_value("v3_confidence_drop", ds, loss)
        cap = float(np.nanmin(val("drop_capacity")))
        ms = sorted({int(r["m"]) for r in rows})
        capacity = (f"; at m = {ms[0]} a class's ≈ {ms[0] / rows[0]['n_classes']:.0f} landmarks cap its k = {drop_k} "
                    f"vote at {cap:.2f} confidence" if cap < 1 else
                    f"; m = {'/'.join(map(str, ms))} ≥ C·k = {rows[0]['n_classes'] * drop_k}: a class can fill the vote")
        ratio = val("drop_top_true") / val("drop_random_true")
        claim = (f"{name}: the k-NN confidence drop after removing the top-{drop_n_remove} KREPES landmarks exceeds "
                 f"the drop after removing {drop_n_remove} random ones (k = {drop_k})")
        paper = (f"random {pdr[0]:.4f} vs KREPES {pdr[1]:.4f}" if pdr is not None else "no cell in the paper's table")
        txt = (f"random {_fmt(val('drop_random_true'), 4)} vs KREPES {_fmt(val('drop_top_true'), 4)}, ratio "
               f"{_fmt(ratio[np.isfinite(ratio) & (val('drop_random_true') > 0)], 1)}{capacity}; {ctrl}; {diag}")
        out["drop"][0].append(C.Claim(claim, paper, a=val("drop_top_true"), b=val("drop_random_true"), ours=txt,
                                      what="d = KREPES drop − random drop", flags=flags, control=control,
                                      extra=dict(m=ms, cell=[ds, loss])))
        out["drop"][1].append(C.Claim(claim, paper, a=np.array([r["drop_top_true"] for r in old]),
                                      b=np.array([r["drop_random_true"] for r in old]), flags=flags,
                                      what="d = KREPES drop − random drop, one audit per network (old design), no control"))
    rules = {"delta": (C.Equivalence(margin=delta_margin), C.Equivalence(margin=delta_margin), dict(digits=2)),
             "tau": (C.NonInferiority(margin=tau_margin, reference="same-features ceiling"), None, dict(digits=3)),
             "drop": (C.Paired("greater"), C.Paired("greater"), dict(digits=4))}
    fam = {"delta": "Δ cells", "tau": "τ cells", "drop": "drop cells"}
    result = {}
    for key, (new, old_claims) in out.items():
        r_new, r_old, kw = rules[key]
        rows_new = C.decide(new, r_new, family=fam[key], **kw)
        rows_old = C.decide(old_claims, r_old, family=fam[key] + " (old rule)", **kw)
        result[key] = C.beside(rows_new, rows_old)
    return result
