"""Study drivers and verdict helpers for notebooks 01–05 (Nyström, main results, ablations).

Book: *Theory* (``book/theory.md``: Nyström, landmarks, PC initialisation, training,
second-order steps, evaluation) and *Reproduction report* (how verdicts are decided);
spec §1–§4 and §7.

A notebook calls one driver per step; each returns **records**, a list of flat dicts (one per
configuration and seed), so tables, figures and paired tests read the same numbers:

* :func:`nystrom_error_study` (notebook 01) — Nyström error ‖K − K̃‖_F/‖K‖_F (eq. (nys-approx))
  and class coverage κ of the PC initialisation (eq. (lm-kappa)) per landmark strategy, m, seed;
* :func:`main_results` (02) — raw-feature probe, untrained PC init and every loss trained
  from it by :func:`krepes_lib.fit`: 10 %-label linear probe, k-NN, loss and probe curves,
  ``History.n_trained`` next to m·h + h;
* :func:`optimizer_study` (03) — Adam (raw / whitened), FALKON- and GGN-preconditioned Adam
  and GGN-Newton-CG, all through the one ``fit`` loop, scored by the objective on fixed views;
  :func:`best_lr` picks each first-order method's learning rate; :func:`hvp_costs`;
* :func:`init_study` (04) — PC vs random initialisation in whitened and raw coordinates;
* :func:`landmark_study` (05) — uniform / k-means++ / leverage landmarks across m.

The notebooks decide their claims with the claims engine (:mod:`krepes_lib.claims`:
one-sided paired t-tests over seeds, Holm over the family a claim belongs to); a run that
diverged has no value (NaN), and the engine leaves its pair out and says so in the row.
:func:`select`, :func:`column` and :func:`curves` read a list of records through the one
results table (:class:`krepes_lib.studies.results.Table`).

Seeds: a record's ``seed`` fixes everything random in that run (landmarks where the study
draws them per seed, the shuffles and augmentations of ``fit``, the probe's labelled subset),
so records of two arms with the same seed form a pair.
"""
from __future__ import annotations


import numpy as np

from ..backend import default_xp, to_device, to_host
from ..defaults import KNN_K
from ..evaluate import knn_accuracy, linear_probe, raw_feature_probe
from ..recipe import build_nystrom, default_kernel
from ..views import view_batches
from ..landmarks import class_coverage, select_landmarks
from ..model import NystromModel
from ..nystrom import Nystrom
from ..options import Options
from ..timing import Timer
from .results import Table

__all__ = ["host_setup", "load_rows", "Scorer", "objective_value", "main_results",
           "optimizer_study", "best_lr", "time_to_reach", "hvp_costs", "init_study", "landmark_study",
           "nystrom_error_study", "select", "column", "curves", "OPTIMIZER_METHODS"]


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def host_setup(cpu_threads: int | None = None) -> str:
    """Limit the host's BLAS threads to ``cpu_threads`` (None: leave them as they are;
    :func:`krepes_lib.backend.limit_host_threads`) and print the array backend; returns its name."""
    from ..backend import limit_host_threads

    limit_host_threads(cpu_threads)
    name = default_xp().__name__
    print(f"array backend: {name}; host BLAS threads: {'unchanged' if cpu_threads is None else cpu_threads}")
    return name


def load_rows(name: str, n: int | None, seed: int = 0, **loader_kw):
    """Up to ``n`` rows of a dataset, stratified by class (all rows when it has fewer or
    ``n`` is None): ``(X, y, dataset)``, for studies that need no held-out split (notebook 01)."""
    from .. import data

    D = data.load(name, **loader_kw)
    idx = data.stratified_indices(D.y, None if n is None else min(int(n), len(D)), seed=seed)
    return D.X[idx], D.y[idx], D


# ---------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------
def select(records, **where) -> list:
    """The records whose fields equal ``where``, ordered by seed (so arms pair up);
    ``KeyError`` when none does (:meth:`Table.select <krepes_lib.studies.results.Table.select>`)."""
    return Table(records).select(**where)


def column(records, key: str, **where) -> np.ndarray:
    """``key`` of the matching records as a float array, ordered by seed (NaN for None)."""
    return Table(records).values(key, **where)


def curves(records, key: str, **where):
    """Mean and sample std over seeds of a per-epoch list field (std 0 for one seed)."""
    return Table(records).curves(key, **where)


# ---------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------
class Scorer:
    """10 %-label linear probe (and k-NN) of a model on a split, usable as ``fit``'s ``eval_fn``.

    Parameters
    ----------
    X, y, X_test, y_test : arrays
        Training and held-out rows (X in the model's namespace).
    seed : int
        Draws the labelled subset (:func:`krepes_lib.evaluate.labelled_subset`).
    label_fraction : float, default 0.1
        Spec §7's protocol.

    ``scorer(model)`` returns the probe accuracy and keeps the embeddings, so that
    :meth:`final` after ``fit`` (which probes the last epoch) adds k-NN without embedding
    the data again.
    """

    def __init__(self, X, y, X_test, y_test, seed: int = 0, label_fraction: float = 0.1):
        self.X, self.y, self.X_test, self.y_test = X, y, X_test, y_test
        self.seed, self.label_fraction = int(seed), float(label_fraction)
        self._Z = None

    def __call__(self, model) -> float:
        self._Z = (model.embed(self.X), model.embed(self.X_test))
        return linear_probe(self._Z[0], self.y, self._Z[1], self.y_test,
                            label_fraction=self.label_fraction, seed=self.seed)

    def final(self, model, probe: float | None = None) -> dict:
        """``{"probe", "knn"}`` of ``model``; reuses the last embeddings when ``probe`` is given."""
        if probe is None or self._Z is None:
            probe = self(model)
        Z, Zt = self._Z
        k = min(KNN_K, Z.shape[0])
        return {"probe": float(probe), "knn": knn_accuracy(Z, self.y, Zt, self.y_test, k=k)}


def objective_value(model, loss, batches, state=None, options: Options | None = None) -> float:
    """Mean objective (loss on Z plus any RKHS penalty) of ``model`` over fixed view batches.

    ``batches`` as from :func:`krepes_lib.view_batches`; ``state`` is the loss's own arrays
    (``History.state``; fresh when None). The value is that of
    :meth:`krepes_lib.problem.BatchProblem.value_and_grad`, so it is exactly what ``fit``
    minimises, evaluated on the same views for every optimiser (kernel blocks within
    ``options.memory_budget``).
    """
    from ..losses import make_objective
    from ..problem import BatchProblem

    obj = make_objective(loss)
    state = obj.init_state(model) if state is None else state
    budget = (options or Options()).memory_budget
    vals = [float(BatchProblem(model, obj, state, views, budget).value_and_grad()[0]) for views in batches]
    return float(np.mean(vals))


def _split_parts(split, dtype=None):
    """(X, y, X_test, y_test, augmenter) of a split, X on the default device."""
    from ..augment import make_augmenter

    X, y, X_test, y_test = split
    xp = default_xp()
    aug = make_augmenter(getattr(split, "train", None))
    return (to_device(X, xp, dtype=dtype), np.asarray(y), to_device(X_test, xp, dtype=dtype),
            np.asarray(y_test), aug)


def _views_of(loss) -> int:
    from ..losses import make_objective

    return make_objective(loss).views


def _bar(total, desc, progress):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


# ---------------------------------------------------------------------------------------
# notebook 01: Nyström error and κ
# ---------------------------------------------------------------------------------------
def nystrom_error_study(X, y, kernel, methods, m_values, seeds, h: int, n_classes: int | None = None,
                        dtype=None, progress: bool = True) -> list:
    """Nyström error and κ of the PC initialisation per (method, m, seed).

    For every landmark strategy (``select_landmarks``; leverage scores get ``kernel``), m and
    seed: the relative Frobenius error ‖K − K̃‖_F / ‖K‖_F on X, eq. (nys-approx), streamed
    over row blocks (:meth:`Nystrom.relative_error`), and κ of eq. (lm-kappa) from the row
    norms of Ã₀ = U_h Λ_h^{-1/2} (eq. (nys-pc)). Records: method, m, seed, error, kappa,
    rank, seconds (selection + basis + error).
    """
    xp = default_xp()
    X = to_device(X, xp, dtype=dtype)
    y = np.asarray(y)
    C = int(np.unique(y).size if n_classes is None else n_classes)
    out = []
    bar = _bar(len(methods) * len(m_values) * len(seeds), "Nyström error", progress)
    for method in methods:
        for m in m_values:
            for seed in seeds:
                T = Timer(xp)
                with T("run"):
                    nys = build_nystrom(X, int(m), kernel=kernel, landmarks=method, seed=seed)
                    err = nys.relative_error(X)
                secs = T.get("run")
                norms = to_host(xp.linalg.norm(nys.pc_init(min(h, nys.rank)), axis=1))
                out.append(dict(method=method, m=int(m), seed=int(seed), error=float(err),
                                kappa=class_coverage(norms, y[to_host(nys.landmark_indices)], n_classes=C),
                                rank=nys.rank, seconds=secs))
                bar.update(1)
    bar.close()
    return out


# ---------------------------------------------------------------------------------------
# notebook 02: main results
# ---------------------------------------------------------------------------------------
def main_results(split, losses, m, h: int, epochs: int, batch_size: int, seeds, kernel="rbf",
                 lr: float | None = None, label_fraction: float = 0.1, probe_every: int = 1,
                 landmarks: str = "kmeans++", dtype=None, progress: bool = True) -> list:
    """Every loss trained from the PC initialisation, next to two untrained baselines.

    Per seed: landmarks (``landmarks``, seed) → Nyström → PC-initialised
    :class:`NystromModel` (whitened, eq. (nys-pc)); the records are

    * ``method="raw features"``: the same linear probe on the raw inputs, k-NN on them;
    * ``method="PC init"``: the model before training;
    * ``method=<loss>``: a copy of the PC init trained by :func:`krepes_lib.fit` with Adam
      (``lr``; spec §4 default when None), two augmented views for the SSL losses and one
      un-augmented view for single-view losses (KPCA, KAE; spec §3).

    Fields: method, seed, probe, knn, and for models ``m`` (landmarks), ``h``, ``mh_h``
    (m·h + h, the entries of (Ã, γ) that define f) and ``n_trained`` (``History.n_trained``:
    every array the optimiser updated — W or Ã, γ, KAE's decoder, BYOL's predictor);
    for trained models ``loss`` and ``probe_curve`` (epoch 0 = PC init, NaN where not probed),
    ``seconds`` (training wall time, probes excluded) and ``moved`` (max |Δ main parameter|).
    """
    from ..train import fit

    X, y, X_test, y_test, aug = _split_parts(split, dtype)
    k = default_kernel(X, kernel)
    opts = Options(lr=Options().lr if lr is None else lr)
    knn_k = min(KNN_K, X.shape[0])
    raw_knn = knn_accuracy(X, y, X_test, y_test, k=knn_k)
    out = []
    bar = _bar(len(seeds) * (len(losses) + 1), f"main results m={m}", progress)
    for seed in seeds:
        raw = raw_feature_probe(X, y, X_test, y_test, label_fraction=label_fraction, seed=seed)
        out.append(dict(method="raw features", seed=int(seed), probe=raw, knn=raw_knn))
        nys = build_nystrom(X, int(m), kernel=k, landmarks=landmarks, seed=seed)
        hh = min(int(h), nys.rank)
        pc = NystromModel(nys, hh)
        size = dict(m=nys.m, h=hh, mh_h=nys.m * hh + hh)
        p0 = Scorer(X, y, X_test, y_test, seed, label_fraction).final(pc)
        out.append(dict(method="PC init", seed=int(seed), n_trained=pc.n_trained, **p0, **size))
        bar.update(1)
        for loss in losses:
            model = NystromModel(nys, hh)
            scorer = Scorer(X, y, X_test, y_test, seed, label_fraction)
            hist = fit(model, X, loss, epochs, batch_size, seed=seed, options=opts,
                       augment=aug if _views_of(loss) > 1 else None, eval_fn=scorer,
                       eval_every=max(1, int(probe_every)), progress=False)
            sc = scorer.final(model, hist.probe[-1] if epochs > 0 else None)
            moved = float(to_host(abs(model.params[model._main] - pc.params[model._main]).max()))
            out.append(dict(method=loss, seed=int(seed), n_trained=hist.n_trained, **sc, **size,
                            loss=list(hist.loss), probe_curve=[p0["probe"]] + list(hist.probe),
                            seconds=float(sum(hist.time)), moved=moved))
            bar.update(1)
    bar.close()
    return out


# ---------------------------------------------------------------------------------------
# notebook 03: optimisers through the one fit loop
# ---------------------------------------------------------------------------------------
#: Optimiser arms of notebook 03: (coordinates, Options.optimizer, preconditioner kind).
OPTIMIZER_METHODS = {
    "adam_raw": ("raw", "adam", None),
    "adam_whitened": ("whitened", "adam", None),
    "adam_falkon": ("raw", "adam", "falkon"),
    "adam_ggn": ("whitened", "adam", "ggn"),
    "newton_cg": ("whitened", "newton_cg", None),
}


def optimizer_study(split, loss, methods, lrs, seeds, m: int, h: int, epochs: int, batch_size: int,
                    kernel="rbf", landmarks: str = "kmeans++", falkon_lam: float = 1e-3,
                    ggn_damping: float | None = None, ggn_cg_iter: int = 5, newton_damping: float | None = None,
                    newton_cg_iter: int = 10, n_eval_views: int = 512, label_fraction: float = 0.1,
                    dtype=None, progress: bool = True):
    """Each optimiser of :data:`OPTIMIZER_METHODS` on the same landmarks, init and batches.

    Landmarks are drawn once (seed 0); every run starts from the PC initialisation and a seed
    fixes ``fit``'s shuffles and augmentations and the probe's labelled subset. Every method
    runs in :func:`krepes_lib.fit`: Adam with ``preconditioner=FalkonPrecond(...)`` (P of
    eq. (precond), λ = ``falkon_lam``; its one-off set-up time is counted) or
    ``GGNPrecond(damping, cg_max_iter)`` (eq. (newton-step) per batch), or
    ``Options(optimizer="newton_cg")`` (GGN-Newton-CG with Armijo line search). First-order
    methods run once per learning rate of ``lrs``. ``ggn_damping`` / ``newton_damping``
    default to ``Options().damping``.

    The objective is measured on fixed views (``view_batches`` of ⌈n_eval_views / B⌉
    batches, seed 12345) before training and after every epoch (not timed), so methods are
    compared on the same data rather than on their own running losses. A run whose loss
    diverges (``FloatingPointError``) is recorded with ``diverged=True`` and NaN values.

    Returns
    -------
    (records, info)
        records: method, lr (None for Newton-CG), seed, objective (epochs + 1 values), time
        (cumulative seconds, set-up included), probe, diverged, n_matvec (GGN products of
        the preconditioner); info: nys (the basis), eval_batches, augmenter, init_probe.
    """
    from ..curvature import FalkonPrecond, GGNPrecond
    from ..losses import make_objective
    from ..preconditioner import FalkonPreconditioner
    from ..train import fit

    unknown = sorted(set(methods) - set(OPTIMIZER_METHODS))
    if unknown:
        raise ValueError(f"methods {unknown} are unknown; choose from {sorted(OPTIMIZER_METHODS)}.")
    ggn_damping = Options().damping if ggn_damping is None else ggn_damping
    newton_damping = Options().damping if newton_damping is None else newton_damping
    X, y, X_test, y_test, aug = _split_parts(split, dtype)
    xp = default_xp()
    k = default_kernel(X, kernel)
    nys = build_nystrom(X, int(m), kernel=k, landmarks=landmarks, seed=0)
    hh = min(int(h), nys.rank)
    B = min(int(batch_size), X.shape[0])
    batches = view_batches(X, max(1, -(-int(n_eval_views) // B)), B, views=2, augment=aug, seed=12345)
    obj = make_objective(loss)
    init_probe = Scorer(X, y, X_test, y_test, 0, label_fraction)(NystromModel(nys, hh))
    runs = [(meth, lr, s) for meth in methods
            for lr in (lrs if OPTIMIZER_METHODS[meth][1] == "adam" else [None]) for s in seeds]
    out = []
    bar = _bar(len(runs), f"optimisers {loss}", progress)
    for meth, lr, seed in runs:
        coords, optimizer, pre = OPTIMIZER_METHODS[meth]
        model = NystromModel(nys, hh, coords=coords)
        state = obj.init_state(model)
        opts = Options(optimizer=optimizer, **({"lr": lr} if lr is not None else {}),
                       **({"damping": newton_damping, "cg_max_iter": newton_cg_iter}
                          if optimizer == "newton_cg" else {}))
        precond, setup_s = Timer(xp).call(
            lambda: FalkonPrecond(FalkonPreconditioner.from_nystrom(nys, X, falkon_lam)) if pre == "falkon"
            else GGNPrecond(damping=ggn_damping, cg_max_iter=ggn_cg_iter) if pre == "ggn" else None)
        f0 = objective_value(model, obj, batches, state)
        rec = dict(method=meth, lr=lr, seed=int(seed), diverged=False)
        try:
            hist = fit(model, X, obj, epochs, batch_size, seed=seed, augment=aug, options=opts,
                       preconditioner=precond, state=state, progress=False,
                       eval_fn=lambda mdl: objective_value(mdl, obj, batches, state))
        except FloatingPointError:
            rec.update(objective=[f0] + [np.nan] * epochs, time=[setup_s] + [np.nan] * epochs,
                       probe=np.nan, diverged=True, n_matvec=None)
        else:
            finite = bool(np.isfinite(hist.probe).all())
            rec.update(objective=[f0] + list(hist.probe),
                       time=list(setup_s + np.concatenate([[0.0], np.cumsum(hist.time)])),
                       probe=(Scorer(X, y, X_test, y_test, seed, label_fraction)(model) if finite
                              else np.nan),
                       diverged=not finite, n_matvec=getattr(precond, "n_matvec", None))
        out.append(rec)
        bar.update(1)
    bar.close()
    return out, dict(nys=nys, eval_batches=batches, augmenter=aug, init_probe=init_probe, h=hh)


def best_lr(records, method: str):
    """The learning rate of ``method`` with the lowest mean final objective over seeds.

    A learning rate at which any seed diverged is not eligible. Returns None for methods
    without a learning rate (Newton-CG); raises when every learning rate diverged.
    """
    rs = [r for r in records if r["method"] == method]
    lrs = sorted({r["lr"] for r in rs}, key=lambda v: -1 if v is None else v)
    if lrs == [None]:
        return None

    def final(lr):
        sel = [r for r in rs if r["lr"] == lr]
        return np.inf if any(r["diverged"] for r in sel) else np.mean([r["objective"][-1] for r in sel])

    best = min(lrs, key=final)
    if not np.isfinite(final(best)):
        raise RuntimeError(f"{method}: diverged at every learning rate {lrs}; lower the rates.")
    return best


def time_to_reach(records, target: float, **where) -> float:
    """Seconds (mean curve over seeds) until the mean objective first reaches ``target``
    (inf when it never does); ``records`` of :func:`optimizer_study`."""
    obj = curves(records, "objective", **where)[0]
    hit = np.flatnonzero(obj <= target)
    return float(curves(records, "time", **where)[0][hit[0]]) if hit.size else float("inf")


def hvp_costs(nys, h: int, losses, views, repeats: int = 5, trials: int = 3) -> dict:
    """Seconds of one gradient and one lifted GGN product per loss on the same batch of views.

    Uses :func:`krepes_lib.curvature.hvp_cost_ratio` ``trials`` times on the PC-initialised
    model and keeps the fastest of each kind (the least disturbed by other processes).
    Returns ``{loss: {"grad_s", "hvp_s", "ratio"}}``.
    """
    from ..curvature import hvp_cost_ratio
    from ..losses import make_objective
    from ..problem import BatchProblem

    out = {}
    for loss in losses:
        model = NystromModel(nys, h)
        obj = make_objective(loss)
        vw = tuple(views[: obj.views])
        rs = [hvp_cost_ratio(BatchProblem(model, obj, obj.init_state(model), vw, Options().memory_budget),
                             repeats=repeats) for _ in range(int(trials))]
        g, hv = min(r["grad_s"] for r in rs), min(r["hvp_s"] for r in rs)
        out[loss] = {"grad_s": g, "hvp_s": hv, "ratio": hv / g}
    return out


# ---------------------------------------------------------------------------------------
# notebook 04: PC vs random initialisation
# ---------------------------------------------------------------------------------------
def init_study(split, loss, coords_list, inits, seeds, m: int, h: int, epochs: int, batch_size: int,
               kernel="rbf", landmarks: str = "kmeans++", lr: float | None = None,
               label_fraction: float = 0.1, dtype=None, progress: bool = True):
    """Train from each initialisation in each coordinate system (eq. (nys-pc) vs random).

    Landmarks are drawn once (seed 0). A seed draws the random initialisation
    (``NystromModel(init="random", seed=seed)``, scaled so that E[Ã₀ᵀK_mmÃ₀] = I_h), the
    training stream and the probe's labelled subset. Records: coords, init, seed, loss
    (per epoch), probe (epochs + 1 values, epoch 0 = initialisation), seconds.
    Returns ``(records, nys)``.
    """
    from ..train import fit

    X, y, X_test, y_test, aug = _split_parts(split, dtype)
    k = default_kernel(X, kernel)
    nys = build_nystrom(X, int(m), kernel=k, landmarks=landmarks, seed=0)
    hh = min(int(h), nys.rank)
    opts = Options(lr=Options().lr if lr is None else lr)
    out = []
    bar = _bar(len(coords_list) * len(inits) * len(seeds), f"init {loss}", progress)
    for coords in coords_list:
        for init in inits:
            for seed in seeds:
                model = NystromModel(nys, hh, coords=coords, init=init, seed=seed)
                scorer = Scorer(X, y, X_test, y_test, seed, label_fraction)
                p0 = scorer(model)
                hist = fit(model, X, loss, epochs, batch_size, seed=seed, options=opts, eval_fn=scorer,
                           augment=aug if _views_of(loss) > 1 else None, progress=False)
                out.append(dict(coords=coords, init=init, seed=int(seed), loss=list(hist.loss),
                                probe=[p0] + list(hist.probe), seconds=float(sum(hist.time))))
                bar.update(1)
    bar.close()
    return out, nys


# ---------------------------------------------------------------------------------------
# notebook 05: landmark strategies
# ---------------------------------------------------------------------------------------
def landmark_study(split, loss, methods, m_values, seeds, h: int, epochs: int, batch_size: int,
                   kernel="rbf", coords: str = "whitened", lr: float | None = None,
                   label_fraction: float = 0.1, dtype=None, progress: bool = True) -> list:
    """Probe and κ per landmark strategy, m and seed, at the PC init and after training.

    A seed draws the landmarks (all strategies are random), the training stream and the
    probe's labelled subset. κ (eq. (lm-kappa)) ranks landmarks by ‖Ã_l,:‖₂ of Ã₀ and of the
    trained Ã. Records: method, m, seed, probe0, probe, kappa0, kappa, loss (final epoch),
    select_s, rank, classes_hit (classes among the landmarks).
    """
    from ..train import fit

    X, y, X_test, y_test, aug = _split_parts(split, dtype)
    xp = default_xp()
    k = default_kernel(X, kernel)
    C = int(getattr(split, "n_classes", np.unique(y).size))
    opts = Options(lr=Options().lr if lr is None else lr)

    def kappa(model, idx):
        return class_coverage(to_host(xp.linalg.norm(model.A_tilde, axis=1)), y[idx], n_classes=C)

    out = []
    bar = _bar(len(methods) * len(m_values) * len(seeds), f"landmarks {loss}", progress)
    for method in methods:
        for m in m_values:
            for seed in seeds:
                lm, t_sel = Timer().call(
                    lambda: select_landmarks(X, min(int(m), X.shape[0]), method=method, kernel=k, seed=seed))
                nys = Nystrom(k, lm, dtype=X.dtype)
                model = NystromModel(nys, min(int(h), nys.rank), coords=coords)
                scorer = Scorer(X, y, X_test, y_test, seed, label_fraction)
                p0, k0 = scorer(model), kappa(model, lm.indices)
                hist = fit(model, X, loss, epochs, batch_size, seed=seed, options=opts,
                           augment=aug if _views_of(loss) > 1 else None, progress=False)
                out.append(dict(method=method, m=int(m), seed=int(seed), probe0=p0, probe=scorer(model),
                                kappa0=k0, kappa=kappa(model, lm.indices), loss=hist.loss[-1],
                                select_s=t_sel, rank=nys.rank,
                                classes_hit=int(np.unique(y[lm.indices]).size)))
                bar.update(1)
    bar.close()
    return out
