# %% [markdown]
# # Scaling: runtime vs n with m = ⌈√n⌉ against the full kernel, and how to choose m
#
# **What this reproduces.** Spec §7: *"Scaling on Adult and Bank: runtime grows like n^1.5
# (m ≈ √n) vs n² for the full kernel, accuracy on par."* The v1 reviewers also asked where the
# time goes (kernel vs optimisation vs evaluation) and how m is chosen. This notebook
#
# 1. times each stage of a KREPES run — landmarks (k-means++), one streamed pass of kernel
#    blocks K_nm, PC initialisation (Nyström eigendecomposition), one training epoch (Barlow
#    Twins), evaluation (embedding + 10 %-label linear probe) — for n from 10³ up to 10⁶
#    with m = ⌈√n⌉, and the same stages with the **full kernel** (m = n: every row is a
#    landmark, exact, O(n²) memory, O(n³) eigendecomposition) up to the largest n the profile
#    affords;
# 2. fits log-log slopes with 95 % confidence intervals (t-interval of the least-squares
#    slope over all (n, seed) timings, and a bootstrap over seeds within each n);
# 3. compares the probe accuracy of both where both run, paired over seeds;
# 4. sweeps m at fixed n for the accuracy and the Nyström error — the plot for choosing m —
#    next to m = √n, the O(√n) of Rudi, Camoriano & Rosasco (2015, *Less is more: Nyström
#    computational regularization*) for kernel ridge regression with uniform landmarks;
# 5. breaks the time down for the RBF kernel and for an empirical NTK (eNTK) of a small MLP.
#
# **Beyond the real rows (ours, not the paper's).** The paper's "1M" construction is not
# public. Data sets larger than the real table are built by `krepes_lib.studies.scaling.resample_rows`
# (eq. (sc-resample) in its docstring): all real rows first, in a seeded order; then
# bootstrap copies of real rows (uniform, with replacement) with Gaussian jitter of 0.05 × the
# column's standard deviation on every non-binary column (one-hot and binary columns copied
# exactly), labels copied from the source row. For n up to the real size only real rows are
# used. Adult grows from its `train` split (30,162 complete rows) and is evaluated on rows of
# its `test` split; Bank holds rows out of its 45,211.
#
# **Our choices.** RBF kernel with the median bandwidth of the real rows (one kernel for all
# n), h = 32 (quick) dimensions, whitened coordinates, PC initialisation, Adam, batches of 512.
# Timings are wall-clock seconds on this machine (shared; the load is printed), one BLAS thread.

# %% tags=["parameters"]
datasets = ["adult", "bank"]  # real tables to grow from (a table whose files are missing is skipped)
ns = {"adult": [300, 1000, 3000], "bank": [300, 1000]}  # KREPES curve sizes per data set
full_ns = [300, 600, 1000]  # full-kernel sizes, every row a landmark; run on the first data set
seeds = [0, 1]  # seeds of the timing curve (data order, landmarks, views, labelled subset)
acc_seeds = [0, 1, 2]  # seeds of the paired accuracy comparison at full_ns (both methods)
fit_min_n = 300  # slopes are fitted from this n on; small n measure overheads
h = 16
loss = "barlow_twins"
batch_size = 256
n_test = 500
m_sweep_ns = [1000, 3000]  # n of the m sweep
m_values = [8, 16, 32, 64, 128, 256]  # m of the sweep; values above n are skipped
equiv_margin = 0.01  # "on par": accuracy difference within ±1 point (TOST), fixed before the run
alpha = 0.05
entk_ns = [1000, 3000]  # sizes of the eNTK time breakdown (empty: skip)
entk_widths = [64, 8]  # hidden width(s) and outputs of the MLP whose eNTK is timed
cpu_threads = 1

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np

import torch

import krepes_lib as kr
from krepes_lib import stats
from krepes_lib.studies import scaling
from krepes_lib.backend import default_xp, limit_host_threads
from krepes_lib.neural import MLPEncoder, TorchNTK
from krepes_lib.studies.results import save_figure, save_results

limit_host_threads(cpu_threads)
print(f"load average (1, 5, 15 min): {os.getloadavg()}; BLAS threads: {cpu_threads}; float32; "
      f"arrays: {default_xp().__name__}")
tables, skipped = scaling.load_tables(datasets, n_test=n_test)
for name, T in tables.items():
    print(f"{name}: {T[0].shape[0]} real rows × {T[0].shape[1]} columns to grow from; {T[4]}")
for name, why in skipped.items():
    print(f"{name}: SKIPPED — {why}")
assert tables, "no data set could be loaded"

# %% [markdown]
# ## 1. Runtime vs n, KREPES (m = ⌈√n⌉) and the full kernel (m = n)

# %%
curve = {name: scaling.scaling_curve(*T[:4], ns[name], seeds=seeds, h=h, loss=loss, batch_size=batch_size)
         for name, T in tables.items() if name in ns}
first = next(iter(tables))
both = {meth: scaling.scaling_curve(*tables[first][:4], full_ns, seeds=acc_seeds, method=meth, h=h, loss=loss,
                                    batch_size=batch_size)
        for meth in ("nystrom", "full")}
for name, rows in curve.items():
    for n, st in scaling.stage_table(rows).items():
        print(f"{name} n={n:>8d} m={math.ceil(math.sqrt(n)):>5d}: " +
              ", ".join(f"{k} {v:.3g} s" for k, v in st.items()))
for n, st in scaling.stage_table(both["full"]).items():
    print(f"{first} full kernel n={n:>6d}: " + ", ".join(f"{k} {v:.3g} s" for k, v in st.items()))

# %% [markdown]
# **Fits.** Training time = landmarks + kernel pass + PC init + one epoch (evaluation is
# reported separately). Each (n, seed) timing is one point of the least-squares fit of
# log t on log n.

# %%
TRAIN = scaling.TRAIN_STAGES
train_time = scaling.train_seconds
fits = {}
for name, rows in curve.items():
    sel = [r for r in rows if r["n"] >= fit_min_n]
    fits[f"KREPES {name}"] = stats.fit_loglog([r["n"] for r in sel], [train_time(r) for r in sel])
    for k in TRAIN:
        fits[f"KREPES {name}: {k}"] = stats.fit_loglog([r["n"] for r in sel],
                                                         [max(r["seconds"][k], 1e-6) for r in sel])
fits["full kernel"] = stats.fit_loglog([r["n"] for r in both["full"]], [train_time(r) for r in both["full"]])
for k in TRAIN:
    fits[f"full kernel: {k}"] = stats.fit_loglog([r["n"] for r in both["full"]],
                                                   [max(r["seconds"][k], 1e-6) for r in both["full"]])
for name, f in fits.items():
    print(f"{name:<28s} slope {f.slope:5.2f}  95% t-CI [{f.ci_t[0]:.2f}, {f.ci_t[1]:.2f}]  "
          f"bootstrap [{f.ci_boot[0]:.2f}, {f.ci_boot[1]:.2f}]  ({f.n_points} timings)")
n_cross = stats.crossover_n(fits["full kernel"], fits[f"KREPES {first}"])
common = sorted(set(r["n"] for r in both["full"]))
ratio = {n: np.mean([train_time(r) for r in both["full"] if r["n"] == n]) /
         np.mean([train_time(r) for r in both["nystrom"] if r["n"] == n]) for n in common}
print(f"crossover of the fitted lines (full = KREPES {first}): n ≈ {n_cross:.3g} "
      f"({'inside' if min(full_ns) <= n_cross <= max(ns[first]) else 'outside'} the measured range "
      f"{min(full_ns)}…{max(ns[first])}: an extrapolation of both fits); measured full/KREPES time ratio: "
      + ", ".join(f"n={n}: {v:.1f}×" for n, v in ratio.items()))

# %%
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for name, rows in curve.items():
    n_ = np.array([r["n"] for r in rows])
    ax[0].loglog(n_, [train_time(r) for r in rows], "o", alpha=0.6, label=f"KREPES m=⌈√n⌉, {name}")
    f = fits[f"KREPES {name}"]
    grid = np.logspace(np.log10(max(fit_min_n, n_.min())), np.log10(n_.max()), 20)
    ax[0].loglog(grid, f.predict(grid), "-", label=f"fit slope {f.slope:.2f} [{f.ci_t[0]:.2f}, {f.ci_t[1]:.2f}]")
nf = np.array([r["n"] for r in both["full"]])
ax[0].loglog(nf, [train_time(r) for r in both["full"]], "s", color="k", alpha=0.6, label="full kernel m=n")
f = fits["full kernel"]
grid = np.logspace(np.log10(nf.min()), np.log10(nf.max()) + 0.5, 20)
ax[0].loglog(grid, f.predict(grid), "k--", label=f"fit slope {f.slope:.2f} [{f.ci_t[0]:.2f}, {f.ci_t[1]:.2f}]")
ax[0].set(xlabel="n (rows)", ylabel="training time [s] (landmarks+kernel+PC init+1 epoch)",
          title="runtime vs n (log-log)")
ax[0].legend(fontsize=7)
st = scaling.stage_table(curve[first])
n_ = list(st)
bottom = np.zeros(len(n_))
for k in (*TRAIN, "evaluation"):
    v = np.array([st[n][k] for n in n_])
    ax[1].bar([str(n) for n in n_], v / np.array([sum(st[n].values()) for n in n_]), bottom=bottom, label=k)
    bottom += v / np.array([sum(st[n].values()) for n in n_])
ax[1].set(xlabel="n", ylabel="share of wall time", title=f"RBF, {first}: where the time goes")
ax[1].legend(fontsize=7)
fig.tight_layout()
save_figure(fig, "13_scaling_runtime")

# %% [markdown]
# ## 2. Accuracy of both where both run (paired over seeds)
#
# Rule, fixed before the run: per seed, the mean over `full_ns` of the probe-accuracy
# difference KREPES − full kernel; "on par" holds when two one-sided paired t-tests over the
# seeds show the mean difference inside ±`equiv_margin` (TOST, α each).

# %%
acc = {meth: {s: np.mean([r["accuracy"] for r in rows if r["seed"] == s]) for s in acc_seeds}
       for meth, rows in both.items()}
for meth, rows in both.items():
    for n in common:
        print(f"{meth:>8s} n={n:>6d}: accuracy " +
              stats.mean_std([r["accuracy"] for r in rows if r["n"] == n], digits=4))
par = kr.claims.decide([kr.claims.Claim(
    f"{first}: accuracy on par (KREPES m = ⌈√n⌉ vs full kernel, n = {min(full_ns)}…{max(full_ns)})", "on par",
    a=[acc["nystrom"][s] for s in acc_seeds], b=[acc["full"][s] for s in acc_seeds],
    what="d = per-seed mean accuracy over full_ns, KREPES − full kernel")],
    kr.claims.Equivalence(margin=equiv_margin, alpha=alpha), digits=4)[0]
print(f"KREPES − full: {par['ours']} → on par within ±{equiv_margin}: {par['verdict']}")

# %% [markdown]
# ## 3. How to choose m: accuracy and Nyström error vs m at fixed n
#
# Probe at the PC initialisation (no training), and the relative Frobenius error
# ‖K − K̃‖_F/‖K‖_F on 2,000 rows. Rule for "enough landmarks" (ours): the smallest m of the
# sweep whose accuracy is within 1 point of the best m of the sweep.

# %%
sweep = [r for n in m_sweep_ns for r in scaling.m_sweep(*tables[first][:4], m_values, n=n, h=h)]
m_star = scaling.smallest_sufficient_m(sweep, tol=0.01)
for n in m_sweep_ns:
    sel = [r for r in sweep if r["n"] == n]
    print(f"n={n}: " + "; ".join(f"m={r['m']} acc {r['accuracy']:.3f} err {r['nystrom_error']:.3f}" for r in sel))
    print(f"   smallest sufficient m = {m_star[n]} vs √n = {math.sqrt(n):.0f} (m*/√n = {m_star[n] / math.sqrt(n):.2f})")
err_fit = {n: stats.fit_loglog([r["m"] for r in sweep if r["n"] == n], [r["nystrom_error"] for r in sweep if r["n"] == n])
           for n in m_sweep_ns}
m_growth = (math.log(m_star[m_sweep_ns[-1]] / m_star[m_sweep_ns[0]]) / math.log(m_sweep_ns[-1] / m_sweep_ns[0])
            if len(m_sweep_ns) > 1 else float("nan"))
print(f"Conclusion: m = ⌈√n⌉ is {'enough' if all(m_star[n] <= math.ceil(math.sqrt(n)) for n in m_sweep_ns) else 'NOT enough'}"
      f" at every n of the sweep (accuracy within 1 point of the sweep's best); the sufficient m grows like "
      f"n^{m_growth:.2f} between n = {m_sweep_ns[0]} and {m_sweep_ns[-1]} (√n: n^0.5); the Nyström error falls like "
      + ", ".join(f"m^{f.slope:.2f} (n={n})" for n, f in err_fit.items()))

fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
for n in m_sweep_ns:
    sel = [r for r in sweep if r["n"] == n]
    l, = ax[0].semilogx([r["m"] for r in sel], [r["accuracy"] for r in sel], "o-", label=f"n={n}")
    ax[0].axvline(math.sqrt(n), color=l.get_color(), ls=":")
    ax[1].loglog([r["m"] for r in sel], [r["nystrom_error"] for r in sel], "o-", color=l.get_color(), label=f"n={n}")
    ax[1].axvline(math.sqrt(n), color=l.get_color(), ls=":")
ax[0].set(xlabel="m (landmarks)", ylabel="probe accuracy at PC init", title="accuracy vs m (dotted: m = √n)")
ax[1].set(xlabel="m (landmarks)", ylabel="‖K − K̃‖_F / ‖K‖_F", title="Nyström error vs m")
ax[0].legend(fontsize=8), ax[1].legend(fontsize=8)
ng = np.array(m_sweep_ns, dtype=float)
ax[2].loglog(ng, [m_star[n] for n in m_sweep_ns], "o", label="smallest sufficient m (ours)")
ax[2].loglog(ng, np.sqrt(ng), "k--", label="m = √n (Rudi et al. 2015: O(√n))")
ax[2].set(xlabel="n", ylabel="m", title="choosing m")
ax[2].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "13_scaling_choose_m")

# %% [markdown]
# ## 4. Time breakdown: RBF vs an empirical NTK
#
# The eNTK of an MLP costs per kernel entry a contraction of two per-sample Jacobians (eq.
# (entk-proj)), against one d-dimensional distance for the RBF: the kernel stages take over.
# MLP at PyTorch's default initialisation, its exact eNTK by `TorchNTK` (not an SSL-pretrained
# network).
# "kernel" = landmarks + kernel pass + PC init + the epoch's own kernel blocks; "views" =
# drawing and augmenting the epoch's two views (both timed apart on the epoch's batches);
# "optimisation" = the rest of the epoch (loss, gradients, Adam); "evaluation" = embedding + probe.

# %%
d = tables[first][0].shape[1]
torch.manual_seed(0)
entk = TorchNTK(MLPEncoder(d, widths=entk_widths[:-1], out=entk_widths[-1], batchnorm=False), contraction="sum",
                implementation="exact", dtype="float32")
entk_rows = scaling.scaling_curve(*tables[first][:4], entk_ns, seeds=[0], h=h, loss=loss, batch_size=batch_size,
                                  kernel=entk, breakdown=True) if entk_ns else []
rbf_rows = scaling.scaling_curve(*tables[first][:4], entk_ns, seeds=[0], h=h, loss=loss,
                                 batch_size=batch_size, breakdown=True) if entk_ns else []
breakdown = {f"{kname} n={r['n']}": scaling.time_breakdown(r)
             for kname, rows in (("rbf", rbf_rows), ("entk", entk_rows)) for r in rows}
for key, b in breakdown.items():
    tot = sum(b.values())
    print(f"{key:<14s} total {tot:7.2f} s: " + ", ".join(f"{k} {v:.2f} s ({100 * v / tot:.0f}%)" for k, v in b.items()))

# %% [markdown]
# ## Claims

# %%
f_k, f_f = fits[f"KREPES {first}"], fits["full kernel"]
kre_rows_first = [r for r in curve[first] if r["n"] >= fit_min_n]
claims = [
    kr.claims.decide_check(
        f"{first}: runtime grows like n^1.5 (m ≈ √n) vs n² for the full kernel",
        "n^1.5 vs n²",
        f"KREPES slope {f_k.slope:.2f} [{f_k.ci_t[0]:.2f}, {f_k.ci_t[1]:.2f}] over n = {min(r['n'] for r in kre_rows_first)}"
        f"…{max(r['n'] for r in kre_rows_first)}; full kernel {f_f.slope:.2f} [{f_f.ci_t[0]:.2f}, {f_f.ci_t[1]:.2f}] "
        f"over n = {min(full_ns)}…{max(full_ns)}; 1.5 inside the KREPES CI: {f_k.ci_t[0] <= 1.5 <= f_k.ci_t[1]}",
        "holds if the 95% t-interval of the KREPES training-time slope (m = ⌈√n⌉) lies entirely below 2 "
        "and below the full kernel's interval; does not hold if it lies entirely at or above 2; "
        "else inconclusive (fixed before the run)",
        holds=f_k.ci_t[1] < 2 and f_k.ci_t[1] < f_f.ci_t[0], fails=f_k.ci_t[0] >= 2),
    par,
]
for c in claims:
    print(f"- {c['claim']}\n    ours: {c['ours']}\n    rule: {c['rule']}\n    → {c['verdict']}")
assert all(f.ci_t[0] <= f.slope <= f.ci_t[1] for f in fits.values() if np.isfinite(f.ci_t[0]))
assert f_f.slope > f_k.slope, "the full kernel must grow faster than KREPES"
assert all(0.4 < r["accuracy"] <= 1 for rows in both.values() for r in rows)

# %%
save_results(
    "13_scaling",
    {"claims": claims, "curve": curve, "both": both, "sweep": sweep, "m_star": m_star, "m_growth": m_growth,
     "nystrom_error_slopes": {n: f.slope for n, f in err_fit.items()}, "breakdown": breakdown,
     "fits": {k: vars(f) for k, f in fits.items()}, "crossover_n": n_cross, "skipped": skipped,
     "load_average": os.getloadavg()},
    parameters=dict(datasets=datasets, ns=ns, full_ns=full_ns, seeds=seeds, acc_seeds=acc_seeds,
                    fit_min_n=fit_min_n, h=h, loss=loss, batch_size=batch_size, n_test=n_test,
                    m_sweep_ns=m_sweep_ns, m_values=m_values, equiv_margin=equiv_margin, alpha=alpha,
                    entk_ns=entk_ns, entk_widths=entk_widths, cpu_threads=cpu_threads),
)

# %% [markdown]
# ## Summary
#
# * The fitted slopes, their intervals, the crossover and the m-choice rule's result are printed
#   above from this run; the claim rows state the rules. With m = ⌈√n⌉ every KREPES stage is
#   O(n·m) = O(n^1.5) except the m×m eigendecomposition (O(n^1.5) too): the kernel pass, the
#   epoch and k-means++ dominate. The full kernel's cost is dominated by its n×n
#   eigendecomposition (O(n³)), its epoch and kernel are O(n²): over the small n it affords,
#   the fitted slope mixes these.
# * Timings at small n measure fixed overheads (Python, BLAS call latency); `fit_min_n`
#   excludes them from the fits.
# * Rows beyond the real table are our jittered bootstrap copies, not new data: the accuracy
#   at those n measures the method on resampled data, the runtime is what this study is about.
#
# ## Exercises
#
# 1. Set `m_values` to a finer grid and `m_sweep_ns` to more sizes: does the smallest
#    sufficient m grow like √n, slower, or faster on Adult?
# 2. Replace k-means++ by uniform landmarks (`scaling.nystrom_timings(..., landmarks="uniform")`):
#    which stage's slope changes?
# 3. Widen the eNTK's MLP (`entk_widths = [256, 256, 8]`): how does the kernel share change?
