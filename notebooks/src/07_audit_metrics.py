# %% [markdown]
# # Auditing SSL representations: class coverage, Precision@1 and confidence drop
#
# **What this reproduces.** The three evaluation metrics of the v3 paper's landmark audit
# (spec §6–§7, book chapter *Interpretability*):
#
# 1. **class coverage** $\kappa$ (eq. {eq}`lm-kappa`) of the landmarks ranked by
#    $\lVert\Delta\tilde A_{l,:}\rVert_2$, per SSL loss, next to the 10 %-label linear-probe
#    accuracy — the paper reports on CIFAR-10 Barlow Twins 12, VICReg 18, BYOL 26, SimCLR 27,
#    spectral contrastive 81, and "smaller $\kappa$ goes with higher accuracy";
# 2. **Precision@1** (eq. {eq}`int-p1`): how often the top-1 landmark by influence score
#    (eq. {eq}`int-is`) has the test point's class, against the top-1 landmark by cosine
#    similarity of representations — paper: Adult 0.872 vs 0.809, CoverType 0.772 vs 0.550;
# 3. **confidence drop** (eq. {eq}`int-drop`): removing a test point's 10 most influential
#    landmarks vs 10 random ones from a $k$-NN ($k = 50$) over the landmarks — paper: drops of
#    about $5\cdot10^{-2}$ vs $10^{-4}$, ratios of hundreds.
#
# **The pipeline** (the same for every section). A kernel on the raw inputs; $m$ landmarks by
# k-means++ seeding (eq. {eq}`lm-kmeanspp`) from the *training* split, $m = \sqrt{n}$ by default
# as in v3; the Nyström basis and the model $f(x) = \tilde A^\top k_x + \gamma$ at its PC
# initialisation $\tilde A_0 = U_h\Lambda_h^{-1/2}$ (eq. {eq}`nys-pc`); a few batches of pairs of
# augmented views of training rows; the **one-step GGN-Newton audit** (eq. {eq}`audit-step`)
#
# $$\operatorname{vec}(\Delta\tilde A) = -\big(H_{GN}(\tilde A_0) + \delta I\big)^{-1}\operatorname{vec}\big(\nabla_{\tilde A}L(\tilde A_0)\big)$$
#
# solved by conjugate gradient, with the damping $\delta$ acting on $\operatorname{vec}(\tilde A)$
# (`coords="raw"`, the paper's $J^\top QJ + \lambda I$). The metrics then read the coefficient
# matrix $A = \Delta\tilde A$ (influence, $\kappa$) and the audited representation
# $f(x) = (\tilde A_0 + \Delta\tilde A)^\top k_x + \gamma_0 + \Delta\gamma$ (probe, cosine baseline,
# $k$-NN). With `coefficients="trained"` the same cells use a model trained by `fit` (Adam,
# whitened coordinates) and $A = \tilde A$. Test points always come from a held-out split; they
# are never landmarks (checked).
#
# **How this differs from the paper.** The paper audits the empirical NTK of SSL-*pretrained*
# networks (CNNs for images, MLPs for tables; which ones is not public, nor are their weights),
# on 1M-row tables and CIFAR-10/ImageNet. Here the kernel is an RBF kernel on the raw inputs
# (median-heuristic bandwidth), so the "network" that is audited is the kernel model itself and
# the losses shape only the one Newton step from the PC initialisation; the data are what is
# available offline (scikit-learn digits or the MNIST test set split in two for images, Adult's
# official split and the 15,120-row CoverType subset, subsampled). The augmentations, the damping
# $\delta$, $h$, the number and size of the view batches, the CG cap and the bootstrap are our
# choices (the paper does not state them). Absolute values of $\kappa$ depend on $m$ and on the
# number of classes, so only orderings are compared with the paper. The defaults below run in
# well under a minute; the `quick` and `paper` profiles of `krepes reproduce` scale them up.

# %% tags=["parameters"]
kappa_datasets = ["digits"]  # image data for §1: digits, mnist_test, mnist_5k, cifar10 (JPEG, paper profile)
kappa_losses = ["barlow_twins", "vicreg", "byol", "simclr", "spectral_contrastive"]  # §1
p1_datasets = ["adult", "covtype"]  # §2 (tables)
drop_datasets = ["adult", "covtype", "digits"]  # §3 (the paper's table: Adult, CoverType, images)
audit_losses = ["barlow_twins"]  # SSL objective(s) audited in §2 and §3
coefficients = "audit"  # "audit": A is ΔÃ of the one-step GGN-Newton audit; "trained": A is Ã after fit
kernel = "rbf"  # any of krepes_lib.kernels.KERNELS (rbf/laplacian: median-heuristic bandwidth)
bandwidth_scale = 1.0  # rbf/laplacian bandwidth: this factor times the median heuristic
m = None  # landmarks; None: round(sqrt(n_train)) (v3), raised to drop_k + drop_n_remove in §3
h = 16  # representation dimensions
damping = 1e-2  # δ of H_GN + δI in the audit step (ours; the paper's λ is not public)
coords = "raw"  # "raw": δI on vec(Ã) as in the paper; "whitened": δI on W, where Ã is U Λ^{-1/2} W
n_batches = 2  # batches of augmented view pairs that define L and H_GN in the audit
batch_size = 128  # samples per batch (two views each)
cg_max_iter = 100  # conjugate-gradient iteration cap of the audit (relative tolerance 1e-6)
epochs = 3  # Adam epochs (coefficients "trained" only)
lr = 1e-3  # Adam learning rate (coefficients "trained" only)
seeds = [0, 1]  # each seed draws landmarks, view batches and the labelled subset
n_train = 1000  # training rows per dataset (landmarks and views come from here; None: all)
n_test = 300  # held-out rows per dataset (None: the official test split, else 20 % of rows)
label_fraction = 0.1  # labelled share of each class for the linear probe (§1)
drop_k = 50  # neighbours of the k-NN in the confidence drop (paper: 50)
drop_n_remove = 10  # landmarks removed per test point (paper: 10)
n_boot = 1000  # bootstrap resamples of test points for the intervals of §2 and §3
dtype = "float64"  # working precision (CG is better behaved in float64)

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

from krepes_lib import data, interpret as INT, losses as LOSSES
from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, to_device, to_host
from krepes_lib.evaluate import linear_probe
from krepes_lib.ggn import one_step_newton
from krepes_lib.kernels import make_kernel, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.results import PAPER, save_figure, save_results
from krepes_lib.train import SINGLE_VIEW, fit

with warnings.catch_warnings():  # fit's progress bar module warns when ipywidgets is absent
    warnings.simplefilter("ignore")
    import tqdm.auto  # noqa: F401

xp = default_xp()  # CuPy on a GPU, NumPy otherwise
print("array backend:", xp.__name__)
assert coefficients in ("audit", "trained"), coefficients
unknown = sorted((set(kappa_losses) | set(audit_losses)) - set(LOSSES.NAMES))
assert not unknown, f"unknown loss(es) {unknown}; choose from {LOSSES.NAMES}"
t_start = time.perf_counter()

# %% [markdown]
# ## Data, splits and the audit
#
# Datasets with an official split (Adult, CIFAR-10) use it, subsampled to `n_train` / `n_test`
# rows (stratified). The others are split once (stratified, split seed 0, the same for every
# seed): `n_test` held-out rows, then `n_train` training rows from the rest. `explain` below is
# the whole pipeline for one (dataset, loss, seed); its results are cached, so a model audited
# for one section is reused by the next. The view batches are drawn on the host from
# `default_rng([seed, 7])`.

# %%
OFFICIAL_SPLIT = {"adult", "cifar10"}


def load_split(name):
    """Training and held-out rows of a dataset, with their row ids in a common index space."""
    if name in OFFICIAL_SPLIT:
        tr = data.load(name, split="train", n=n_train, seed=0)
        te = data.load(name, split="test", n=n_test, seed=0)
        # different files: ids are (file, row) pairs encoded as ±(row + 1)
        return tr, tr.X, tr.y, te.X, te.y, 1 + np.arange(len(tr)), -1 - np.arange(len(te))
    D = data.load(name)
    N = len(D)
    nte = round(0.2 * N) if n_test is None else int(n_test)
    ntr = N - nte if n_train is None else int(n_train)
    if ntr + nte > N:  # scale both down, keeping their ratio
        nte = int(N * nte / (ntr + nte))
        ntr = N - nte
    te_idx = data.stratified_indices(D.y, nte, 0)
    rest = np.setdiff1d(np.arange(N), te_idx)
    tr_idx = rest[data.stratified_indices(D.y[rest], min(ntr, rest.size), 1)]
    return D, D.X[tr_idx], D.y[tr_idx], D.X[te_idx], D.y[te_idx], tr_idx, te_idx


def make_kern(name, X):
    if name in ("rbf", "laplacian"):
        return make_kernel(name, sigma=bandwidth_scale * median_sigma(X))
    return make_kernel(name)


splits = {}


def get_split(name):
    if name not in splits:
        D, Xtr, ytr, Xte, yte, id_tr, id_te = load_split(name)
        assert np.intersect1d(id_tr, id_te).size == 0, "held-out rows overlap the training rows"
        splits[name] = dict(
            D=D, C=len(D.classes), ytr=ytr, yte=yte, id_tr=id_tr, id_te=id_te,
            Xtr=to_device(Xtr, xp, dtype=dtype), Xte=to_device(Xte, xp, dtype=dtype),
            kern=make_kern(kernel, Xtr), aug=make_augmenter(D),
            chance=float(np.bincount(yte).max() / yte.size))
        S = splits[name]
        kind = f"image {D.image_shape}" if D.image_shape else "table"
        print(f"{name}: {len(ytr)} train / {len(yte)} held-out rows, d = {Xtr.shape[1]}, "
              f"C = {S['C']}, {kind}, {S['kern']}")
    return splits[name]


def m_for(name, for_drop=False):
    """Landmarks for a dataset: m (or √n_train), at least drop_k + drop_n_remove for §3."""
    n = len(get_split(name)["ytr"])
    m_ds = int(round(np.sqrt(n))) if m is None else int(m)
    if for_drop:
        m_ds = max(m_ds, drop_k + drop_n_remove)
    return min(m_ds, n)


def view_batches(S, loss, seed):
    rng = np.random.default_rng([seed, 7])
    Xtr, out = S["Xtr"], []
    B = min(batch_size, Xtr.shape[0])
    for _ in range(n_batches):
        Xb = Xtr[xp.asarray(rng.choice(Xtr.shape[0], size=B, replace=False))]
        # KPCA / KAE have one un-augmented view (spec §3); the SSL losses two augmented ones
        views = (Xb,) if loss in SINGLE_VIEW else (S["aug"](Xb, rng), S["aug"](Xb, rng))
        out.append(views)
    return out


cache = {}


def explain(name, loss, seed, m_ds):
    """Landmarks, Nyström basis, PC init and the audit (or training) for one configuration.

    Returns a dict: the landmarks and their labels, the kernel, A (ΔÃ or Ã: what influence
    and κ read), A_repr and gamma (the representation f(x) = A_reprᵀk_x + γ), and diagnostics.
    """
    key = (name, loss, seed, m_ds)
    if key in cache:
        return cache[key]
    S = get_split(name)
    t0 = time.perf_counter()
    sel = select_landmarks(S["Xtr"], m_ds, method="kmeans++", seed=seed)
    nys = Nystrom(S["kern"], sel.points, dtype=dtype)
    h_ds = min(h, nys.rank)
    out = dict(L=sel.points, yL=S["ytr"][sel.indices], ids_L=S["id_tr"][sel.indices], nys=nys, m=nys.m,
               h=h_ds)
    if coefficients == "audit":
        model = NystromModel(nys, h=h_ds, coords=coords, predictor=(loss == "byol"),
                             decoder=(loss == "kae"))
        res = one_step_newton(model, loss, view_batches(S, loss, seed), damping=damping,
                              max_iter=cg_max_iter)
        A0 = model.A_tilde
        out.update(A=res.delta_A, A_repr=A0 + res.delta_A, gamma=model.gamma + res.delta_gamma,
                   A0=A0, loss_before=res.loss_before, loss_after=res.loss_after,
                   cg_iter=res.cg.iterations, cg_converged=bool(np.all(res.cg.converged)),
                   step_ratio=float(xp.linalg.norm(res.delta_A) / xp.linalg.norm(A0)))
    else:
        model = NystromModel(nys, h=h_ds, predictor=(loss == "byol"), decoder=(loss == "kae"))
        hist = fit(model, S["Xtr"], loss, epochs=epochs, batch_size=batch_size, seed=seed, lr=lr,
                   augment=None if loss in SINGLE_VIEW else S["aug"], progress=False)
        out.update(A=model.A_tilde, A_repr=model.A_tilde, gamma=model.gamma,
                   loss_before=hist.loss[0], loss_after=hist.loss[-1])
    out["seconds"] = time.perf_counter() - t0
    # test points are never landmarks: the landmarks are training rows
    assert np.intersect1d(out["ids_L"], S["id_te"]).size == 0
    cache[key] = out
    return out


def features(r, X):
    return r["nys"].features(X, r["A_repr"], r["gamma"])

# %% [markdown]
# ## 1. Class coverage κ per loss, next to the linear probe
#
# For every image dataset, loss and seed: the audit, then $\kappa$ — the smallest number of
# landmarks, ranked by $\lVert A_{l,:}\rVert_2$, that contains every class (eq. {eq}`lm-kappa`;
# $C \le \kappa \le m$, and $m + 1$ if some class has no landmark) — and the linear-probe
# accuracy of the audited representation (logistic regression on 10 % of the training labels,
# evaluated on the held-out split). The PC initialisation's probe is printed as a reference:
# the audit step moves the representation away from it.
#
# **Verdict rule, fixed before running.** The paper's claim is an ordering across losses. We
# compute Kendall's $\tau$ (and Spearman's $\rho$) between the mean $\kappa$ and the mean probe
# accuracy over the losses: the claim *holds* if $\tau \le -0.6$ (at least 8 of the 10 loss
# pairs ordered as claimed for 5 losses), is *in the claimed direction but weak* if
# $-0.6 < \tau < 0$, and *does not hold* if $\tau \ge 0$. Separately we ask whether our
# $\kappa$ ranks the losses as the paper's CIFAR-10 $\kappa$ does (Kendall's $\tau$ between the
# two, same thresholds with the sign flipped).

# %%
kappa_runs = {}  # (dataset, loss) -> list over seeds of dicts
pc_probe = {}
for ds in kappa_datasets:
    S = get_split(ds)
    m_ds = m_for(ds)
    for seed in seeds:
        for loss in kappa_losses:
            r = explain(ds, loss, seed, m_ds)
            kap = INT.class_coverage_from_coefficients(r["A"], r["yL"], n_classes=S["C"])
            acc = linear_probe(features(r, S["Xtr"]), S["ytr"], features(r, S["Xte"]), S["yte"],
                               label_fraction=label_fraction, seed=seed)
            kappa_runs.setdefault((ds, loss), []).append(dict(
                kappa=kap, probe=acc, m=r["m"], loss_before=r["loss_before"],
                loss_after=r["loss_after"], cg_iter=r.get("cg_iter"), seconds=r["seconds"],
                step_ratio=r.get("step_ratio")))
        if coefficients == "audit":
            A0 = r["A0"]
            pc_probe.setdefault(ds, []).append(linear_probe(
                r["nys"].features(S["Xtr"], A0), S["ytr"], r["nys"].features(S["Xte"], A0), S["yte"],
                label_fraction=label_fraction, seed=seed))
    print(f"{ds}: m = {m_ds}, done after {time.perf_counter() - t_start:.0f} s")


def ms(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std())


kappa_summary = {}
paper_kappa = PAPER["cifar10_kappa"]
for ds in kappa_datasets:
    C, m_ds = get_split(ds)["C"], kappa_runs[ds, kappa_losses[0]][0]["m"]
    how = f"audit, δ = {damping:g}, {coords} coordinates" if coefficients == "audit" else f"trained, {epochs} epochs"
    print(f"\n{ds} (C = {C}, m = {m_ds}, h = {h}, {how}, "
          f"{len(seeds)} seed(s); mean ± std over seeds)")
    if ds in pc_probe:
        print(f"  PC initialisation probe: {100 * ms(pc_probe[ds])[0]:.2f} ± {100 * ms(pc_probe[ds])[1]:.2f} %")
    what = "loss L(Ã₀)→L(Ã₀+ΔÃ)" if coefficients == "audit" else "loss epoch 1→last"
    print(f"  {'loss':<22}{'κ':>14}{'κ/m':>7}{'probe %':>16}{what:>24}"
          f"{'paper κ (CIFAR-10)':>20}")
    for loss in kappa_losses:
        rs = kappa_runs[ds, loss]
        k_m, k_s = ms([r["kappa"] for r in rs])
        a_m, a_s = ms([r["probe"] for r in rs])
        kappa_summary[ds, loss] = dict(kappa=k_m, kappa_std=k_s, probe=a_m, probe_std=a_s)
        lb, la = ms([r["loss_before"] for r in rs])[0], ms([r["loss_after"] for r in rs])[0]
        print(f"  {loss:<22}{k_m:>8.1f} ± {k_s:<4.1f}{k_m / m_ds:>7.2f}{100 * a_m:>9.2f} ± {100 * a_s:<5.2f}"
              f"{lb:>11.4g} → {la:<10.4g}{str(paper_kappa.get(loss, '—')):>16}")

# %% [markdown]
# Markers: mean over seeds; bars: one standard deviation. The paper's CIFAR-10 ordering is
# Barlow Twins < VICReg < BYOL < SimCLR < spectral contrastive in $\kappa$, with Barlow Twins the
# most accurate.

# %%
if kappa_datasets:  # nothing to plot for an empty list
    fig, axes = plt.subplots(1, len(kappa_datasets), figsize=(5.2 * len(kappa_datasets), 4.2), squeeze=False)
    for ax, ds in zip(axes[0], kappa_datasets):
        for j, loss in enumerate(kappa_losses):
            s = kappa_summary[ds, loss]
            ax.errorbar(s["kappa"], 100 * s["probe"], xerr=s["kappa_std"], yerr=100 * s["probe_std"],
                        fmt="o", capsize=3, color=f"C{j}", label=loss)
        ax.set_xlabel(r"class coverage $\kappa$ (landmarks ranked by $\|A_{l,:}\|_2$)")
        ax.set_ylabel(f"linear-probe accuracy (%), {label_fraction:.0%} labels")
        ax.set_title(f"{ds}: κ vs probe accuracy ({coefficients})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "07_audit_metrics_kappa")
    plt.show()

# %%
def tau_verdict(tau, sign=-1):
    """Verdict of the rule above; sign=-1: the claim is a negative association."""
    t = sign * tau
    if not np.isfinite(tau):
        return "undetermined (fewer than 3 losses, or a constant ranking)"
    if t >= 0.6:
        return "holds"
    if t > 0:
        return "in the claimed direction but weak"
    return "does not hold"


claims = []
kappa_corr = {}
for ds in kappa_datasets:
    k = np.array([kappa_summary[ds, l]["kappa"] for l in kappa_losses])
    a = np.array([kappa_summary[ds, l]["probe"] for l in kappa_losses])
    tau = INT.kendall_tau(k, a) if len(k) > 2 else float("nan")  # a ranking needs 3+ losses
    rho = float(spearmanr(k, a)[0]) if len(k) > 2 else float("nan")
    kappa_corr[ds] = dict(kendall_tau=tau, spearman_rho=rho)
    print(f"{ds}: κ vs probe accuracy across {len(kappa_losses)} losses: Kendall τ = {tau:+.2f}, "
          f"Spearman ρ = {rho:+.2f} → {tau_verdict(tau)}")
    claims.append(dict(
        claim=f"{ds}: smaller κ goes with higher linear-probe accuracy across SSL losses",
        paper="CIFAR-10: κ BT 12 < VICReg 18 < BYOL 26 < SimCLR 27 < spectral 81; BT most accurate (91.18 %)",
        ours="; ".join(f"{l} κ {kappa_summary[ds, l]['kappa']:.1f}, {100 * kappa_summary[ds, l]['probe']:.1f} %"
                       for l in kappa_losses) + f"; Kendall τ {tau:+.2f}, Spearman ρ {rho:+.2f}",
        verdict=tau_verdict(tau)))
    common = [l for l in kappa_losses if l in paper_kappa]
    if len(common) >= 3:
        tau_p = INT.kendall_tau([kappa_summary[ds, l]["kappa"] for l in common], [paper_kappa[l] for l in common])
        kappa_corr[ds]["tau_vs_paper_kappa"] = tau_p
        print(f"{ds}: our κ vs the paper's CIFAR-10 κ over {len(common)} losses: Kendall τ = {tau_p:+.2f} "
              f"→ {tau_verdict(tau_p, sign=+1)}")
        claims.append(dict(
            claim=f"{ds}: κ orders the SSL losses as on CIFAR-10 in the paper",
            paper="BT 12 < VICReg 18 < BYOL 26 < SimCLR 27 < spectral 81",
            ours=", ".join(f"{l} {kappa_summary[ds, l]['kappa']:.1f}" for l in common)
            + f"; Kendall τ with the paper's κ {tau_p:+.2f}",
            verdict=tau_verdict(tau_p, sign=+1)))

# %% [markdown]
# ## 2. Precision@1: top-1 landmark by influence vs by cosine similarity
#
# For each held-out test point $x_t$, KREPES' top-1 landmark maximises
# $\operatorname{IS}(\tilde x_l, x_t) = |k(\tilde x_l, x_t)|\,\lVert A_{l,:}\rVert_2$ (eq. {eq}`int-is`);
# the baseline's maximises the cosine similarity between $f(x_t)$ and $f(\tilde x_l)$ in the
# audited representation. Precision@1 (eq. {eq}`int-p1`) is the share of test points whose top-1
# landmark has their class. `interpret.precision_at_1` gives the two shares; we also recompute
# the per-point hits (and check they add up to the library's numbers) to get a **paired
# bootstrap interval** of the difference over test points (the per-point hit difference is
# averaged over seeds first). A dataset that §3 also uses gets §3's $m$ (at least $k + 10$), so
# one audit serves both sections. For reference, "random" is the precision of a landmark drawn
# uniformly: $\sum_c p_{\text{test}}(c)\,p_{\text{landmarks}}(c)$. "Distinct top-1" counts the
# landmarks that are the top-1 of at least one test point (mean over seeds): IS multiplies the
# kernel value by the landmark's row norm, so a few landmarks with large $\lVert A_{l,:}\rVert$
# can be the top-1 of many points when the kernel varies little across landmarks.
#
# **Verdict rule.** KREPES *beats* the baseline if the 95 % bootstrap interval of
# P@1(KREPES) − P@1(cosine) lies above 0, *loses* if it lies below 0, and the comparison is
# *unresolved* otherwise; the size of the gap is compared with the paper's (+6.3 points on
# Adult, +22.2 on CoverType).

# %%
PAPER_NAMES = {"adult": "Adult", "covtype": "CoverType", "mnist_test": "CIFAR-10", "mnist_5k": "CIFAR-10",
               "digits": "CIFAR-10", "cifar10": "CIFAR-10"}


def per_point_hits(r, S):
    """(KREPES hits, cosine hits) per test point (host arrays of 0/1) and the number of
    distinct landmarks each method picks as a top-1."""
    top1 = to_host(INT.top_influential(S["kern"], r["L"], S["Xte"], r["A"], K=1).indices[:, 0])
    Zt, ZL = features(r, S["Xte"]), r["nys"].features(r["L"], r["A_repr"], r["gamma"])
    Zt = Zt / xp.maximum(xp.linalg.norm(Zt, axis=1, keepdims=True), 1e-300)
    ZL = ZL / xp.maximum(xp.linalg.norm(ZL, axis=1, keepdims=True), 1e-300)
    cos1 = to_host(xp.argmax(Zt @ ZL.T, axis=1))
    return ((r["yL"][top1] == S["yte"]).astype(float), (r["yL"][cos1] == S["yte"]).astype(float),
            np.unique(top1).size, np.unique(cos1).size)


def boot_ci(diff, seed=0):
    """Percentile 95 % bootstrap interval of the mean of a per-test-point vector."""
    if n_boot <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng([seed, 11])
    means = diff[rng.integers(0, diff.size, size=(int(n_boot), diff.size))].mean(axis=1)
    return tuple(float(v) for v in np.percentile(means, [2.5, 97.5]))


p1 = {}
for ds in p1_datasets:
    S = get_split(ds)
    m_ds = m_for(ds, for_drop=ds in drop_datasets)  # share the model with §3 when possible
    for loss in audit_losses:
        rows, hk, hc = [], [], []
        for seed in seeds:
            r = explain(ds, loss, seed, m_ds)
            res = INT.precision_at_1(S["kern"], r["L"], S["Xte"], r["A"], S["yte"], r["yL"],
                                     A_repr=r["A_repr"], gamma=r["gamma"])
            k_hits, c_hits, n_top1, n_cos1 = per_point_hits(r, S)
            # the per-point recomputation must agree with the library (up to exact float ties)
            assert abs(k_hits.mean() - res.krepes) <= 1.0 / len(k_hits) + 1e-12, (k_hits.mean(), res)
            assert abs(c_hits.mean() - res.cosine) <= 1.0 / len(c_hits) + 1e-12, (c_hits.mean(), res)
            pL = np.bincount(r["yL"], minlength=S["C"]) / r["m"]
            pt = np.bincount(S["yte"], minlength=S["C"]) / len(S["yte"])
            rows.append(dict(krepes=res.krepes, cosine=res.cosine, random=float(pL @ pt), m=r["m"],
                             distinct_is=n_top1, distinct_cos=n_cos1))
            hk.append(k_hits)
            hc.append(c_hits)
        diff = np.mean(hk, axis=0) - np.mean(hc, axis=0)
        lo, hi = boot_ci(diff)
        p1[ds, loss] = dict(
            krepes=ms([x["krepes"] for x in rows]), cosine=ms([x["cosine"] for x in rows]),
            random=ms([x["random"] for x in rows])[0], diff=float(diff.mean()), ci=(lo, hi),
            m=rows[0]["m"], per_seed=rows, distinct_is=ms([x["distinct_is"] for x in rows])[0],
            distinct_cos=ms([x["distinct_cos"] for x in rows])[0])
print(f"Precision@1 ({coefficients}, mean ± std over {len(seeds)} seed(s); Δ with a 95 % paired "
      f"bootstrap interval over test points)")
print(f"{'dataset':<10}{'loss':<15}{'m':>5}{'KREPES':>16}{'cosine':>16}{'random':>8}"
      f"{'Δ (points)':>24}{'distinct top-1 IS/cos':>23}{'paper KREPES / cosine':>24}")
for (ds, loss), v in p1.items():
    pk = PAPER["precision_at_1"].get(PAPER_NAMES.get(ds, ""), None)
    paper_txt = f"{pk[0]:.3f} / {pk[1]:.3f}" if pk else "—"
    print(f"{ds:<10}{loss:<15}{v['m']:>5}{v['krepes'][0]:>10.3f} ± {v['krepes'][1]:<4.3f}"
          f"{v['cosine'][0]:>10.3f} ± {v['cosine'][1]:<4.3f}{v['random']:>8.3f}"
          f"{100 * v['diff']:>+9.1f} [{100 * v['ci'][0]:+.1f}, {100 * v['ci'][1]:+.1f}]"
          f"{v['distinct_is']:>13.0f} / {v['distinct_cos']:<7.0f}{paper_txt:>22}")

# %%
if p1:
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(p1), 4.0))
    labels = [f"{ds}\n{loss}" for ds, loss in p1]
    x = np.arange(len(p1))
    for off, key, col in ((-0.2, "krepes", "C0"), (0.2, "cosine", "C1")):
        ax.bar(x + off, [v[key][0] for v in p1.values()], width=0.38, yerr=[v[key][1] for v in p1.values()],
               capsize=3, color=col, label="KREPES (top-1 by IS)" if key == "krepes" else "cosine baseline")
    for i, (ds, loss) in enumerate(p1):
        pk = PAPER["precision_at_1"].get(PAPER_NAMES.get(ds, ""), None)
        if pk:
            ax.plot([i - 0.4, i], [pk[0]] * 2, "k-", lw=2)
            ax.plot([i, i + 0.4], [pk[1]] * 2, "k--", lw=2)
        ax.plot([i - 0.4, i + 0.4], [p1[ds, loss]["random"]] * 2, ":", color="gray")
    ax.set_xticks(x, labels)
    ax.set_xlabel("dataset and audited SSL loss (bars: mean ± std over seeds)")
    ax.set_ylabel("Precision@1 (share of test points)")
    ax.set_ylim(0, 1.2)
    ax.set_title("Precision@1; black: paper (solid KREPES, dashed cosine), dotted: random landmark")
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.tight_layout()
    save_figure(fig, "07_audit_metrics_p1")
    plt.show()

# %%
for (ds, loss), v in p1.items():
    pk = PAPER["precision_at_1"].get(PAPER_NAMES.get(ds, ""), None)
    lo, hi = v["ci"]
    d = 100 * v["diff"]
    if lo > 0:
        verdict = f"KREPES beats the baseline here by {d:.1f} points"
    elif hi < 0:
        verdict = f"the baseline beats KREPES here by {-d:.1f} points"
    else:
        verdict = "unresolved: the interval of the difference contains 0"
    if pk:
        verdict += f" (paper: +{100 * (pk[0] - pk[1]):.1f})"
    claims.append(dict(
        claim=f"{ds} ({loss}): Precision@1 of the top-1 landmark by IS beats the cosine nearest landmark",
        paper=f"{pk[0]:.3f} vs {pk[1]:.3f}" if pk else "not reported",
        ours=f"{v['krepes'][0]:.3f} ± {v['krepes'][1]:.3f} vs {v['cosine'][0]:.3f} ± {v['cosine'][1]:.3f} "
             f"(Δ {d:+.1f} points, 95 % CI [{100 * lo:+.1f}, {100 * hi:+.1f}]; m = {v['m']})",
        verdict=verdict))
    print(f"- {ds} ({loss}): {verdict}")

# %% [markdown]
# ## 3. Confidence drop: top-10 landmarks by influence vs 10 random ones
#
# A $k$-NN ($k$ = `drop_k` = 50, cosine similarity) over the landmarks in the audited
# representation gives each test point the share of its $k$ nearest landmarks that carry its
# predicted class. Removing the point's 10 landmarks of largest IS, or 10 random landmarks,
# lowers that share by $\operatorname{drop}_{\mathrm{top}}$ or $\operatorname{drop}_{\mathrm{rand}}$
# (eq. {eq}`int-drop`, `interpret.confidence_drop`). This needs $m \ge k + 10$ landmarks, so
# $m$ is raised to that where $\sqrt{n}$ is smaller (printed). The interval is a paired bootstrap
# of $\operatorname{drop}_{\mathrm{top}} - \operatorname{drop}_{\mathrm{rand}}$ over test points.
#
# **Verdict rule.** The *direction* is reproduced if that interval lies above 0; the paper's
# *magnitude* ("ratios of hundreds") is reproduced if the ratio of the mean drops is at least
# 100. With $m$ of order 100 and $k = 50$, a random removal takes a sizeable share of a point's
# neighbours, so random drops here are far from the paper's $10^{-4}$ (book,
# *Interpretability*, exercise 4).

# %%
drops = {}
for ds in drop_datasets:
    S = get_split(ds)
    m_ds = m_for(ds, for_drop=True)
    for loss in audit_losses:
        rows, pt, pr = [], [], []
        for seed in seeds:
            r = explain(ds, loss, seed, m_ds)
            cd = INT.confidence_drop(S["kern"], r["L"], S["Xte"], r["A"], r["yL"], k=drop_k,
                                     n_remove=drop_n_remove, A_repr=r["A_repr"], gamma=r["gamma"],
                                     seed=seed)
            rows.append(dict(top=cd.top, random=cd.random, ratio=cd.ratio, confidence=cd.confidence,
                             max_abs_drop=float(max(np.abs(cd.per_point_top).max(),
                                                    np.abs(cd.per_point_random).max()))))
            pt.append(cd.per_point_top)
            pr.append(cd.per_point_random)
        diff = np.mean(pt, axis=0) - np.mean(pr, axis=0)
        top, rnd = ms([x["top"] for x in rows]), ms([x["random"] for x in rows])
        ratio = top[0] / rnd[0] if rnd[0] > 0 else float("nan")  # undefined unless random drop > 0
        drops[ds, loss] = dict(top=top, random=rnd, ratio=ratio,
                               confidence=ms([x["confidence"] for x in rows])[0], ci=boot_ci(diff, 1),
                               m=m_ds, per_seed=rows)
print(f"Confidence drop ({coefficients}; k = {drop_k}, {drop_n_remove} removed; mean ± std over "
      f"{len(seeds)} seed(s))")
print(f"{'dataset':<12}{'loss':<15}{'m':>5}{'conf.':>7}{'drop random':>18}{'drop top-10':>18}{'ratio':>8}"
      f"   paper random / top (ratio)")
for (ds, loss), v in drops.items():
    pd_ = PAPER["v3_confidence_drop"].get(PAPER_NAMES.get(ds, ""), None)
    paper_txt = f"{pd_[0]:.4f} / {pd_[1]:.4f} ({pd_[1] / pd_[0]:.0f}×)" if pd_ else "—"
    if pd_ and PAPER_NAMES[ds] == "CIFAR-10" and ds != "cifar10":
        paper_txt += " [CIFAR-10]"
    print(f"{ds:<12}{loss:<15}{v['m']:>5}{v['confidence']:>7.3f}{v['random'][0]:>11.4f} ± {v['random'][1]:<5.4f}"
          f"{v['top'][0]:>11.4f} ± {v['top'][1]:<5.4f}{v['ratio']:>8.1f}   {paper_txt}")

# %%
if drops:
    fig, ax = plt.subplots(figsize=(1.6 + 1.8 * len(drops), 4.0))
    x = np.arange(len(drops))
    ax.bar(x - 0.2, [v["random"][0] for v in drops.values()], width=0.38,
           yerr=[v["random"][1] for v in drops.values()], capsize=3, color="C7", label="10 random landmarks")
    ax.bar(x + 0.2, [v["top"][0] for v in drops.values()], width=0.38,
           yerr=[v["top"][1] for v in drops.values()], capsize=3, color="C3", label="top-10 by IS")
    ax.set_xticks(x, [f"{ds}\n{loss}\nm = {v['m']}" for (ds, loss), v in drops.items()])
    ax.set_xlabel("dataset, audited SSL loss and m (bars: mean ± std over seeds)")
    ax.set_ylabel(f"mean drop of the {drop_k}-NN confidence")
    ax.set_title("Confidence drop after removing landmarks (eq. int-drop)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, "07_audit_metrics_drop")
    plt.show()

# %%
for (ds, loss), v in drops.items():
    pd_ = PAPER["v3_confidence_drop"].get(PAPER_NAMES.get(ds, ""), None)
    lo, hi = v["ci"]
    direction = ("direction reproduced (top-10 removal costs more, 95 % CI of the difference above 0)"
                 if lo > 0 else "direction not reproduced (CI of the difference not above 0)")
    if not v["random"][0] > 0:
        magnitude = "no ratio: the random removal does not lower the confidence on average"
    elif v["ratio"] >= 100:
        magnitude = "ratio ≥ 100 as in the paper"
    else:
        magnitude = f"ratio {v['ratio']:.1f}, far below the paper's hundreds"
    claims.append(dict(
        claim=f"{ds} ({loss}): removing the top-10 landmarks by IS drops the {drop_k}-NN confidence far "
              f"more than removing 10 random ones",
        paper=(f"{PAPER_NAMES[ds]}: random {pd_[0]:.4f} vs KREPES {pd_[1]:.4f} ({pd_[1] / pd_[0]:.0f}×)"
               if pd_ else "not reported"),
        ours=f"random {v['random'][0]:.4f} vs top-10 {v['top'][0]:.4f} (ratio {v['ratio']:.1f}; "
             f"Δ 95 % CI [{lo:+.4f}, {hi:+.4f}]; m = {v['m']})",
        verdict=f"{direction}; {magnitude}"))
    print(f"- {ds} ({loss}): {direction}; {magnitude}")

# %% [markdown]
# ## What must hold
#
# The notebook's test (nbval runs it at the default parameters). These are checks of the
# pipeline and of the metrics' ranges, not of the paper's claims: the audit step is finite and
# non-zero; $C \le \kappa \le m + 1$; probe accuracies and precisions are shares; every probe of
# an audited representation is above chance (the majority-class share) by at least 0.05, and
# above 50 % on the handwritten digits (digits, MNIST) — CIFAR-10 pixels under an RBF kernel
# give only about 25–35 %;
# every single drop is bounded by $|\operatorname{drop}| \le n_{\text{remove}}/k$ (removing 10
# landmarks changes at most 10 of the $k$ neighbours); the mean top-10 drop is not clearly
# negative ($> -0.05$). The mean drop *can* be slightly negative: a point gains confidence when
# the removed landmarks voted against its predicted class (it happens on Adult with the `quick`
# profile), so "$\ge 0$" is a finding, not an invariant. Whether the top-10 removal beats the
# random one is the paper's claim, reported above and not asserted.

# %%
for ds in kappa_datasets:
    C, chance = get_split(ds)["C"], get_split(ds)["chance"]
    for loss in kappa_losses:
        for r in kappa_runs[ds, loss]:
            assert C <= r["kappa"] <= r["m"] + 1, (ds, loss, r["kappa"])
            assert 0 <= r["probe"] <= 1 and r["probe"] > chance + 0.05, (ds, loss, r["probe"], chance)
            assert ds not in ("digits", "mnist_test", "mnist_5k") or r["probe"] > 0.5, (ds, loss, r["probe"])
            assert np.isfinite(r["loss_after"]), (ds, loss)
for r in cache.values():
    assert bool(xp.isfinite(r["A"]).all()) and float(xp.abs(r["A"]).max()) > 0
for v in p1.values():
    for row in v["per_seed"]:
        assert 0 <= row["krepes"] <= 1 and 0 <= row["cosine"] <= 1
for (ds, loss), v in drops.items():
    assert all(row["max_abs_drop"] <= drop_n_remove / drop_k + 1e-9 for row in v["per_seed"]), (ds, loss)
    assert v["top"][0] > -0.05, (ds, loss, v["top"])
    assert 0 < v["confidence"] <= 1

# %%
total_seconds = time.perf_counter() - t_start
save_results(
    "07_audit_metrics",
    {
        "claims": claims,
        "kappa": {f"{ds}|{loss}": v for (ds, loss), v in kappa_summary.items()},
        "kappa_per_seed": {f"{ds}|{loss}": v for (ds, loss), v in kappa_runs.items()},
        "kappa_correlation": kappa_corr,
        "pc_init_probe": {ds: v for ds, v in pc_probe.items()},
        "precision_at_1": {f"{ds}|{loss}": {k: v[k] for k in ("krepes", "cosine", "random", "diff", "ci", "m")}
                           for (ds, loss), v in p1.items()},
        "confidence_drop": {f"{ds}|{loss}": {k: v[k] for k in ("top", "random", "ratio", "confidence", "ci", "m")}
                            for (ds, loss), v in drops.items()},
        "seconds": total_seconds,
    },
    parameters=dict(kappa_datasets=kappa_datasets, kappa_losses=kappa_losses, p1_datasets=p1_datasets,
                    drop_datasets=drop_datasets, audit_losses=audit_losses, coefficients=coefficients,
                    kernel=kernel, m=m, h=h, damping=damping, coords=coords, n_batches=n_batches,
                    batch_size=batch_size, cg_max_iter=cg_max_iter, epochs=epochs, lr=lr, seeds=seeds,
                    n_train=n_train, n_test=n_test, label_fraction=label_fraction, drop_k=drop_k,
                    drop_n_remove=drop_n_remove, n_boot=n_boot, dtype=dtype),
)
print(f"total {total_seconds:.0f} s")
for c in claims:
    print(f"- {c['claim']}\n    paper: {c['paper']}\n    ours:  {c['ours']}\n    → {c['verdict']}")

# %% [markdown]
# ## Summary
#
# * The three metrics of the v3 audit run end to end on a Nyström model audited by one
#   GGN-Newton step from its PC initialisation; the claims above print our numbers next to the
#   paper's with a verdict fixed before running.
# * $\kappa$ is a property of the ranking $\lVert\Delta\tilde A_{l,:}\rVert_2$: it needs labels
#   only to be evaluated. Whether it orders SSL losses by downstream accuracy is the claim
#   tested in §1; with an RBF kernel on pixels the losses differ only through one Newton step,
#   so differences between losses can be small next to the seed spread (compare the ± columns
#   before reading much into a rank correlation over five losses).
# * Influence ranks landmarks by $|k(\tilde x_l, x_t)|\,\lVert A_{l,:}\rVert_2$. When the kernel varies
#   little across landmarks (a wide RBF on standardised tables), the row norm dominates and a
#   few landmarks become everyone's top-1 ("distinct top-1" in §2); try `bandwidth_scale < 1`.
# * Precision@1 and the confidence drop compare the influence ranking with two label-free
#   alternatives (cosine neighbours, random landmarks). With $m \approx \sqrt n$ landmarks from a
#   few thousand rows, a random removal of 10 landmarks is a large perturbation of a 50-NN over
#   the landmarks, so the paper's ratios of hundreds (measured with 1M-row data) are not
#   expected at this scale.
#
# ## Exercises
#
# 1. Set `coefficients="trained"` (and a few `epochs`). Do $\kappa$, Precision@1 and the
#    confidence drop change in the same direction as the linear probe?
# 2. Replace $A = \Delta\tilde A$ by $A = \tilde A_0$ (the PC initialisation) in §2. Which
#    landmark does IS then pick for a test point, and why does that make the comparison with the
#    cosine baseline a test of the *loss* rather than of the kernel?
# 3. Using eq. {eq}`int-drop`, show that removing 10 random landmarks out of $m$ takes on
#    average $10k/m$ of a point's $k$ neighbours, so the random drop is at most $10/m$ (every
#    removed neighbour replaced by a landmark of another class). How large must $m$ be for
#    $10/m = 2\cdot10^{-4}$, the paper's Adult value, and what does that say about the paper's
#    $m\approx\sqrt n$ for $n = 10^6$?
# 4. Vary `damping` over several decades. How do $\lVert\Delta\tilde A\rVert/\lVert\tilde A_0\rVert$
#    and $\kappa$ change, and what is the limit of $\Delta\tilde A$ (up to scale) as
#    $\delta\to\infty$?
