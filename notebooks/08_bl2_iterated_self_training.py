# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # BL-2: iterated self-training
#
# **Finding (the overview article; Xie et al. 2020's noisy student,
# [arXiv 1911.04252](https://arxiv.org/abs/1911.04252)).** The self-training loop repeats: a
# teacher pseudo-labels the unlabeled images it is confident about, a noisy student learns from labels and
# pseudo-labels, and the student becomes the next round's teacher. Accuracy improves over the rounds.
#
# The answer is under *Summary*; how it was tested, under *How it was tested* below it.

# %%
from pathlib import Path

from IPython.display import display

from rethink import config
from rethink.report import figures, pages
from rethink.study import bl, effects, notebook, runs, zo

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
s = config.notebook("08_bl2_iterated_self_training", globals())  # config/study.yaml under the profile; the cell above wins
grid = lambda: bl.bl2_runs(s.world_dir, bl2_aug, bl2_label_fraction, "scratch", s.bl2_rounds, s.seeds,
                           zo.level_value(s.epochs_1x, bl2_aug), s.batch_size)
bl2_aug, bl2_label_fraction = zo.cell_of("BL-2", s)
results = notebook.results(s, lambda: runs.sweep(grid(), s, task="classify", held_out="final"))
findings = notebook.judge(s, [bl.bl2_finding(effects.final_metric(results, "accuracy", effects.scored_split(results, "accuracy")), s.criteria["BL-2"], s.profile,
                                             figure="bl2_rounds.png")], results)

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** The classification setting of notebooks 04 and 05, at BL-2's cell (its criterion's `aug` and `label_fraction`) from
# random init: round 0 is the supervised teacher, round 1 the noisy student of notebook 05 (the same cached
# runs), and each later round's student learns from the pseudo-labels of the round before. Every student
# trains as long as the teacher, with the normalised joint loss (`rethink.core.training.pseudo.LossNormaliser`).
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.

# %% [markdown]
# ## Accuracy per round
# Bars: mean with 95% CI over seeds; dots: seeds.

# %%
final = effects.final_metric(results, "accuracy")
rounds = sorted(final.arm.unique(), key=lambda arm: 0 if arm.startswith("teacher") else int(arm.split()[-1]))
figures.save(figures.arm_points(final, "accuracy", f"BL-2: self-training rounds at "
                                f"{zo.cell_name(bl2_aug, bl2_label_fraction)}", order=rounds),
             Path(s.out_dir) / "bl2_rounds.png",
             caption=f"BL-2. Accuracy of the teacher and of each self-training round's student at "
                     f"{zo.cell_name(bl2_aug, bl2_label_fraction)}, in order (mean with 95% CI; grey lines: one "
                     f"seed each, so a round's paired gain is a line's slope). The loop "
                     f"is Xie et al. 2020's noisy student ([arXiv 1911.04252](https://arxiv.org/abs/1911.04252)).")
display(final.groupby("arm").value.apply(figures.mean_ci_text).to_frame("accuracy"))

# %% [markdown]
# Validation accuracy over each round's training steps (mean over seeds, 95% CI band): whether a round had
# converged, and whether a student starts from where its teacher ended or falls back.

# %%
figures.save(figures.training_curves(results, "accuracy", panel="label_fraction", x="step"),
           Path(s.out_dir) / "bl2_curves_val_accuracy.png",
             caption="Validation accuracy over each round's training steps (mean over seeds, 95% CI band).")

# %% [markdown]
# Each round's pseudo-labels (from the pool's hidden labels, mean over seeds): the share of the pool kept,
# the share of kept images that show a downstream class, and the pseudo-labels' accuracy on those.

# %%
display(results[results.split == "pseudo"].groupby(["arm", "metric"]).value.mean().unstack("metric").round(3))

# %%
pages.show_closing(findings, s)
