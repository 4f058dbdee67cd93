# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # HE-3: with less data, scratch still catches up, down to a breakdown regime where it overfits
#
# **Finding (He, Girshick & Dollár 2019).** Trained on 35k or 10k COCO images, a detector from random
# initialisation still reaches the pre-trained one when each is given its best schedule (36.3 vs 36.3,
# 25.9 vs 26.0 box AP). With 3.5k and 1k images it does not (9.3 vs 16.0, 3.5 vs 9.9): there the scratch
# model's training loss catches up with the pre-trained one's while its validation loss does not — it
# overfits.
#
# **Here.** The same detector and step policy as HE-1, on nested subsets of the downstream scenes.
# Every data size keeps the full set's schedule lengths in *iterations* (as He et al. keep COCO's
# iteration counts), so a smaller set is seen for more epochs. Each arm is scored at its best schedule
# for each data size (chosen by mean validation AP over seeds, alike for both arms). The full-data runs
# are HE-1's and come back from the run cache.
#
# **Pre-registered criterion** (config/study.yaml): with each arm at its best schedule,
# |pre-trained − scratch| AP at `he3_catchup_fraction` of the data ≤ `he3_max_gap_catchup` points, and
# pre-trained − scratch at the smallest size > `he3_min_gap_smallest` points (95% CIs over seeds).

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/02_he3_less_data"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali (unused: detection batches go through Kornia)
arch: str = "resnet9"
width: int = 16                     # channels of the first stage
norm: str = "gn"                    # gn | bn | none
seeds: list = [0, 1, 2]
epochs_1x: float = 2                # epochs over the *full* downstream scene set in a 1x schedule
batch_size: int = 32
lr: float = 0.05                    # peak SGD learning rate
grad_clip: float = 5.0              # max gradient norm
aug: str = "S1"                     # augmentation level S0-S4
evals: int = 4                      # validation evaluations per run (the loss curves)
label_fractions: list = [1.0, 0.3, 0.1, 0.03]  # nested shares of the downstream training scenes
schedules: list = [1, 4]            # multiples of the full set's 1x, in iterations
he3_catchup_fraction: float = 0.1   # the data size at which scratch must catch up (pre-registered)
he3_max_gap_catchup: float = 2.0    # AP points (pre-registered)
he3_min_gap_smallest: float = 0.0   # AP points (pre-registered)

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rethink import plots

# %% [markdown]
# ## Runs

# %%
study.require_member("he3_catchup_fraction", he3_catchup_fraction, label_fractions, "label_fractions")
runs = study.fixed_iteration_runs(world_dir, "detect", label_fractions, schedules, seeds,
                                  inits=["scratch", "pretrained"], epochs_1x=epochs_1x, batch_size=batch_size)
results = study.sweep(runs, task="detect", world_dir=world_dir, upstream_checkpoint=upstream_checkpoint,
                      runs_dir=runs_dir, arch=arch, width=width, norm=norm, batch_size=batch_size, lr=lr,
                      grad_clip=grad_clip, aug=aug, aug_backend=aug_backend, evals=evals, device=device)
findings = [study.he3_finding(results, he3_catchup_fraction, he3_max_gap_catchup, he3_min_gap_smallest, profile,
                              figure="he3_data_size.png")]
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# ## Box AP against data size, each arm at its best schedule

# %%
best = study.best_schedule(study.final_metric(results, "AP"))
figure = plots.metric_curve(best, "AP", "HE-3: each arm at its best schedule", x="label_fraction", log_x=True)
plots.save(figure, Path(out_dir) / "he3_data_size.png")

# %% [markdown]
# Ours (mean ± 95% CI half-width, each arm at its best schedule) and the schedule that was best; then the
# paper's numbers (COCO, 118k images = 100%).

# %%
table = study.paper_comparison(best, {}, by="label_fraction")
for arm in ("scratch", "pretrained"):
    table[(arm, "best schedule")] = best[best.arm == arm].groupby("label_fraction").schedule.first()
display(table.sort_index(axis=1).sort_index(ascending=False))
display(pd.DataFrame(study.PAPER_TABLES["HE-3"]))

# %% [markdown]
# ## The overfitting signature: training and validation loss
# Loss over training steps at the longest schedule, per data size (solid: training, dashed: validation;
# mean over seeds, 95% CI band). In the breakdown regime the scratch model's training loss falls to the
# pre-trained one's while its validation loss stays above it, or rises.

# %%
longest = results[results.schedule == max(schedules)]
plots.save(plots.training_curves(longest, "loss", panel="label_fraction", x="step", splits=("train", "val")),
           Path(out_dir) / "he3_loss_curves.png")

# %% [markdown]
# ## Verdict

# %%
display(Markdown(study.verdict_markdown(findings)))
