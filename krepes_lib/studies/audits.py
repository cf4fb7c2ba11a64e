"""Audit studies: the experiment pieces notebooks 06–09 and 14–16 share (one audit per
configuration, its metrics, and the claims they feed).

Book: *Interpretability* (``book/interpretability.md``), eqs. (audit-step), (int-is),
(int-concept), (int-p1), (int-drop), (int-gap), (int-entropy), (lm-kappa); *Reproduction
report* for how verdicts are decided; spec §6–§7.

Every audit of a study runs through :func:`run_audit`, for any kernel (the RBF of notebooks
06–09, the networks' eNTK of notebooks 14–16 via :func:`krepes_lib.studies.v3.run_entk_audit`):
``kr.build_model`` (kernel → k-means++ landmarks in input or kernel space → Nyström → PC
initialisation, raw coordinates so that δI acts on vec(Ã) as in the paper) and ``kr.audit``
(one GGN-Newton step, eq. (audit-step), on view batches drawn from ``default_rng([seed,
STREAM_VIEWS])`` — the same views for the same seed in every notebook). The :class:`AuditRun`
it returns keeps the :class:`~krepes_lib.audit.Audit` (which caches the kernel blocks of every
test array it has seen: pass the **same** array object to every metric of one test set) and
the landmark labels (evaluation only).

The metric collectors (:func:`audit_metrics`, :func:`class_gallery`, :func:`alignment_gaps`,
:func:`entropy_sweep`) return flat dicts, one per configuration, that a
:class:`~krepes_lib.studies.results.Table` collects. The claim builders (:func:`table_claims`,
:func:`pair_comparisons`, :func:`per_seed_kendall`, :func:`peak_check`) turn per-seed values
into :class:`krepes_lib.claims.Claim` objects (or, for the entropy peak, the measured
conditions of a deterministic rule) whose text flags audits that raised their own loss
(``Audit.loss_rose``) with their step size ‖ΔÃ‖_F/‖Ã₀‖_F (``Audit.step_ratio``); the verdicts
are the claims engine's (:mod:`krepes_lib.claims`), with the rule the notebook names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audit import Audit, audit
from ..claims import Claim
from ..backend import to_host
from ..defaults import AG_TOP_K, CI_LEVEL, DROP_KNN_K, DROP_N_REMOVE, N_BOOT, TOP_K
from ..evaluate import linear_probe
from ..recipe import build_model, resolve_m
from ..interpret import concept_activation_vector, spectral_entropy
from ..interpret.metrics import MIN_M_FACTOR
from ..losses import make_objective
from ..options import Options
from ..timing import Timer
from .results import Table, audit_flags

__all__ = ["AuditRun", "run_audit", "drop_m", "audit_flags", "audit_metrics", "Table",
           "table_claims", "per_seed_kendall", "class_gallery", "concept_separation",
           "concept_landmarks", "alignment_gaps", "pair_comparisons", "entropy_sweep",
           "peak_check"]


# ---------------------------------------------------------------------------------------
# one audited configuration
# ---------------------------------------------------------------------------------------
@dataclass
class AuditRun:
    """One audited (dataset, loss, seed): the Audit and what evaluating it needs.

    Attributes
    ----------
    dataset, loss : str
    seed : int
        Seeds the landmarks, the view batches and every random baseline of the metrics.
    audit : Audit
    y_landmarks : numpy.ndarray (m,)
        Labels of the landmarks (rows ``landmark_indices`` of the training split).
    seconds : float
        Model construction and audit.
    """

    dataset: str
    loss: str
    seed: int
    audit: Audit
    y_landmarks: np.ndarray
    seconds: float

    @property
    def m(self) -> int:
        return int(self.audit.model.m)

    @property
    def h(self) -> int:
        return int(self.audit.model.h)

    @property
    def landmark_indices(self) -> np.ndarray:
        return np.asarray(to_host(self.audit.landmark_indices))

    def info(self) -> dict:
        """The configuration and the audit's diagnostics (loss_rose, step_ratio, CG), flat."""
        return {"dataset": self.dataset, "loss": self.loss, "seed": self.seed, "m": self.m,
                "h": self.h, **self.audit.summary(), "seconds": self.seconds}


def drop_m(n: int, m="sqrt", k: int = DROP_KNN_K, n_remove: int = DROP_N_REMOVE, n_classes: int | None = None) -> int:
    """Landmarks for the confidence drop, eqs. (int-drop), (int-drop-m):
    max(m, MIN_M_FACTOR·(k + n_remove)) and, with ``n_classes`` = C, at least C·k.

    The k-NN over m landmarks degenerates when m is close to k + n_remove (the neighbour set
    is then most of the landmarks); the metric needs m ≥ 2(k + n_remove) = 120 at the paper's
    k = 50, n_remove = 10 (:data:`krepes_lib.interpret.metrics.MIN_M_FACTOR`). With C classes
    spread evenly over the landmarks, a class has about m / C of them, so the k-NN confidence
    of a class cannot exceed (m / C) / k below m = C·k (0.24 at m = 120, C = 10, k = 50:
    :func:`krepes_lib.studies.calibration.drop_capacity`); ``n_classes`` raises m to C·k, the
    default of the v3 drop claim. ``m`` is an int or ``"sqrt"`` (⌈√n⌉).
    """
    need = MIN_M_FACTOR * (int(k) + int(n_remove))
    if n_classes is not None:
        if int(n_classes) < 2:
            raise ValueError(f"n_classes={n_classes}: the confidence drop needs at least 2 classes.")
        need = max(need, int(n_classes) * int(k))
    if n < need:
        raise ValueError(f"n={n} training rows cannot give the m >= {need} landmarks the confidence "
                         f"drop needs at k={k}, n_remove={n_remove}"
                         + (f", {n_classes} classes" if n_classes is not None else "")
                         + "; use more rows or a smaller k.")
    return max(resolve_m(m, n), need)


def run_audit(split, loss, seed: int = 0, *, dataset: str = "", h: int = 16, m="sqrt", min_m: int = 0,
              kernel="rbf", kernel_scale: float = 1.0, landmarks: str = "kmeans++",
              landmark_space: str = "input", damping: float | None = None, coords: str = "raw",
              n_batches: int = 4, batch_size: int = 256, cg_max_iter: int | None = None,
              augment="dataset", dtype=None, loss_hyper: dict | None = None) -> AuditRun:
    """``kr.build_model`` + ``kr.audit`` for one (split, loss, seed), eq. (audit-step): every
    audit of the studies runs here.

    Parameters
    ----------
    split
        A ``kr.data.load_split`` result or a :class:`krepes_lib.studies.v3.NetworkSplit`:
        ``.X``, ``.y`` (training rows: landmarks and views), ``.train`` (the augmenter).
    loss : str or loss object
    seed : int
        Landmarks (k-means++) and view batches (``views.view_batches``).
    h, m, kernel, kernel_scale, landmarks, landmark_space, coords, dtype
        As in :func:`krepes_lib.build_model` (``coords="raw"``: δI acts on vec(Ã), the
        paper's J^T Q J + λI; ``landmark_space="kernel"``: k-means++ in the kernel's space).
    min_m : int
        m is raised to at least this (e.g. :func:`drop_m` for the confidence drop).
    damping : float, optional
        δ (default ``Options().damping``).
    n_batches, batch_size : int
        View batches that define L and H_GN.
    cg_max_iter : int, optional
        CG cap (default ``Options().cg_max_iter``).
    augment : "dataset", None, or anything ``kr.audit`` accepts
        "dataset": the split's augmenter (images: crops/noise/erasing; tables: column
        corruption) for two-view losses, no augmentation for one-view losses (KPCA, KAE).
    loss_hyper : dict, optional
        Hyper-parameters of a named loss (e.g. ``{"lambda_off": 1e-2}``).
    """
    T = Timer()
    with T("build + audit"):
        objective = make_objective(loss, **(loss_hyper or {}))
        if isinstance(augment, str) and augment == "dataset":
            augment = split.train if objective.views > 1 else None
        mm = max(resolve_m(m, len(split.X)), int(min_m))
        model = build_model(split.X, h, m=mm, kernel=kernel, landmarks=landmarks, seed=seed, coords=coords,
                            dtype=dtype, kernel_scale=kernel_scale, landmark_space=landmark_space)
        opts = Options() if cg_max_iter is None else Options(cg_max_iter=int(cg_max_iter))
        aud = audit(model, objective, split.X, augment=augment, damping=damping, seed=seed,
                    n_batches=n_batches, batch_size=batch_size, options=opts)
        idx = np.asarray(to_host(model.nystrom.landmark_indices))
        name = loss if isinstance(loss, str) else type(loss).__name__
    return AuditRun(dataset, name, int(seed), aud, np.asarray(split.y)[idx], T.total)


# ---------------------------------------------------------------------------------------
# metrics of one run (notebook 07)
# ---------------------------------------------------------------------------------------
def audit_metrics(run: AuditRun, split, *, kappa: bool = False, probe: bool = False,
                  p1: bool = False, drop: bool = False, label_fraction: float = 0.1,
                  drop_k: int = DROP_KNN_K, drop_n_remove: int = DROP_N_REMOVE) -> dict:
    """The audit metrics of one run as a flat dict (with :meth:`AuditRun.info`).

    * ``kappa``: class coverage κ of ‖ΔÃ_l,:‖₂, eq. (lm-kappa);
    * ``probe``: linear-probe accuracy (``label_fraction`` labels) of the audited
      representation and of the PC initialisation (``probe_pc``);
    * ``p1``: Precision@1 of the top-1 landmark by IS and of the cosine baseline, eq.
      (int-p1) (``p1_krepes``, ``p1_cosine``), the precision of a uniformly drawn landmark
      Σ_c p_test(c) p_landmarks(c) (``p1_random``) and the number of distinct top-1
      landmarks by IS (``distinct_top1``);
    * ``drop``: the confidence drop, eq. (int-drop), for the true class (``drop_*_true``) and
      the k-NN's predicted class (``drop_*_predicted``): mean drops of the top-``n_remove``
      and of random landmarks, their ratio (NaN unless both are positive), the confidence
      before removal and the largest |drop| of a single point.

    Every metric of a test set reads ``split.X_test`` (one array object), so the Audit builds
    its kernel block once.
    """
    aud, Xt, yt, yL = run.audit, split.X_test, np.asarray(split.y_test), run.y_landmarks
    out = run.info()
    if kappa:
        out["kappa"] = int(aud.kappa(yL, split.n_classes))
    if probe:
        out["probe"] = linear_probe(aud.embed(split.X), split.y, aud.embed(Xt), yt,
                                    label_fraction=label_fraction, seed=run.seed)
        out["probe_pc"] = linear_probe(aud.embed_init(split.X), split.y, aud.embed_init(Xt), yt,
                                       label_fraction=label_fraction, seed=run.seed)
    if p1:
        res = aud.precision_at_1(Xt, yt, yL)
        C = int(max(yt.max(), yL.max())) + 1
        out.update(p1_krepes=float(res.krepes), p1_cosine=float(res.cosine),
                   p1_random=float(np.bincount(yt, minlength=C) @ np.bincount(yL, minlength=C))
                   / (yt.size * yL.size),
                   distinct_top1=int(np.unique(to_host(aud.top_influential(Xt, K=1).indices)).size))
    if drop:
        for target in ("true", "predicted"):
            cd = aud.confidence_drop(Xt, yL, yt, target=target, k=drop_k, n_remove=drop_n_remove,
                                     seed=run.seed)
            out.update({f"drop_top_{target}": cd.top, f"drop_random_{target}": cd.random,
                        f"drop_ratio_{target}": cd.ratio, f"confidence_{target}": cd.confidence,
                        f"drop_max_abs_{target}": float(max(np.abs(cd.per_point_top).max(),
                                                            np.abs(cd.per_point_random).max()))})
    return out


# ---------------------------------------------------------------------------------------
# claims (built here, decided by krepes_lib.claims)
# ---------------------------------------------------------------------------------------
def table_claims(table: Table, groups, a: str, b: str, claim: str, paper: str, *, what: str = "",
                 digits: int = 3) -> list:
    """One :class:`~krepes_lib.claims.Claim` per group: column ``a`` vs column ``b`` over seeds.

    ``groups`` are dicts of table fields (e.g. ``{"dataset": "digits", "loss": "vicreg"}``);
    ``claim`` and ``paper`` are format strings over those fields; ``what`` says what d = a − b
    is. Each claim prints both columns' mean ± std over seeds and the audit flags of the group.
    Decide them as one family: ``kr.claims.decide(table_claims(...), rule, family=...)``.
    """
    return [Claim(claim.format(**w), paper.format(**w), a=table.values(a, **w), b=table.values(b, **w),
                  what=what, flags=table.flags(**w),
                  ours=f"{a} {table.mean_std(a, digits, **w)} vs {b} {table.mean_std(b, digits, **w)}")
            for w in groups]


def per_seed_kendall(table: Table, x: str, y, over: str = "loss", levels=None, **where) -> np.ndarray:
    """Kendall τ between ``x`` and ``y`` across the levels of ``over``, one τ per seed.

    ``y`` is a key of the table or a fixed sequence (e.g. the paper's κ per level). A τ that
    is undefined (constant ranking) counts as 0 (no ordering). Used for "smaller κ goes with
    higher accuracy": the per-seed τ are then tested against 0 over seeds.
    """
    from ..interpret import kendall_tau

    levels = table.unique(over, **where) if levels is None else list(levels)
    seeds = table.unique("seed", **where)
    taus = []
    for s in sorted(seeds):
        xs = [table.values(x, **{over: lv, "seed": s}, **where)[0] for lv in levels]
        ys = (list(y) if not isinstance(y, str)
              else [table.values(y, **{over: lv, "seed": s}, **where)[0] for lv in levels])
        tau = kendall_tau(xs, ys) if len(levels) > 2 else math.nan
        taus.append(0.0 if not np.isfinite(tau) else tau)
    return np.array(taus)


# ---------------------------------------------------------------------------------------
# galleries and concepts (notebook 06)
# ---------------------------------------------------------------------------------------
def _kernel_blocks(aud: Audit, X_t):
    K = aud.kernel_rows(X_t)
    if K is not None:
        yield slice(0, K.shape[0]), K
        return
    yield from aud.kernel.blocks(aud._prep(X_t), aud.landmarks, memory_budget=aud.options.memory_budget)


def class_gallery(run: AuditRun, split, K: int = TOP_K) -> dict:
    """Attracting / repelling landmarks along the CAV of each test image's class, eq. (int-concept).

    For every class c the CAV v_c separates c from the other classes in the audited
    representation of the training split (:func:`concept_activation_vector`, unit norm; fit
    with labels: this evaluates the explanation). For each test point of class c: the K most
    attracting and K most repelling landmarks by IS(x̃_l, x_t; v_c), the share of each list
    with the test point's class, the class's frequency among the landmarks (chance), and the
    mean kernel similarity to the test point of the listed landmarks and of all landmarks of
    other classes. Also the checks IS ≥ 0 and |IS(·; v)| ≤ IS (Cauchy–Schwarz, unit v).

    Returns a dict of per-test-point arrays (``att_i``, ``att_s``, ``rep_i``, ``rep_s``,
    ``share_att``, ``share_rep``, ``chance``, ``sim_att``, ``sim_rep``, ``sim_other``),
    scalars (``rep_negative``, ``min_is``, ``max_is_violation``, ``kappa``) and ``summary``:
    :meth:`AuditRun.info` with the means over test points (and ``share_att_se``, the standard
    error of the attracting share), one row for a :class:`Table`.
    """
    aud, Xt, yt, yL = run.audit, split.X_test, np.asarray(split.y_test), run.y_landmarks
    ytr = np.asarray(split.y)
    C, n_t, K = int(split.n_classes), yt.size, min(int(K), run.m)
    Z = to_host(aud.embed(split.X))
    att_i, rep_i = np.zeros((n_t, K), np.int64), np.zeros((n_t, K), np.int64)
    att_s, rep_s = np.zeros((n_t, K)), np.zeros((n_t, K))
    min_is, viol = math.inf, 0.0
    for c in range(C):
        rows = np.flatnonzero(yt == c)
        if rows.size == 0 or not (ytr == c).any() or (ytr == c).all():
            continue
        v = concept_activation_vector(Z[ytr == c], Z[ytr != c])
        ar = aud.attracting_repelling(Xt, v, K)  # all test rows: the kernel block is cached
        att_i[rows], att_s[rows] = to_host(ar.attract_indices)[rows], to_host(ar.attract_scores)[rows]
        rep_i[rows], rep_s[rows] = to_host(ar.repel_indices)[rows], to_host(ar.repel_scores)[rows]
        top = aud.top_influential(Xt, K, v=v)
        sc, cs = to_host(top.scores)[rows], to_host(top.concept_scores)[rows]
        min_is = min(min_is, float(sc.min()))
        viol = max(viol, float((np.abs(cs) - sc).max() / max(float(sc.max()), 1e-300)))
    freq = np.bincount(yL, minlength=C) / yL.size
    sim_att, sim_rep, sim_other = np.empty(n_t), np.empty(n_t), np.empty(n_t)
    for sl, Kb in _kernel_blocks(aud, Xt):
        Kb = np.asarray(to_host(Kb))
        sim_att[sl] = np.take_along_axis(Kb, att_i[sl], axis=1).mean(axis=1)
        sim_rep[sl] = np.take_along_axis(Kb, rep_i[sl], axis=1).mean(axis=1)
        other = yL[None, :] != yt[sl, None]
        sim_other[sl] = (Kb * other).sum(axis=1) / np.maximum(other.sum(axis=1), 1)
    g = dict(att_i=att_i, att_s=att_s, rep_i=rep_i, rep_s=rep_s,
             share_att=(yL[att_i] == yt[:, None]).mean(axis=1),
             share_rep=(yL[rep_i] == yt[:, None]).mean(axis=1), chance=freq[yt],
             rep_negative=float((rep_s < 0).mean()), sim_att=sim_att, sim_rep=sim_rep,
             sim_other=sim_other, min_is=min_is, max_is_violation=viol, kappa=int(aud.kappa(yL, C)))
    g["summary"] = {**run.info(), **{k: float(np.mean(g[k])) for k in
                                     ("share_att", "share_rep", "chance", "sim_att", "sim_rep", "sim_other")},
                    "share_att_se": float(g["share_att"].std(ddof=1) / math.sqrt(n_t)),
                    **{k: g[k] for k in ("rep_negative", "min_is", "max_is_violation", "kappa")}}
    return g


def concept_separation(Z_tr, pos_tr, Z_te, pos_te, n_thresholds: int = 513):
    """A CAV fit on training representations and how well it separates held-out sets.

    v = :func:`concept_activation_vector` (Z_tr[pos], Z_tr[~pos]); the held-out score is the
    projection ⟨f(x), v⟩. Returns ``(v, auc, balanced_accuracy)``: the area under the ROC
    curve on the held-out rows and the balanced accuracy at the threshold that maximises it on
    the training rows (chance = 0.5 for both).
    """
    from sklearn.metrics import roc_auc_score

    Z_tr, Z_te = np.asarray(to_host(Z_tr)), np.asarray(to_host(Z_te))
    pos_tr, pos_te = np.asarray(pos_tr, bool), np.asarray(pos_te, bool)
    if pos_te.all() or not pos_te.any():
        raise ValueError("concept_separation: the held-out rows need both positives and negatives.")
    v = np.asarray(to_host(concept_activation_vector(Z_tr[pos_tr], Z_tr[~pos_tr])))
    s_tr, s_te = Z_tr @ v, Z_te @ v

    def bal(s, y, thr):
        p = s[:, None] >= thr[None, :]
        return 0.5 * (p[y].mean(axis=0) + (~p[~y]).mean(axis=0))

    cands = np.unique(np.quantile(s_tr, np.linspace(0, 1, n_thresholds)))
    thr = cands[int(np.argmax(bal(s_tr, pos_tr, cands)))]
    return v, float(roc_auc_score(pos_te, s_te)), float(bal(s_te, pos_te, np.array([thr]))[0])


def concept_landmarks(aud: Audit, X_pos, v, K: int = TOP_K):
    """Landmarks with the largest and most negative mean IS(x̃_l, x; v) over X_pos, eq. (int-concept).

    Returns ``(top, bottom, mean_scores)`` (host arrays; ``mean_scores`` has shape (m,)).
    """
    mean = np.asarray(to_host(aud.influence_scores(X_pos, v))).mean(axis=0)
    K = min(int(K), mean.size)
    return np.argsort(-mean)[:K], np.argsort(mean)[:K], mean


# ---------------------------------------------------------------------------------------
# alignment gaps (notebook 09)
# ---------------------------------------------------------------------------------------
def alignment_gaps(run: AuditRun, split, features, K: int = AG_TOP_K, n_boot: int = N_BOOT,
                   ci: float = CI_LEVEL) -> list:
    """Feature Alignment Gap of each raw feature, eqs. (int-feature), (int-gap), one dict each.

    Agreement is computed on the raw features of the split's Datasets (``X_raw``: numeric
    values, category codes); categorical features use equality. Random landmark sets and the
    bootstrap over test rows are seeded with the run's seed.
    """
    tr, te = split.train, split.test
    names = list(tr.raw_feature_names)
    L_raw = tr.X_raw[run.landmark_indices]
    out = []
    for f in features:
        if f not in names:
            raise ValueError(f"feature {f!r} is not a raw feature of {tr.name}; choose from {names}.")
        g = run.audit.alignment_gap(split.X_test, te.X_raw, L_raw, feature=names.index(f),
                                    categorical=f in tr.categorical, K=min(int(K), run.m),
                                    n_boot=n_boot, seed=run.seed, ci=ci)
        out.append({**run.info(), "feature": f, "gap": g.gap, "lo": g.ci_low, "hi": g.ci_high,
                    "psi": g.psi, "psi_rand": g.psi_rand, "n_valid": g.n_valid,
                    "normalised": g.gap / (1 - g.psi_rand) if g.psi_rand < 1 else math.nan})
    return out


def pair_comparisons(table: Table, high, low, key: str = "gap", by: str = "feature", **where) -> list:
    """The comparisons of "every level in ``high`` exceeds every level in ``low``": one
    :class:`~krepes_lib.claims.Claim` per pair (a, b), ``key`` over seeds at ``by`` = a vs at
    ``by`` = b (rows selected by ``where``). Decide with ``kr.claims.decide_all``."""
    return [Claim(f"{a} − {b}", "", a=table.values(key, **{by: a}, **where), b=table.values(key, **{by: b}, **where))
            for a in high for b in low]


# ---------------------------------------------------------------------------------------
# the λ sweep (notebook 08)
# ---------------------------------------------------------------------------------------
def entropy_sweep(split, loss, grid, seed: int = 0, *, sweep: str = "damping",
                  coefficients: str = "audit", entropy_of: str = "audited", damping: float | None = None,
                  lambda_off: float | None = None, h: int = 16, m="sqrt", kernel="rbf",
                  coords: str = "raw", n_batches: int = 4, batch_size: int = 256,
                  cg_max_iter: int | None = None, epochs: int = 2, lr: float = 1e-3,
                  label_fraction: float = 0.1, dtype=None) -> list:
    """Spectral entropy (eq. (int-entropy)) and linear probe along a sweep of λ, one seed.

    ``sweep="damping"``: λ = δ of the audit H_GN + δI (``coefficients="audit"``: one step
    from Ã₀; ``"trained"``: ``epochs`` of Newton-CG with damping δ). ``sweep="lambda_off"``:
    Barlow Twins' off-diagonal weight, audited at ``damping`` (default ``Options().damping``)
    or trained with Adam (``lr``).
    Every grid point of one seed uses the same landmarks and (through ``kr.audit(seed=...)``)
    the same view batches. ``entropy_of``: "audited" (H of (Ã₀ + ΔÃ)ᵀ(Ã₀ + ΔÃ)) or "delta"
    (H of ΔÃᵀΔÃ, audit only).

    Returns one dict per grid value (``value``, ``H``, ``H_audited``, ``probe``,
    ``loss_before``, ``loss_after``, ``loss_rose`` and, for audits, ``H_delta``,
    ``step_ratio``, ``cg_iterations``) followed by the PC initialisation (``value`` None).
    """
    from ..train import fit

    if sweep not in ("damping", "lambda_off"):
        raise ValueError(f"sweep={sweep!r}: use 'damping' or 'lambda_off'.")
    if coefficients not in ("audit", "trained"):
        raise ValueError(f"coefficients={coefficients!r}: use 'audit' or 'trained'.")
    if entropy_of not in ("audited", "delta") or (entropy_of == "delta" and coefficients != "audit"):
        raise ValueError(f"entropy_of={entropy_of!r}: use 'audited', or 'delta' with coefficients='audit'.")
    if sweep == "lambda_off" and loss != "barlow_twins":
        raise ValueError("sweep='lambda_off' is Barlow Twins' weight: use loss='barlow_twins'.")
    Xt, yt = split.X_test, split.y_test

    def probe(Z, Zt):
        return linear_probe(Z, split.y, Zt, yt, label_fraction=label_fraction, seed=seed)

    def hyper(v):
        if loss != "barlow_twins":
            return {}
        lam = v if sweep == "lambda_off" else lambda_off
        return {} if lam is None else {"lambda_off": lam}

    base = build_model(split.X, h, m=m, kernel=kernel, seed=seed, coords=coords, dtype=dtype)
    opts = Options() if cg_max_iter is None else Options(cg_max_iter=int(cg_max_iter))
    if sweep == "damping":  # δ is the swept variable: the unguarded step at each δ, eq. (audit-accept)
        opts = opts.replace(audit_step="full")
    rows = []
    for v in grid:
        obj = make_objective(loss, **hyper(v))
        delta = v if sweep == "damping" else (Options().damping if damping is None else damping)
        if coefficients == "audit":
            aud = audit(base, obj, split.X, augment=split.train, damping=delta, seed=seed,
                        n_batches=n_batches, batch_size=batch_size, options=opts)
            H_d = spectral_entropy(aud.delta_A)
            row = dict(H_audited=aud.spectral_entropy(), H_delta=H_d,
                       probe=probe(aud.embed(split.X), aud.embed(Xt)), **aud.summary())
        else:
            from ..model import NystromModel

            newton = sweep == "damping"
            model = NystromModel(base.nystrom, base.h, coords=coords if newton else "whitened")
            o = (opts.replace(optimizer="newton_cg", damping=delta) if newton
                 else opts.replace(optimizer="adam", lr=lr))
            hist = fit(model, split.X, obj, epochs=epochs, batch_size=batch_size, seed=seed,
                       augment=split.train, options=o, progress=False)
            row = dict(H_audited=spectral_entropy(model.A_tilde),
                       probe=probe(model.embed(split.X), model.embed(Xt)),
                       loss_before=float(hist.loss[0]), loss_after=float(hist.loss[-1]),
                       loss_rose=bool(hist.loss[-1] > hist.loss[0]))
        row["H"] = row["H_delta"] if entropy_of == "delta" else row["H_audited"]
        rows.append({"seed": seed, "value": float(v), **row})
    A0 = base.A_tilde
    rows.append({"seed": seed, "value": None, "H": spectral_entropy(A0), "H_audited": spectral_entropy(A0),
                 "probe": probe(base.embed(split.X), base.embed(Xt))})
    return rows


def peak_check(grid, H, P, sweep: str = "damping") -> dict:
    """Where the peaks of entropy and probe over the grid fall, and the rule's conditions.

    ``H`` and ``P`` are (seeds, G) arrays. The argmaxes of the seed means are compared: they
    *coincide* when equal or adjacent. With the damping sweep, δ → ∞ is the trivial no-step
    limit (the PC initialisation), so a peak **at or next to** the largest δ (grid index ≥ G −
    2) is *trivial*: if the entropy peak is trivial the claim is inconclusive (the entropy then
    only says "take no step"), and two trivial peaks "coincide only trivially". The chance that
    two independent uniform argmaxes on G points are equal or adjacent, (3G − 2)/G², is
    reported, and the accuracy cost of choosing by entropy, P[:, i_P] − P[:, i_H], over seeds
    (a paired t-test; i_P is chosen after seeing P, so a "cost" is biased upward).

    Returns ``i_H``, ``i_P``, ``coincide``, ``trivial_H``, ``trivial_P``, ``p_chance``,
    ``cost`` (a :class:`krepes_lib.stats.PairedTest`) and ``check``: the keyword arguments of
    :func:`krepes_lib.claims.decide_check` (``rule``, ``holds``, ``fails``,
    ``why_inconclusive``) — the verdict is the engine's.
    """
    from ..stats import paired_test

    grid = list(grid)
    H, P = np.atleast_2d(np.asarray(H, float)), np.atleast_2d(np.asarray(P, float))
    G = len(grid)
    if H.shape[1] != G or P.shape[1] != G or G < 3:
        raise ValueError(f"H and P must be (seeds, G) with G = len(grid) >= 3; got {H.shape}, {P.shape}, G = {G}.")
    i_H, i_P = int(np.argmax(H.mean(0))), int(np.argmax(P.mean(0)))
    coincide = abs(i_H - i_P) <= 1
    trivial = (lambda i: sweep == "damping" and i >= G - 2)
    tH, tP = trivial(i_H), trivial(i_P)
    why = ("the peaks coincide only trivially (both at or next to the largest δ, the no-step limit)" if tH and tP
           else "the entropy peaks at or next to the largest δ (the no-step limit), so it points to no step at all")
    rule = ("argmax over the grid of the seed means; coincide = same or adjacent grid point"
            + ("; a peak at or next to the largest δ is the trivial no-step limit (inconclusive)"
               if sweep == "damping" else "")
            + f"; chance of equal-or-adjacent on {G} points (3G − 2)/G² = {(3 * G - 2) / G**2:.2f}")
    cost = paired_test(P[:, i_P], P[:, i_H], "greater")
    return dict(i_H=i_H, i_P=i_P, coincide=coincide, trivial_H=tH, trivial_P=tP,
                p_chance=(3 * G - 2) / G**2, cost=cost,
                check=dict(rule=rule, holds=coincide and not tH, fails=not coincide and not tH,
                           why_inconclusive=why if tH else ""))
