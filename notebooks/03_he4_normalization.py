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
# # HE-4: normalization decides whether training from scratch works
#
# **Finding (He, Girshick & Dollár 2019).** Detectors fit few images on each GPU, so BatchNorm computes
# its statistics over 1-2 images: from scratch, it then trains poorly. GroupNorm, whose statistics do not
# depend on the batch, or SyncBN, which pools them over the GPUs, make training from scratch work; so,
# with care, does a network without normalization (VGG-16: scratch 35.2 AP at 11x vs pre-trained 35.6 at 9x).
#
# **Here.** The HE-1 detector trained from scratch with four normalizations: GroupNorm (`gn`, HE-1's
# scratch runs, read back from the cache), BatchNorm whose statistics come from `bn_batch` images at a
# time as on data-parallel GPUs without SyncBN (`bn`, the whole batch is still one SGD step), BatchNorm
# over the whole batch as SyncBN would compute it (`syncbn`), and no normalization (`none`, convolutions
# with biases). Same schedule, learning rate, gradient clipping and seeds for all.
#
# **Pre-registered criterion** (config/study.yaml): from scratch, GN − small-batch BN box AP >
# `he4_min_gap` points (95% CI over seeds). SyncBN and no normalization are reported, not judged.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/03_he4_normalization"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali (unused: detection batches go through Kornia)
arch: str = "resnet9"
width: int = 16                     # channels of the first stage
norm: str = "gn"                    # HE-1's normalization (the gn arm)
seeds: list = [0, 1, 2, 3, 4]
epochs_1x: float = 2                # epochs over the downstream scenes in a 1x schedule
batch_size: int = 32                # images per SGD step, for every arm
lr: float = 0.05                    # peak SGD learning rate
grad_clip: float = 5.0              # max gradient norm
aug: str = "S1"                     # augmentation level S0-S4
evals: int = 4                      # validation evaluations per run
norms: list = ["gn", "bn", "syncbn", "none"]  # arms (rethink.study.NORM_ARMS)
bn_batch: int = 2                   # images per BatchNorm statistic in the `bn` arm (He et al.: 2 per GPU)
schedule: float = 2                 # multiple of the 1x schedule, for every arm
he4_min_gap: float = 0.0            # AP points (pre-registered)

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

from IPython.display import Markdown, display

from rethink import plots

# %% [markdown]
# ## Runs

# %%
results = study.sweep(study.norm_runs(norms, seeds, bn_batch), task="detect", world_dir=world_dir,
                      upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir, init="scratch", schedule=schedule,
                      arch=arch, width=width, norm=norm, epochs_1x=epochs_1x, batch_size=batch_size, lr=lr,
                      grad_clip=grad_clip, aug=aug, aug_backend=aug_backend, evals=evals, device=device)
findings = [study.he4_finding(results, he4_min_gap, profile, figure="he4_normalization.png")]
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# ## Box AP per normalization, from scratch

# %%
final = study.final_metric(results, "AP")
plots.save(plots.arm_bars(final, "AP", f"HE-4: from scratch at {schedule:g}x (mean, 95% CI; dots: seeds)"),
           Path(out_dir) / "he4_normalization.png")
display(study.metric_table(results.assign(schedule=schedule), schedule))

# %% [markdown]
# ## Training curves
# Training loss and validation box AP over epochs (mean over seeds, 95% CI band).

# %%
plots.save(plots.training_curves(results.assign(schedule=schedule), "loss", split="train"),
           Path(out_dir) / "he4_curves_train_loss.png")
plots.save(plots.training_curves(results.assign(schedule=schedule), "AP"), Path(out_dir) / "he4_curves_val_ap.png")

# %% [markdown]
# ## Verdict

# %%
display(Markdown(study.verdict_markdown(findings)))
