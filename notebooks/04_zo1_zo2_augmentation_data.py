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
# # ZO-1 and ZO-2: stronger augmentation and more labels leave pre-training less to give
#
# **Findings (Zoph et al. 2020, "Rethinking Pre-training and Self-training").**
# *ZO-1*: the stronger the data augmentation, the less ImageNet pre-training helps, until it hurts: on all
# of COCO it helps with flip + crop (Augment-S1) and costs about 1 AP with RandAugment and large scale
# jitter (Augment-S4). *ZO-2*: the more labelled data, the less it helps: with 20% of the COCO labels it
# helps, with 100% it hurts. Both hold for the stronger "ImageNet++" checkpoint too.
#
# **Here.** Downstream classification on the study's world: a grid of augmentation level (`aug_levels`,
# the ladder of `rethink.augment`, Kornia or DALI on the training device) × share of the downstream labels
# (`label_fractions`) × initialisation: random (`scratch`), the upstream supervised checkpoint
# (`pretrained`, the study's "ImageNet") and the same pre-training run longer (`pretrained_longer`, the
# study's "ImageNet++"). Every cell trains the same number of iterations (`schedule` × `epochs_1x` over the full set),
# so a smaller label share is seen for more epochs, as the paper keeps its iteration counts.
#
# **Pre-registered criteria** (config/study.yaml; gain = pretrained − scratch accuracy, paired by seed,
# 95% CIs). ZO-1, with all labels: gain at the strongest level − gain at the weakest < `zo1_max_drop`, and
# gain at the strongest < `zo1_max_gain_strongest`. ZO-2, at the strongest level: gain with the fewest
# labels > `zo2_min_gain_smallest`, and gain with all labels − gain with the fewest < `zo2_max_drop`.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
longer_checkpoint: str = "../cache/default/checkpoints/upstream_longer.pt"  # "ImageNet++"
simclr_checkpoint: str = "../cache/default/checkpoints/simclr.pt"          # (notebook 05)
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/04_zo1_zo2_augmentation_data"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali: who augments the classification batches
arch: str = "resnet9"
width: int = 16                     # channels of the first stage (the checkpoints' width)
norm: str = "gn"
seeds: list = [0, 1, 2]
epochs_1x: float = 1                # epochs over the *full* downstream set in 1x; every label share trains as long
schedule: float = 4                 # multiple of 1x (He et al.'s step policy)
batch_size: int = 64
lr: float = 0.1                     # peak SGD learning rate
evals: int = 2                      # validation evaluations per run
aug_levels: list = ["S1", "S4"]     # weakest first
label_fractions: list = [0.2, 0.5, 1.0]
inits: list = ["scratch", "pretrained", "pretrained_longer"]
zo1_max_drop: float = 0.0           # accuracy points (pre-registered)
zo1_max_gain_strongest: float = 0.0  # accuracy points (pre-registered)
zo2_min_gain_smallest: float = 0.0  # accuracy points (pre-registered)
zo2_max_drop: float = 0.0           # accuracy points (pre-registered)

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
runs = study.zo_runs(world_dir, label_fractions, aug_levels, seeds, inits, epochs_1x, batch_size)
results = study.sweep(runs, task="classify", world_dir=world_dir, upstream_checkpoint=upstream_checkpoint,
                      checkpoints={"pretrained_longer": longer_checkpoint}, runs_dir=runs_dir, arch=arch,
                      width=width, norm=norm, batch_size=batch_size, schedule=schedule, lr=lr, evals=evals,
                      aug_backend=aug_backend, device=device)
findings = [study.zo1_finding(results, zo1_max_drop, zo1_max_gain_strongest, profile, figure="zo_pretraining_gain.png"),
            study.zo2_finding(results, zo2_min_gain_smallest, zo2_max_drop, profile, figure="zo_pretraining_gain.png")]
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# The two upstream checkpoints on the upstream validation set (the paper's ImageNet and ImageNet++ models
# reach 84.5% and 86.9% top-1):

# %%
display(study.checkpoint_table({"pretrained": upstream_checkpoint, "pretrained_longer": longer_checkpoint}))

# %% [markdown]
# ## The change in accuracy from pre-training, per cell
# As the paper's Tables 2 and 3: each pre-trained init minus random init, paired by seed (bars: mean with
# 95% CI; dots: seeds). Above zero pre-training helps, below it hurts.

# %%
final = study.final_metric(results, "accuracy")
comparisons = {f"{init} − scratch": (init, "scratch") for init in inits if init != "scratch"}
gains = study.cell_gains(final, comparisons)
figure = plots.gain_bars(gains, "ZO-1/ZO-2: accuracy change from pre-training")
plots.save(figure, Path(out_dir) / "zo_pretraining_gain.png")
display(study.gain_table(gains))

# %% [markdown]
# ## Had the arms converged?
# Validation accuracy over training steps with all labels (mean over seeds, 95% CI band): a curve still
# rising at the last step had not converged, and its cell's gain says more about speed than about the end point.

# %%
plots.save(plots.training_curves(results[results.label_fraction == max(label_fractions)], "accuracy", panel="aug",
                                 x="step"), Path(out_dir) / "zo_curves_val_accuracy.png")

# %% [markdown]
# Accuracy of every arm (mean ± 95% CI half-width over seeds), per augmentation level and label share:

# %%
display(final.groupby(["aug", "label_fraction", "arm"]).value.apply(plots.mean_ci_text).unstack("arm"))

# %% [markdown]
# ## Verdicts

# %%
display(Markdown(study.verdict_markdown(findings)))
