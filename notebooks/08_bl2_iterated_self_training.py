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
# # BL-2: iterated self-training
#
# **Finding (the overview article; Xie et al. 2020's noisy student).** The self-training loop repeats: a
# teacher pseudo-labels the unlabeled images it is confident about, a noisy student learns from labels and
# pseudo-labels, and the student becomes the next round's teacher. Accuracy improves over the rounds.
#
# **Here.** The classification setting of notebooks 04 and 05, at (`bl2_aug`, `bl2_label_fraction`) from
# random init: round 0 is the supervised teacher, round 1 the noisy student of notebook 05 (the same cached
# runs), and each later round's student learns from the pseudo-labels of the round before. Every student
# trains as long as the teacher, with the normalised joint loss (`rethink.pseudo.LossNormaliser`).
#
# **Pre-registered criterion** (config/study.yaml, 95% CIs over seeds): the last round's accuracy − the
# teacher's, and − the first round's, each > `bl2_min_gain` points.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/08_bl2_iterated_self_training"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali: who augments the classification batches
arch: str = "resnet9"
width: int = 16
norm: str = "gn"
seeds: list = [0, 1, 2]
epochs_1x: float = 1                # epochs over the *full* downstream set in 1x; every label share trains as long
schedule: float = 4                 # multiple of 1x (He et al.'s step policy)
batch_size: int = 64                # labelled images per step
lr: float = 0.1                     # peak SGD learning rate
evals: int = 2                      # validation evaluations per run
aug_levels: list = ["S1", "S4"]     # the grid of notebooks 04 and 05 (the cell must be in it)
label_fractions: list = [0.2, 0.5, 1.0]
bl2_rounds: int = 3                 # teacher -> student rounds
pseudo_threshold: float = 0.5       # the teacher's top class probability a pseudo-label needs
pseudo_soft: bool = True            # soft (the teacher's distribution) or hard (one-hot) pseudo-labels
pseudo_weight: float = 1.0          # alpha: the pseudo-label loss's weight
pseudo_batch_size: int = 32         # pseudo-labelled images per step
bl2_aug: str = "S1"                 # the cell (pre-registered)
bl2_label_fraction: float = 1.0
bl2_min_gain: float = 0.0           # accuracy points (pre-registered)

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

from IPython.display import Markdown, display

from rethink import plots
from rethink import selfsup_study as nd

# %% [markdown]
# ## Runs

# %%
study.require_member("bl2_aug", bl2_aug, aug_levels, "aug_levels")
study.require_member("bl2_label_fraction", bl2_label_fraction, label_fractions, "label_fractions")
runs = nd.bl2_runs(world_dir, bl2_aug, bl2_label_fraction, "scratch", bl2_rounds, seeds, epochs_1x, batch_size)
results = study.sweep(runs, task="classify", world_dir=world_dir, upstream_checkpoint=upstream_checkpoint,
                      runs_dir=runs_dir, arch=arch, width=width, norm=norm, batch_size=batch_size, schedule=schedule,
                      lr=lr, evals=evals, aug_backend=aug_backend, device=device, pseudo_threshold=pseudo_threshold,
                      pseudo_soft=pseudo_soft, pseudo_weight=pseudo_weight, pseudo_batch_size=pseudo_batch_size)
findings = [nd.bl2_finding(study.final_metric(results, "accuracy"), bl2_min_gain, profile, figure="bl2_rounds.png")]
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# ## Accuracy per round
# Bars: mean with 95% CI over seeds; dots: seeds.

# %%
final = study.final_metric(results, "accuracy")
plots.save(plots.arm_bars(final, "accuracy", f"BL-2: self-training rounds at {study.cell_name(bl2_aug, bl2_label_fraction)}"),
           Path(out_dir) / "bl2_rounds.png")
display(final.groupby("arm").value.apply(plots.mean_ci_text).to_frame("accuracy"))

# %% [markdown]
# Validation accuracy over each round's training steps (mean over seeds, 95% CI band): whether a round had
# converged, and whether a student starts from where its teacher ended or falls back.

# %%
plots.save(plots.training_curves(results, "accuracy", panel="label_fraction", x="step"),
           Path(out_dir) / "bl2_curves_val_accuracy.png")

# %% [markdown]
# Each round's pseudo-labels (from the pool's hidden labels, mean over seeds): the share of the pool kept,
# the share of kept images that show a downstream class, and the pseudo-labels' accuracy on those.

# %%
display(results[results.split == "pseudo"].groupby(["arm", "metric"]).value.mean().unstack("metric").round(3))

# %% [markdown]
# ## Verdict

# %%
display(Markdown(study.verdict_markdown(findings)))
