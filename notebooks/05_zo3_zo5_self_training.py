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
# # ZO-3 to ZO-5: self-training helps where pre-training does not
#
# **Findings (Zoph et al. 2020).** *ZO-3*: noisy-student self-training — a teacher trained on the labelled
# set pseudo-labels unlabeled images (ImageNet's, for COCO), a student learns from labels and pseudo-labels
# together under strong augmentation — helps in every regime, by +1.3 to +3.4 AP, including where
# pre-training hurts, and it stacks with pre-training. *ZO-4*: self-supervised pre-training (SimCLR)
# behaves like supervised pre-training — it hurts where that hurts — and self-training still helps on top
# of it. *ZO-5*: training on both losses jointly helps, and the normalised pseudo-label loss keeps it stable.
#
# **Here.** The grid of notebook 04 (its supervised runs come back from the run cache and serve as the
# teachers). The unlabeled pool is a world file of images of the downstream classes, as Noisy Student
# draws in-distribution images, plus the world's `unlabeled_ood_share` of upstream ones (default 0), with
# its labels hidden (used only to say how good the pseudo-labels were). For each cell, init
# and seed, the teacher is the supervised run of the same settings; it labels the pool in batches on the
# device, keeping images whose top class probability is at least `pseudo_threshold` (soft labels:
# the teacher's distribution). The student starts from the teacher's init, trains as many iterations on
# each labelled batch plus `pseudo_batch_size` pseudo-labelled images, equally augmented, with Zoph et
# al.'s loss normalisation (`rethink.core.pseudo.LossNormaliser`). Algorithms by name: `rethink.core.selftrain`.
#
# **Pre-registered criteria** (config/study.yaml, 95% CIs over seeds, accuracy points). ZO-3: student −
# teacher > `zo3_min_gain` in every cell, on random and on pre-trained init. ZO-4: at the strongest
# augmentation with all labels, SimCLR init − scratch < `zo4_max_gain` and SimCLR's student − SimCLR init
# > `zo4_min_gain_selftraining`. ZO-5: at (`zo5_aug`, `zo5_label_fraction`), from random init, joint
# self-training minus each of the supervised teacher, the sequential use of the same pseudo-labels
# (pseudo-labels first, then the labels) and the joint run without loss normalisation > `zo5_min_gain`.

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
from rethink import config

# Every other setting comes from config/study.yaml (the profile's block for this notebook and its criteria);
# what the cell above or papermill set wins. Each becomes a plain name below.
parameters = config.notebook_parameters("05_zo3_zo5_self_training", globals())
globals().update(parameters)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from rethink.report import figures
from rethink.study import gates, outputs, runs, verdicts, zo

# %% [markdown]
# ## Runs
# Supervised teachers and baselines for random, pre-trained and SimCLR init in every cell; a noisy student
# for random and pre-trained init in every cell and for SimCLR init at the strongest augmentation with all
# labels; ZO-5's sequential and unnormalised students at its cell.

# %%
verdicts.require_member("zo5_aug", zo5_aug, aug_levels, "aug_levels")
verdicts.require_member("zo5_label_fraction", zo5_label_fraction, label_fractions, "label_fractions")
if not from_results:
    corner = (aug_levels[-1], max(label_fractions))
    grid = (zo.zo_runs(world_dir, label_fractions, aug_levels, seeds, ["scratch", "pretrained"], epochs_1x, batch_size,
                       students=["scratch", "pretrained"], extra_students=zo.ZO5_ARMS,
                       extra_cell=(zo5_aug, zo5_label_fraction))
            + zo.zo_runs(world_dir, label_fractions, aug_levels, seeds, ["simclr"], epochs_1x, batch_size,
                         students=["simclr"], student_cells=[corner]))
    results = runs.sweep(grid, task="classify", world_dir=world_dir, upstream_checkpoint=upstream_checkpoint,
                         checkpoints={"simclr": simclr_checkpoint}, runs_dir=runs_dir, arch=arch, width=width,
                         norm=norm, batch_size=batch_size, schedule=schedule, lr=lr, evals=evals,
                         aug_backend=aug_backend, device=device, precision=precision, pseudo_threshold=pseudo_threshold,
                         pseudo_soft=pseudo_soft, pseudo_weight=pseudo_weight, pseudo_batch_size=pseudo_batch_size)
    outputs.write_results(out_dir, results, parameters,
                          checkpoints={"pretrained (supervised)": upstream_checkpoint, "simclr": simclr_checkpoint})
results = outputs.read_results(out_dir, results_dir if from_results else None)
findings = [zo.zo3_finding(results, zo3_min_gain, profile, figure="zo3_self_training_gain.png"),
            zo.zo4_finding(results, zo4_max_gain, zo4_min_gain_selftraining, profile, figure="zo4_simclr.png"),
            zo.zo5_finding(results, zo5_aug, zo5_label_fraction, zo5_min_gain, profile, figure="zo5_joint.png")]
findings = [verdicts.apply_gates(f, gates.report_gates(results, parameters, out_dir, checkpoint_of=lambda run: {"pretrained": "pretrained (supervised)", "simclr": "simclr"}.get(run["init"]))) for f in findings]
outputs.write_findings(out_dir, findings, from_results, deviations)

# %% [markdown]
# ## ZO-3: the gain from self-training in every cell
# Student − teacher, paired by seed, on random and on pre-trained init (the paper's Tables 4 and 5). For
# comparison, the gain from pre-training in the same cells (pretrained − scratch, the runs of notebook 04).

# %%
final = verdicts.final_metric(results, "accuracy")
gains = zo.cell_gains(final, {"self-training on scratch": ("scratch+ST", "scratch"),
                                 "self-training on pretrained": ("pretrained+ST", "pretrained"),
                                 "pre-training (pretrained − scratch)": ("pretrained", "scratch")})
figures.save(figures.gain_bars(gains, "ZO-3: accuracy change from self-training (and from pre-training)"),
           Path(out_dir) / "zo3_self_training_gain.png")
display(outputs.gain_table(gains))

# %% [markdown]
# The pseudo-labels: the share of the unlabeled pool the teachers kept, the share of kept images that
# show a downstream class at all (all of them unless the pool has an out-of-domain share), and the pseudo-labels' accuracy on
# those (mean over seeds, from the pool's hidden labels).

# %%
quality = results[results.split == "pseudo"]
display(quality.groupby(["aug", "label_fraction", "arm", "metric"]).value.mean().unstack("metric").round(3))

# %% [markdown]
# ## ZO-4: SimCLR init, and self-training on top of it
# SimCLR trained on the upstream images without their labels (the `simclr` rule; its 1-NN probe on the
# upstream validation set beside the supervised checkpoint's accuracy):

# %%
display(outputs.checkpoint_table(out_dir))
simclr_gains = zo.cell_gains(final, {"simclr − scratch": ("simclr", "scratch"),
                                        "pretrained − scratch": ("pretrained", "scratch"),
                                        "self-training on simclr": ("simclr+ST", "simclr")})
figures.save(figures.gain_bars(simclr_gains, "ZO-4: SimCLR init against supervised pre-training"),
           Path(out_dir) / "zo4_simclr.png")
display(outputs.gain_table(simclr_gains))

# %% [markdown]
# ## ZO-5: joint against sequential self-training, and the loss normalisation
# At (`zo5_aug`, `zo5_label_fraction`), from random init: accuracy per arm (bars: 95% CI; dots: seeds),
# and the labelled and pseudo-label training losses of the joint runs with and without normalisation.

# %%
cell = final[(final.aug == zo5_aug) & (final.label_fraction == zo5_label_fraction)
             & final.arm.isin(["scratch", "scratch+ST", *zo.ZO5_ARMS])]
figures.save(figures.arm_bars(cell, "accuracy", f"ZO-5 at {zo.cell_name(zo5_aug, zo5_label_fraction)}"),
           Path(out_dir) / "zo5_joint.png")
joint = results[(results.aug == zo5_aug) & (results.label_fraction == zo5_label_fraction)
                & results.arm.isin(["scratch+ST", "scratch+ST unnormalised"])]
figures.save(figures.training_curves(joint, "loss", panel="label_fraction", x="step", splits=("train",)),
           Path(out_dir) / "zo5_losses.png")
display(joint[joint.metric.isin(["loss", "pseudo_loss"]) & (joint.split == "train")]
        .groupby(["arm", "metric", "step"]).value.mean().unstack("step").round(3))

# %% [markdown]
# ## Validity gates
# Every arm a condition compares, and its gates (`rethink.study.gates`, thresholds in the `gates` block of
# config/study.yaml): ✓ or ✗, a failing run's value (or the first run's) against the threshold, and how many
# of its runs failed. A condition whose arms failed a gate is `not tested`: its numbers say nothing about the
# paper.

# %%
display(outputs.gates_table(findings))

# %% [markdown]
# ## Deviations from the pre-registration

# %%
display(Markdown(outputs.deviations_markdown(deviations)))

# %% [markdown]
# ## Verdicts

# %%
display(Markdown(outputs.verdict_markdown(findings)))
