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
# # HE-1 and HE-2: training from scratch catches up with pre-training, and localizes no worse
#
# **Findings (He, Girshick & Dollár 2019, "Rethinking ImageNet Pre-training").**
# *HE-1*: with GroupNorm, a detector trained from random initialisation reaches the box AP of one
# fine-tuned from ImageNet pre-training when it is trained long enough: pre-training speeds up
# convergence but does not raise the final result (R50 Mask R-CNN box AP at 2x-6x: scratch
# 36.8 / 39.5 / 40.6 / 40.7 / 41.3, pre-trained 40.3 / 40.8 / 40.9 / 40.9 / 41.1).
# *HE-2*: at convergence, pre-training gives no better localization: scratch is at least as good on
# the strict AP75 (R50 at 6x: scratch 41.3 / 61.8 / 45.6, pre-trained 41.1 / 61.7 / 44.6 AP / AP50 / AP75).
#
# **Here.** The downstream task is detection in the synthetic world's scenes (several downstream-class
# objects per image, occluding each other), scored with pycocotools; the detector is a CenterNet-style
# head on a ResNet-9 with GroupNorm. Pre-training is supervised classification of the disjoint
# *upstream* classes (the study's "ImageNet", the Snakemake rule `pretrain`). Both arms train with He
# et al.'s step policy (the learning rate drops 10x for the last 2/3 and the last 2/9 of a 1x schedule,
# whatever the total length) and flip + crop augmentation. A second panel repeats HE-1 on the
# downstream classification task. Each (init, schedule, seed) is one run, cached, so re-plotting never
# retrains.
#
# **Pre-registered criteria** (config/study.yaml, fixed before the runs, judged on 95% confidence
# intervals over seeds). HE-1: pre-trained − scratch AP at the shortest schedule > `he1_min_gap_shortest`
# and |pre-trained − scratch| at the longest ≤ `he1_max_gap_longest` points. HE-2: scratch − pre-trained
# AP75 at the longest schedule > `he2_min_gap_ap75` points.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/01_he1_he2_schedules"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali (classification batches)
# detection (the main panel)
arch: str = "resnet9"
width: int = 16                     # channels of the first stage
norm: str = "gn"                    # gn | bn | none
seeds: list = [0, 1, 2]
epochs_1x: float = 2                # epochs over the downstream scenes in a 1x schedule
batch_size: int = 32
lr: float = 0.05                    # peak SGD learning rate
grad_clip: float = 5.0              # max gradient norm (the box regression can spike)
aug: str = "S1"                     # augmentation level S0-S4 (He et al.: flip + crop)
evals: int = 4                      # validation evaluations per run
schedules: list = [1, 2, 4, 6]      # multiples of the 1x schedule
# classification (the second panel)
classify_schedules: list = [1, 2, 6]
classify_seeds: list = [0, 1, 2]
classify_epochs_1x: float = 2
classify_batch_size: int = 128
classify_lr: float = 0.1
classify_evals: int = 6
# pre-registered criteria
he1_min_gap_shortest: float = 0.0   # points
he1_max_gap_longest: float = 2.0    # points
he2_min_gap_ap75: float = -1.0      # points

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from rethink import plots

paths = dict(world_dir=world_dir, upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir)
common = dict(arch=arch, width=width, norm=norm, aug=aug, aug_backend=aug_backend, device=device)

# %% [markdown]
# ## Runs
# Every (init, schedule, seed) is trained, for detection and for classification; finished runs are read
# back from `runs_dir`.

# %%
detect = study.sweep(study.grid(init=["scratch", "pretrained"], schedule=schedules, seed=seeds), task="detect",
                     epochs_1x=epochs_1x, batch_size=batch_size, lr=lr, grad_clip=grad_clip, evals=evals,
                     **common, **paths)
classify = study.sweep(study.grid(init=["scratch", "pretrained"], schedule=classify_schedules, seed=classify_seeds),
                       task="classify", epochs_1x=classify_epochs_1x, batch_size=classify_batch_size, lr=classify_lr,
                       evals=classify_evals, **common, **paths)
findings = [
    study.he1_finding(detect, "AP", he1_min_gap_shortest, he1_max_gap_longest, profile, figure="he1_schedules.png"),
    study.he2_finding(detect, he2_min_gap_ap75, profile, figure="he2_metrics.png"),
    study.he1_finding(classify, "accuracy", he1_min_gap_shortest, he1_max_gap_longest, profile,
                      figure="he1_schedules.png", panel="classification"),
]
results = pd.concat([detect.assign(task="detect"), classify.assign(task="classify")])
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# ## HE-1: final box AP and accuracy against schedule length
# Schedules are multiples of this study's own 1x (a few epochs), not of the paper's 90k iterations.

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
plots.metric_curve(study.final_metric(detect, "AP"), "AP", "detection: box AP", ax=left)
plots.metric_curve(study.final_metric(classify, "accuracy"), "accuracy", "classification: accuracy", ax=right)
figure.suptitle("HE-1: scratch vs pre-trained over schedule length (mean, 95% CI over seeds)")
figure.tight_layout()
plots.save(figure, Path(out_dir) / "he1_schedules.png")

# %% [markdown]
# Box AP per schedule, ours (mean ± 95% CI half-width) next to the paper's R50 numbers (its own 1x).

# %%
display(study.paper_comparison(study.final_metric(detect, "AP"), study.PAPER_TABLES["HE-1"]))
display(study.paper_comparison(study.final_metric(classify, "accuracy"), {}))

# %% [markdown]
# ## HE-2: AP, AP50 and AP75 at the longest schedule (the paper's Table 2)

# %%
display(study.metric_table(detect, max(schedules), study.PAPER_TABLES["HE-2"]))
longest = detect[detect.schedule == max(schedules)]
figure = plots.metric_bars({m: study.final_metric(longest, m) for m in ("AP", "AP50", "AP75")},
                           f"HE-2: box AP at {max(schedules):g}x (mean, 95% CI over seeds)")
plots.save(figure, Path(out_dir) / "he2_metrics.png")

# %% [markdown]
# ## Training curves
# Validation box AP and training loss over epochs, per schedule (mean over seeds, 95% CI band).

# %%
plots.save(plots.training_curves(detect, "AP"), Path(out_dir) / "he1_curves_val_ap.png")
plots.save(plots.training_curves(detect, "loss", split="train"), Path(out_dir) / "he1_curves_train_loss.png")
plots.save(plots.training_curves(classify, "accuracy"), Path(out_dir) / "he1_curves_val_accuracy.png")

# %% [markdown]
# ## Verdicts

# %%
display(Markdown(study.verdict_markdown(findings)))
