# %% [markdown]
# # Feature Alignment Gap on Adult: which attributes does the SSL geometry amplify?
#
# **What this reproduces.** The tabular bias audit of KREPES v3 (spec §6, §7; book chapter
# *Interpretability*). For a raw feature $\xi$ of a table, the agreement
# $v_\xi(x_t, \tilde x_l)$ of a test row and a landmark (eq. {eq}`int-feature`) weights the
# sample-specific influence $\operatorname{IS}(\tilde x_l, x_t)$ (eq. {eq}`int-is`). The share
# $\Psi(x_t; v_\xi)$ of a test row's top-$K$ influence mass that is feature-aligned, minus the
# same share over $K$ random landmarks, averaged over test rows, is the **Feature Alignment
# Gap** $\mathrm{AG}_\xi$ (eq. {eq}`int-gap`), reported with a 95% percentile bootstrap
# interval over test rows. A large gap means the landmarks that shape a row's representation
# agree with it on $\xi$ far more than random landmarks do: the geometry learnt by the
# self-supervised objective is organised along $\xi$.
#
# **The paper's claim** (spec §7): on Adult, the alignment gap of *gender* (`sex`) and
# *relationship* exceeds that of *education* and *occupation* — the SSL model amplifies
# sensitive attributes. The paper reports this as a figure without numbers we can copy, so the
# verdict below is computed from this run's own intervals: the claim **holds** only when every
# interval of {sex, relationship} lies above every interval of {education, occupation};
# otherwise it is **not resolved at this scale** (or reversed, when an interval lies below).
#
# **The pipeline** (as in every interpretability notebook of this book):
#
# 1. a kernel on the encoded table (`Dataset.X`: the 6 numeric features standardised, the 8
#    categorical ones one-hot; all 14 features enter the kernel) — RBF with the
#    median-heuristic bandwidth by default;
# 2. $m$ landmarks by k-means++ seeding (eq. {eq}`lm-kmeanspp`) from the **training** split
#    (`adult.data`), $m = \mathrm{round}(\sqrt{n})$ by default as in v3;
# 3. the Nyström basis and the PC initialisation $\tilde A_0$ (eq. {eq}`nys-pc`);
# 4. `coefficients="audit"` (v3): one GGN-Newton step
#    $\operatorname{vec}(\Delta\tilde A) = -(H_{GN}+\delta I)^{-1}\operatorname{vec}(\nabla_{\tilde A}L(\tilde A_0))$,
#    eq. {eq}`audit-step`, on `audit_batches` batches of two views made by the table augmenter
#    (SCARF-style column corruption plus noise, `make_augmenter(Dataset)`), and $A = \Delta\tilde A$;
#    `coefficients="trained"` (v1): Adam (`fit`) and $A = \tilde A$;
# 5. test rows from the held-out split (`adult.test`), so no test row is a landmark; the
#    agreement $v_\xi$ is computed on the **raw** features (`Dataset.X_raw`: numeric values and
#    category codes), equality for categorical features and $1 - \min(|\Delta x|/\Delta_\xi, 1)$
#    for numeric ones.
#
# **What differs from the paper.** (i) Adult has 48,842 rows (45,222 complete ones: 30,162 in
# `adult.data`, 15,060 in `adult.test`); the paper's "Adult (1M)" is not explained (spec §8),
# and we subsample further at the defaults. (ii) The kernel is an RBF kernel on the encoded
# table, not the eNTK of an SSL-pretrained MLP (not public), so the "audited model" is the
# PC-initialised kernel model and $\Delta\tilde A$ is the step the SSL objective asks for from
# the kernel's principal components. (iii) $m$, $h$, the damping $\delta$, the audit batches,
# the augmentations, $K = 10$ and the bootstrap settings are ours. (iv) Gaps of features with
# different numbers of categories are not on one scale: a random landmark agrees on `sex` about
# half the time but on `education` (16 values) rarely, so we also print the gap normalised by
# its room, $\mathrm{AG}_\xi / (1 - \Psi_{\mathcal R})$; the verdict uses $\mathrm{AG}_\xi$ itself,
# as the paper does.
#
# The bootstrap interval covers the sampling of **test rows** only. The landmarks, the audit's
# views and the random landmark sets are random too; `seeds` repeats the whole audit with other
# draws (same rows), and the verdict asks for agreement across seeds.
#
# The defaults below run in seconds; the `quick` and `paper` profiles use more rows, losses and
# seeds.

# %% tags=["parameters"]
losses = ["barlow_twins"]  # also: "vicreg", "simclr" (names in krepes_lib.losses.NAMES)
coefficients = "audit"  # "audit": explain ΔÃ (one GGN-Newton step from Ã₀); "trained": explain Ã after fit
kernel = "rbf"  # any of krepes_lib.kernels.KERNELS (rbf/laplacian: median-heuristic bandwidth)
m = None  # landmarks; None: round(sqrt(n_train)) as in v3
h = 16  # representation dimensions
n_train = 2000  # rows of adult.data (stratified by income; None: all 30,162)
n_test = 1000  # rows of adult.test (stratified by income; None: all 15,060)
features = ["sex", "relationship", "education", "occupation", "race", "age", "marital-status",
            "workclass", "hours-per-week"]  # raw features to audit (Dataset.raw_feature_names)
top_k = 10  # K of the alignment gap (top-K vs K random landmarks; ours)
n_boot = 1000  # bootstrap resamples over test rows (ours)
ci = 0.95  # coverage of the percentile interval
audit_batches = 4  # batches of two augmented views for the audit's gradient and GGN
batch_size = 256  # samples per batch (audit and training)
damping = 1e-2  # δ of eq. (audit-step) (ours)
cg_max_iter = 100  # conjugate-gradient iteration cap of the audit
epochs = 5  # Adam epochs (only for coefficients "trained")
lr = 1e-3  # Adam learning rate (only for coefficients "trained")
seeds = [0, 1, 2]  # per seed: landmarks, audit batches and views, random landmark sets, bootstrap
data_seed = 0  # the stratified row subsets (the same rows for every seed)
dtype = "float64"  # working dtype of kernels and models

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from krepes_lib import data, interpret as I, losses as LOSSES
from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, to_device, to_host
from krepes_lib.ggn import one_step_newton
from krepes_lib.kernels import make_kernel, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.results import PAPER, save_figure, save_results
from krepes_lib.train import fit

with warnings.catch_warnings():  # fit's progress bar module warns when ipywidgets is absent
    warnings.simplefilter("ignore")
    import tqdm.auto  # noqa: F401

xp = default_xp()  # CuPy on a GPU, NumPy otherwise
print("array backend:", xp.__name__)
assert coefficients in ("audit", "trained"), coefficients
unknown = sorted(set(losses) - set(LOSSES.NAMES))
assert not unknown, f"unknown loss(es) {unknown}; choose from {LOSSES.NAMES}"
T_START = time.perf_counter()

# %% [markdown]
# ## Data
#
# Training rows from `adult.data`, test rows from `adult.test`, both stratified by the income
# label (used here only for the Precision@1 side check at the end). `X` feeds the kernel,
# `X_raw` the feature agreement.

# %%
Dtr = data.load("adult", split="train", n=n_train, seed=data_seed)
Dte = data.load("adult", split="test", n=n_test, seed=data_seed)
names = Dtr.raw_feature_names
missing = [f for f in features if f not in names]
assert not missing, f"unknown feature(s) {missing}; Adult has {names}"
is_cat = {f: f in Dtr.categorical for f in features}
print(f"train: {len(Dtr)} of {Dtr.info['n_available']} complete rows of adult.data; "
      f"test: {len(Dte)} of {Dte.info['n_available']} complete rows of adult.test")
print(f"kernel input: {Dtr.X.shape[1]} columns (14 features, categorical one-hot); "
      f"raw features: {len(names)}")
for f in features:
    j = names.index(f)
    if is_cat[f]:
        print(f"  {f:<15} categorical, {len(Dtr.categories[f])} categories")
    else:
        col = np.concatenate([Dtr.X_raw[:, j], Dte.X_raw[:, j]])
        print(f"  {f:<15} numeric, range {col.min():g}–{col.max():g}")

# %% [markdown]
# ## Kernel (once), then per seed: landmarks, Nyström basis, audit
#
# The bandwidth is the median pairwise distance of the encoded training rows (fixed across
# seeds). Per seed, k-means++ draws the landmarks; the model starts at the PC initialisation in
# raw coordinates (so $\delta I$ in eq. {eq}`audit-step` acts on $\tilde A$) for the audit, or in
# whitened coordinates for Adam (`coefficients="trained"`). The loss on the audit views before
# and after the step is printed (a full GGN step of a non-convex loss need not lower it). The
# check on the representer decomposition (eq. {eq}`int-representer`): the landmark
# contributions sum back to the model's embedding of the test rows.

# %%
Xtr = to_device(Dtr.X, xp, dtype=dtype)
Xte = to_device(Dte.X, xp, dtype=dtype)
m_used = int(round(np.sqrt(Xtr.shape[0]))) if m is None else int(min(m, Xtr.shape[0]))
kern = (make_kernel(kernel, sigma=median_sigma(Dtr.X, seed=data_seed)) if kernel in ("rbf", "laplacian")
        else make_kernel(kernel))
aug = make_augmenter(Dtr)  # a table: SCARF-style corruption + noise
print(f"{kern}, m = {m_used}")

bases, runs = {}, {}
for sd in seeds:
    sel = select_landmarks(Xtr, m_used, method="kmeans++", seed=sd)
    nys = Nystrom(kern, sel.points, dtype=dtype)
    h_used = min(h, nys.rank)
    bases[sd] = dict(sel=sel, nys=nys, L_raw=Dtr.X_raw[sel.indices], y_l=Dtr.y[sel.indices])
    for loss in losses:
        t0 = time.perf_counter()
        if coefficients == "audit":
            model = NystromModel(nys, h_used, coords="raw", predictor=(loss == "byol"))
            rng = np.random.default_rng([sd, 1])
            perm = rng.permutation(Xtr.shape[0])
            B = int(min(batch_size, Xtr.shape[0]))
            batches = []
            for i in range(max(1, min(audit_batches, Xtr.shape[0] // B))):
                Xb = Xtr[xp.asarray(perm[i * B:(i + 1) * B])]
                batches.append((aug(Xb, rng), aug(Xb, rng)))
            res = one_step_newton(model, loss, batches, damping=damping, max_iter=cg_max_iter,
                                  apply=True)
            A = res.delta_A
            info = dict(loss_before=res.loss_before, loss_after=res.loss_after,
                        grad_norm=res.grad_norm, cg_iterations=res.cg.iterations,
                        cg_stopped_by=res.cg.stopped_by,
                        cg_rel_residual=float(res.cg.residual_norms[-1, 0] / res.cg.rhs_norms[0]))
            note = (f"L {res.loss_before:.4g} → {res.loss_after:.4g}, CG {res.cg.iterations} it "
                    f"({res.cg.stopped_by}, rel. residual {info['cg_rel_residual']:.1e}), "
                    f"‖ΔÃ‖_F = {float(xp.linalg.norm(A)):.3g}")
        else:
            model = NystromModel(nys, h_used, coords="whitened", predictor=(loss == "byol"))
            hist = fit(model, Xtr, loss, epochs=epochs, batch_size=batch_size, seed=sd, lr=lr,
                       augment=aug, progress=False)
            A = model.A_tilde
            info = dict(loss_first_epoch=hist.loss[0], loss_last_epoch=hist.loss[-1])
            note = f"Adam {epochs} epochs, L {hist.loss[0]:.4g} → {hist.loss[-1]:.4g}"
        Z_te = model.embed(Xte)
        F_sum = I.representer_sum(kern, nys.landmarks, Xte, model.A_tilde, model.gamma)
        info["representer_rel_err"] = float(xp.abs(F_sum - Z_te).max() / xp.abs(Z_te).max())
        runs[sd, loss] = dict(model=model, A=A, info=info, seconds=time.perf_counter() - t0)
        print(f"seed {sd}, h = {h_used}, {loss:<21} {note}; representer sum rel. error "
              f"{info['representer_rel_err']:.1e}; {runs[sd, loss]['seconds']:.1f} s")

# %% [markdown]
# ## Feature Alignment Gaps with bootstrap intervals
#
# `alignment_gap` streams over test rows: top-$K$ landmarks by IS, $K$ random landmarks per
# row (seeded, host RNG), $\Psi$ and $\Psi_{\mathcal R}$ per row, their mean difference and a
# percentile bootstrap interval over rows ({eq}`int-gap`). One table per loss: a column per
# seed, and the random baseline and normalised gap averaged over seeds.

# %%
K_used = min(top_k, m_used)
gaps = {}
for (sd, loss), run in runs.items():
    bs = bases[sd]
    for f in features:
        g = I.alignment_gap(kern, bs["nys"].landmarks, Xte, run["A"], Dte.X_raw, bs["L_raw"],
                            feature=names.index(f), categorical=is_cat[f], K=K_used,
                            n_boot=n_boot, seed=sd, ci=ci)
        gaps[sd, loss, f] = dict(gap=g.gap, lo=g.ci_low, hi=g.ci_high, psi=g.psi,
                                 psi_rand=g.psi_rand, n_valid=g.n_valid,
                                 normalised=g.gap / (1 - g.psi_rand) if g.psi_rand < 1 else float("nan"))

for loss in losses:
    mean_gap = {f: np.mean([gaps[sd, loss, f]["gap"] for sd in seeds]) for f in features}
    rows = ["| feature | type | " + " | ".join(f"AG [{int(ci * 100)}% CI], seed {sd}" for sd in seeds)
            + " | Ψ (top-K) | Ψ (random) | AG / (1 − Ψ_rand) |",
            "|---|---|" + "---|" * len(seeds) + "---|---|---|"]
    for f in sorted(features, key=lambda f: -mean_gap[f]):
        cells = [f"{gaps[sd, loss, f]['gap']:+.4f} [{gaps[sd, loss, f]['lo']:+.4f}, "
                 f"{gaps[sd, loss, f]['hi']:+.4f}]" for sd in seeds]
        avg = lambda k: np.mean([gaps[sd, loss, f][k] for sd in seeds])  # noqa: E731
        rows.append(f"| {f} | {'cat.' if is_cat[f] else 'num.'} | " + " | ".join(cells)
                    + f" | {avg('psi'):.3f} | {avg('psi_rand'):.3f} | {avg('normalised'):+.3f} |")
    table = "\n".join(rows)
    display(Markdown(f"**{loss}** ({coefficients}, m = {m_used}, K = {K_used}, {len(Dte)} test rows)\n\n"
                     + table))
    print(f"{loss}:\n{table}\n")  # the same table as text (for the executed-notebook log)

# %% [markdown]
# Which randomness dominates? With several seeds, compare the spread of $\mathrm{AG}_\xi$ across
# seeds (standard deviation) with the half-width of the bootstrap interval, which only reflects
# the sampling of test rows.

# %%
spread = {}
if len(seeds) > 1:
    for loss in losses:
        sd_over_seeds = np.array([np.std([gaps[sd, loss, f]["gap"] for sd in seeds], ddof=1)
                                  for f in features])
        half = np.array([np.mean([(gaps[sd, loss, f]["hi"] - gaps[sd, loss, f]["lo"]) / 2 for sd in seeds])
                         for f in features])
        spread[loss] = dict(seed_std=float(np.median(sd_over_seeds)), ci_half_width=float(np.median(half)))
        print(f"{loss:<21} median over features: std of AG over {len(seeds)} seeds "
              f"{spread[loss]['seed_std']:.4f} vs bootstrap half-width {spread[loss]['ci_half_width']:.4f} "
              f"(ratio {spread[loss]['seed_std'] / spread[loss]['ci_half_width']:.1f})")
else:
    print("one seed: the spread over landmark draws is not measured (set seeds=[0, 1, 2])")

# %%
CLAIM_HIGH, CLAIM_LOW = ("sex", "relationship"), ("education", "occupation")
s0 = seeds[0]
fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(features) * max(1, len(losses)) ** 0.5), 4.2))
width = 0.8 / len(losses)
xs = np.arange(len(features))
colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
for i, loss in enumerate(losses):
    x = xs + (i - (len(losses) - 1) / 2) * width
    val = np.array([gaps[s0, loss, f]["gap"] for f in features])
    err = np.array([[gaps[s0, loss, f]["gap"] - gaps[s0, loss, f]["lo"] for f in features],
                    [gaps[s0, loss, f]["hi"] - gaps[s0, loss, f]["gap"] for f in features]])
    ax.bar(x, val, width, yerr=err, capsize=3, color=colours[i % len(colours)],
           label=f"{loss} (seed {s0})")
    for j, sd in enumerate(seeds[1:]):
        v = np.array([gaps[sd, loss, f]["gap"] for f in features])
        e = np.array([[gaps[sd, loss, f]["gap"] - gaps[sd, loss, f]["lo"] for f in features],
                      [gaps[sd, loss, f]["hi"] - gaps[sd, loss, f]["gap"] for f in features]])
        ax.errorbar(x + (j + 1) * width / (len(seeds) + 1) - width / 2, v, yerr=e, fmt="o", ms=2.5,
                    color="black", elinewidth=0.8, label="other seeds" if i == 0 and j == 0 else None)
ax.set_xticks(xs)
ax.set_xticklabels(features, rotation=30, ha="right")
for lab, f in zip(ax.get_xticklabels(), features):  # the claim's two groups in colour
    lab.set_color("tab:red" if f in CLAIM_HIGH else "tab:blue" if f in CLAIM_LOW else "black")
ax.axhline(0, color="black", lw=0.8)
ax.set_ylabel(r"alignment gap $\mathrm{AG}_\xi$ (share of top-K influence mass)")
ax.set_title(f"Adult: Feature Alignment Gap with {int(ci * 100)}% bootstrap CI over test rows "
             f"({coefficients}, RBF, m = {m_used}, K = {K_used}, {len(Dte)} test rows)\n"
             "paper: red labels (sex, relationship) > blue labels (education, occupation)", fontsize=9)
ax.legend(fontsize=7)
fig.tight_layout()
save_figure(fig, "09_alignment_gap")
plt.show()

# %% [markdown]
# ## Side check: Precision@1 on Adult
#
# The paper reports one more Adult number that this pipeline gives for free: the share of
# test rows whose top-1 landmark by IS has the row's income class (eq. {eq}`int-p1`),
# 0.872 for KREPES vs 0.809 for the cosine baseline. It uses labels (evaluation only), and
# our setting differs as stated above.

# %%
p_at_1 = {}
pk, pc = PAPER["precision_at_1"]["Adult"]
for (sd, loss), run in runs.items():
    bs = bases[sd]
    p = I.precision_at_1(kern, bs["nys"].landmarks, Xte, run["A"], Dte.y, bs["y_l"],
                         A_repr=run["model"].A_tilde, gamma=run["model"].gamma)
    p_at_1[sd, loss] = dict(krepes=p.krepes, cosine=p.cosine)
    print(f"seed {sd}, {loss:<21} P@1 KREPES {p.krepes:.3f}, cosine {p.cosine:.3f}   "
          f"(paper, Adult: {pk} vs {pc}); majority class share {np.bincount(Dte.y).max() / len(Dte):.3f}")

# %% [markdown]
# ## What must hold
#
# The notebook's test at the defaults: the representer decomposition sums back to the
# embedding; IS is non-negative and the feature-conditioned influence never exceeds it
# ($0\le v_\xi\le 1$, eq. {eq}`int-feature`); every interval contains its point estimate and
# has positive width; the shares $\Psi$ lie in $[0, 1]$; and no test row is dropped for a
# zero influence mass.

# %%
tol = 1e-8 if dtype == "float64" else 1e-3
for (sd, loss), run in runs.items():
    bs = bases[sd]
    assert run["info"]["representer_rel_err"] < tol, (sd, loss, run["info"])
    sub = Xte[: min(200, Xte.shape[0])]
    IS = to_host(I.influence_scores(kern, bs["nys"].landmarks, sub, run["A"]))
    assert IS.min() >= 0, loss
    for f in features:
        fci = to_host(I.feature_conditioned_influence(
            kern, bs["nys"].landmarks, sub, run["A"], Dte.X_raw[: sub.shape[0]], bs["L_raw"],
            feature=names.index(f), categorical=is_cat[f]))
        assert fci.min() >= 0 and (fci <= IS * (1 + 1e-12)).all(), (sd, loss, f)
for key, g in gaps.items():
    assert g["lo"] <= g["gap"] <= g["hi"] and g["hi"] > g["lo"], (key, g)
    assert 0 <= g["psi"] <= 1 and 0 <= g["psi_rand"] <= 1, (key, g)
    assert g["n_valid"] == len(Dte), (key, g["n_valid"])

# %% [markdown]
# ## Verdict and results
#
# Per seed, the claim holds when each interval of {sex, relationship} lies above each interval
# of {education, occupation} (4 pairs), is reversed when an interval lies below, and is
# unresolved otherwise. Over seeds: "holds" only when it holds for every seed.

# %%
def separation(a, b, gl):
    """'above' if a's interval lies above b's, 'below' if under it, else 'overlap'."""
    A_, B_ = gl[a], gl[b]
    return "above" if A_["lo"] > B_["hi"] else "below" if A_["hi"] < B_["lo"] else "overlap"


claims, per_seed = [], {}
if all(f in features for f in CLAIM_HIGH + CLAIM_LOW):
    for loss in losses:
        states = []
        for sd in seeds:
            gl = {f: gaps[sd, loss, f] for f in features}
            pairs = {(a, b): separation(a, b, gl) for a in CLAIM_HIGH for b in CLAIM_LOW}
            state = ("holds" if all(v == "above" for v in pairs.values()) else
                     "reversed" if any(v == "below" for v in pairs.values()) else "unresolved")
            per_seed[sd, loss] = dict(state=state, pairs={f"{a}>{b}": v for (a, b), v in pairs.items()})
            states.append(state)
            print(f"seed {sd}, {loss}: {state}; "
                  + ", ".join(f"{a} vs {b}: {v}" for (a, b), v in pairs.items()))
        n_hold, n_rev = states.count("holds"), states.count("reversed")
        if n_hold == len(seeds):
            verdict = (f"holds (every interval of sex and relationship lies above those of education "
                       f"and occupation, {len(seeds)} of {len(seeds)} seeds)")
        elif n_rev == len(seeds):
            verdict = (f"does not hold (at least one pair of intervals separates the other way, "
                       f"{len(seeds)} of {len(seeds)} seeds)")
        else:
            verdict = (f"not resolved at this scale (holds for {n_hold}, reversed for {n_rev}, "
                       f"unresolved for {len(seeds) - n_hold - n_rev} of {len(seeds)} seeds)")
        ours = "; ".join(
            f"{f} " + ", ".join(f"{gaps[sd, loss, f]['gap']:+.3f} [{gaps[sd, loss, f]['lo']:+.3f}, "
                                f"{gaps[sd, loss, f]['hi']:+.3f}]" for sd in seeds)
            for f in CLAIM_HIGH + CLAIM_LOW)
        claims.append({
            "claim": f"Adult / {loss}: alignment gap of sex and relationship exceeds that of education "
                     "and occupation",
            "paper": "holds (v3, Adult '1M', eNTK of an SSL MLP; figure, no numbers)",
            "ours": ours + f" (RBF, {coefficients}, m = {m_used}, {len(Dte)} test rows, seeds {seeds})",
            "verdict": verdict,
        })
for loss in losses:
    kr = [p_at_1[sd, loss]["krepes"] for sd in seeds]
    co = [p_at_1[sd, loss]["cosine"] for sd in seeds]
    wins = sum(a > b for a, b in zip(kr, co))
    claims.append({
        "claim": f"Adult / {loss}: Precision@1 of KREPES' top-1 landmark exceeds the cosine baseline",
        "paper": f"{pk} vs {pc}",
        "ours": f"{np.mean(kr):.3f} vs {np.mean(co):.3f} (mean over seeds {seeds}; RBF, {coefficients}, "
                f"m = {m_used}; majority class {np.bincount(Dte.y).max() / len(Dte):.3f})",
        "verdict": ("holds" if wins == len(seeds) else "does not hold" if wins == 0
                    else f"mixed ({wins} of {len(seeds)} seeds)"),
    })

runtime = time.perf_counter() - T_START
save_results(
    "09_alignment_gap",
    {
        "claims": claims,
        "alignment_gap": {f"{sd}|{loss}|{f}": g for (sd, loss, f), g in gaps.items()},
        "claim_per_seed": {f"{sd}|{loss}": v for (sd, loss), v in per_seed.items()},
        "seed_spread_vs_ci": spread,
        "precision_at_1": {f"{sd}|{loss}": v for (sd, loss), v in p_at_1.items()},
        "runs": {f"{sd}|{loss}": {**r["info"], "seconds": r["seconds"]} for (sd, loss), r in runs.items()},
        "m": m_used, "n_train": len(Dtr), "n_test": len(Dte),
        "runtime_s": runtime,
    },
    parameters=dict(losses=losses, coefficients=coefficients, kernel=kernel, m=m, h=h,
                    n_train=n_train, n_test=n_test, features=features, top_k=top_k, n_boot=n_boot,
                    ci=ci, audit_batches=audit_batches, batch_size=batch_size, damping=damping,
                    cg_max_iter=cg_max_iter, epochs=epochs, lr=lr, seeds=seeds, data_seed=data_seed,
                    dtype=dtype),
)
for c in claims:
    print(f"- {c['claim']}: {c['ours']} [paper: {c['paper']}] → {c['verdict']}")
print(f"runtime {runtime:.0f} s")

# %% [markdown]
# ## Summary
#
# * The Feature Alignment Gap turns the landmark explanation into a label-free audit of a
#   table's representation: for every raw feature it asks whether the most influential
#   landmarks agree with the test row on that feature more than random landmarks do.
# * The verdict on the paper's claim is computed from this run's intervals and printed above
#   (per loss). It concerns an RBF kernel on the encoded table and a one-step audit of the
#   PC-initialised kernel model on a subsample of Adult's 45,222 complete rows, not the eNTK
#   of a pretrained network on "Adult (1M)".
# * The bootstrap interval covers test rows only. When `seeds` holds several landmark draws,
#   the printed ratio of the spread over seeds to the interval's half-width says how much of
#   the uncertainty the interval leaves out; the verdict therefore requires agreement across
#   seeds.
# * Gaps of features with few categories (sex: 2) and many (education: 16) start from very
#   different random baselines $\Psi_{\mathcal R}$; the normalised column
#   $\mathrm{AG}/(1-\Psi_{\mathcal R})$ shows how much that matters for the ranking.
# * With an RBF kernel every feature's influence runs through the same Euclidean distance on
#   the encoded table, so a feature's gap also reflects its share of that distance (a one-hot
#   feature contributes 0 or 2 to the squared distance, a standardised numeric one a continuous
#   amount).
#
# ## Exercises
#
# 1. Run with `losses=["barlow_twins", "vicreg", "simclr"]`. Is the ranking of features a
#    property of the kernel (shared by all losses) or of the loss? Compare with
#    `coefficients="trained"`.
# 2. Drop `sex` from the kernel's input (remove its two one-hot columns from `Dataset.X`
#    before building the kernel) and re-run. Does the gap of `sex` vanish? What does a
#    remaining gap tell you about proxies (relationship, marital-status)?
# 3. Show that for a categorical feature with $c$ equally frequent categories and independent
#    landmarks, $\mathbb E\,\Psi_{\mathcal R} = 1/c$. Derive the largest possible gap and
#    compare with the normalised column.
# 4. Increase `n_test` until the intervals of `sex` and `education` separate (or stop
#    overlapping with zero). How does the interval width scale with the number of test rows?
#    Then compare that width with the spread of the gap over `seeds`: which source of
#    randomness dominates, and what does the bootstrap interval leave out?
