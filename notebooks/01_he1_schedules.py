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
# # HE-1: training from scratch catches up with pre-training, given a longer schedule
#
# **Finding (He, Girshick & Dollár 2019, "Rethinking ImageNet Pre-training").** With GroupNorm, a
# network trained from random initialisation reaches the accuracy of one fine-tuned from ImageNet
# pre-training when it is trained long enough: pre-training speeds up convergence but does not
# raise the final result. The paper's R50 Mask R-CNN box AP at 2x–6x schedules: scratch
# 36.8 / 39.5 / 40.6 / 40.7 / 41.3, pre-trained 40.3 / 40.8 / 40.9 / 40.9 / 41.1.
#
# **Here.** The downstream task is classification of the synthetic world's *downstream* shape
# classes; pre-training is supervised classification of the disjoint *upstream* classes (the
# study's "ImageNet", the Snakemake rule `pretrain`). Both arms use the same ResNet with GroupNorm,
# the same augmentation and He et al.'s step policy: the learning rate drops 10x for the last 2/3
# and the last 2/9 of a 1x schedule whatever the total length. Each schedule x init x seed is one
# run, cached, so that re-plotting never retrains.
#
# **Pre-registered criterion** (config/study.yaml, fixed before the runs): pre-trained − scratch
# at the shortest schedule > `he1_min_gap_shortest` points, and |pre-trained − scratch| at the
# longest schedule ≤ `he1_max_gap_longest` points, both judged on 95% confidence intervals over
# seeds.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/01_he1_schedules"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali
task: str = "classify"
arch: str = "resnet9"
width: int = 16                     # channels of the first stage
norm: str = "gn"                    # gn | bn | none
label_fraction: float = 1.0         # share of the downstream training labels, in (0, 1]
schedules: list = [1, 2, 4, 6]      # multiples of the 1x schedule
seeds: list = [0, 1, 2, 3]
epochs_1x: float = 3                # epochs over the downstream training set in 1x
batch_size: int = 128
lr: float = 0.1                     # peak SGD learning rate
aug: str = "S1"                     # augmentation level S0-S4
evals: int = 6                      # validation evaluations per run
he1_min_gap_shortest: float = 0.0   # points (pre-registered)
he1_max_gap_longest: float = 2.0    # points (pre-registered)

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

from IPython.display import Markdown, display

from rethink import plots

metric = study.TASK_METRIC[task]

# %% [markdown]
# ## Runs
# Every (init, schedule, seed) is trained; finished runs are read back from `runs_dir`.

# %%
results = study.schedule_sweep(
    world_dir=world_dir, upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir, task=task, arch=arch,
    width=width, norm=norm, label_fraction=label_fraction, schedules=schedules, seeds=seeds, epochs_1x=epochs_1x,
    batch_size=batch_size, lr=lr, aug=aug, aug_backend=aug_backend, evals=evals, device=device)
findings = study.he1_findings(results, metric, he1_min_gap_shortest, he1_max_gap_longest, profile,
                              figure="he1_schedules.png")
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# ## Final accuracy against schedule length

# %%
final = study.final_metric(results, metric)
figure = plots.schedule_curve(final, metric, "HE-1: scratch vs pre-trained over schedule length")
plots.save(figure, Path(out_dir) / "he1_schedules.png")

# %%
display(study.schedule_table(final))

# %% [markdown]
# ## Training curves
# Validation accuracy and training loss over epochs, per schedule (mean over seeds, 95% CI band).

# %%
plots.save(plots.training_curves(results, metric), Path(out_dir) / "he1_curves_val.png")
plots.save(plots.training_curves(results, "loss", split="train"), Path(out_dir) / "he1_curves_train_loss.png")

# %% [markdown]
# ## Verdict

# %%
display(Markdown(study.verdict_markdown(findings)))
