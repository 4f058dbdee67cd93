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
# # HE-3: with less data, scratch still catches up, down to a breakdown regime where it overfits
#
# **Finding (He, Girshick & Dollár 2019, [arXiv 1811.08883](https://arxiv.org/abs/1811.08883)).** Trained on
# 35k or 10k COCO images, a detector from random initialisation still reaches the pre-trained one when each is
# given its best schedule (36.3 vs 36.3, 25.9 vs 26.0 box AP). With 3.5k and 1k images it does not (9.3 vs
# 16.0, 3.5 vs 9.9): there the scratch model's training loss catches up with the pre-trained one's while its
# validation loss does not — it overfits.
#
# The answer is under *Summary*; how it was tested, under *How it was tested* below it.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from rethink import config
from rethink.report import figures, pages, tables
from rethink.study import effects, he, notebook, runs

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
s = config.notebook("02_he3_less_data", globals())  # config/study.yaml under the profile; the cell above wins
effects.require_member("HE-3's catchup_fraction", s.criteria["HE-3"]["catchup_fraction"], s.label_fractions,
                       "label_fractions")
grid = lambda: he.fixed_iteration_runs(s.world_dir, "detect", s.label_fractions, s.schedules, s.seeds,
                                       inits=["scratch", "pretrained"], epochs_1x=s.epochs_1x, batch_size=s.batch_size)
results = notebook.results(s, lambda: runs.sweep(grid(), s, task="detect", held_out="final"),
                           checkpoints={"pretrained": s.upstream_checkpoint})
findings = notebook.judge(s, [he.he3_finding(results, s.criteria["HE-3"], s.profile, figure="he3_data_size.png")],
                          results, task="detect")

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** The same detector and step policy as HE-1, on nested subsets of the downstream scenes.
# Every data size keeps the full set's schedule lengths in *iterations* (as He et al. keep COCO's
# iteration counts), so a smaller set is seen for more epochs. Each arm is scored at its best schedule
# for each data size (chosen by mean validation AP over seeds, alike for both arms) among `schedules`, HE-1's
# schedules, so that the best can be any of them. The full-data runs are HE-1's and come back from the run cache.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.

# %% [markdown]
# ## Box AP against data size, each arm at its best schedule

# %%
best = he.best_schedule(effects.final_metric(results, "AP"))
figure = figures.metric_curve(best, "AP", "HE-3: each arm at its best schedule", x="label_fraction", log_x=True)
figures.save(figure, Path(s.out_dir) / "he3_data_size.png",
             caption="HE-3. Final box AP against the share of the training scenes, each arm at its own best schedule"
                     " (mean over seeds, 95% CIs; log scale). The paper's version is its Figures 5-6 ([He et al. "
                     "2019](https://arxiv.org/abs/1811.08883)).")

# %% [markdown]
# Ours (mean ± 95% CI half-width, each arm at its best schedule) and the schedule that was best; then the
# paper's numbers (COCO, 118k images = 100%).

# %%
table = tables.paper_comparison(best, {}, by="label_fraction")
for arm in ("scratch", "pretrained"):
    table[(arm, "best schedule")] = best[best.arm == arm].groupby("label_fraction").schedule.first()
display(table.sort_index(axis=1).sort_index(ascending=False))
display(pd.DataFrame(he.PAPER_TABLES["HE-3"]))

# %% [markdown]
# ## The overfitting signature: training and validation loss
# Loss over training steps at the longest schedule, per data size (solid: training, dashed: validation;
# mean over seeds, 95% CI band). In the breakdown regime the scratch model's training loss falls to the
# pre-trained one's while its validation loss stays above it, or rises.

# %%
longest = results[results.schedule == max(s.schedules)]
figures.save(figures.training_curves(longest, "loss", panel="label_fraction", x="step", splits=("train", "val")),
           Path(s.out_dir) / "he3_loss_curves.png",
             caption=f"Training and validation loss at {max(s.schedules):g}x, one panel per data size (mean over "
                     f"seeds, 95% CI band): overfitting shows as a training loss that keeps falling while the "
                     f"validation loss stays up.")

# %%
pages.show_closing(findings, s)
