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
# # ZO-3 to ZO-5: self-training helps where pre-training does not, and the three stack
#
# **Findings (Zoph et al. 2020, [arXiv 2006.06882](https://arxiv.org/abs/2006.06882)).** *ZO-3*: noisy-student
# self-training (a teacher trained on the labelled set pseudo-labels unlabeled images; a student learns from
# labels and pseudo-labels together under strong augmentation) helps in every regime, by +1.3 to +3.4 AP,
# including where pre-training hurts, and it stacks with pre-training. *ZO-4*: self-supervised pre-training
# (SimCLR) behaves like supervised pre-training (it hurts where that hurts) and self-training still helps on
# top of it. *ZO-5*: pre-training, joint training (the upstream labelled task trained in the same run) and
# self-training are additive.
#
# The answer is under *Summary*; how it was tested, under *How it was tested* below it.

# %%
from pathlib import Path

from IPython.display import display

from rethink import config
from rethink.report import figures, pages, tables
from rethink.study import effects, notebook, runs, zo

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
s = config.notebook("05_zo3_zo5_self_training", globals())  # config/study.yaml under the profile; the cell above wins
zo5_aug, zo5_label_fraction = zo.cell_of("ZO-5", s)


def train():
    """The supervised teachers (scratch and pre-trained in every cell, SimCLR at the strongest level with all labels),
    ZO-3's and ZO-4's noisy students, and ZO-5's joint arms, each student as long as its teacher."""
    strongest, most = s.aug_levels[-1], max(s.label_fractions)
    teachers = (zo.zo_runs(s.world_dir, s.label_fractions, s.aug_levels, s.seeds, ["scratch", "pretrained"],
                           s.epochs_1x, s.batch_size)
                + zo.zo_runs(s.world_dir, [most], [strongest], s.seeds, ["simclr"], s.epochs_1x, s.batch_size))
    students = zo.derived_runs(teachers, zo.zo3_cells(s.aug_levels, s.label_fractions) + [("simclr", strongest, most)],
                               {"{init}" + zo.STUDENT: dict(method="noisy_student")})
    joint = zo.derived_runs(teachers, [("pretrained", zo5_aug, zo5_label_fraction)], zo.ZO5_ARMS)
    return runs.sweep(teachers + students + joint, s, task="classify", checkpoints={"simclr": s.simclr_checkpoint},
                      held_out="final")  # each model scored once, at its end, on the 10,000 held-out images


results = notebook.results(s, train, checkpoints={"pretrained (supervised)": s.upstream_checkpoint,
                                                  "simclr": s.simclr_checkpoint})
findings = notebook.judge(s, [zo.zo3_finding(results, s.criteria["ZO-3"], s.profile, figure="zo3_self_training_gain.png"),
                              zo.zo4_finding(results, s.criteria["ZO-4"], s.profile, figure="zo4_simclr.png"),
                              zo.zo5_finding(results, s.criteria["ZO-5"], s.profile, figure="zo5_additive.png")],
                          results, checkpoint_of=lambda run: {"pretrained": "pretrained (supervised)",
                                                              "simclr": "simclr"}.get(run["init"]))

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** The grid of notebook 04: its supervised runs come back from the run cache and are the teachers.
# The unlabeled pool is a world file of images of the downstream classes, as Noisy Student draws
# in-distribution images, plus the world's `unlabeled_ood_share` of upstream ones (default 0), its labels
# hidden (used only to say how good the pseudo-labels were). A teacher labels the pool on the device and keeps
# images whose top class probability is at least `pseudo_threshold` (soft labels: the teacher's distribution).
# The student starts from the teacher's init and trains as many iterations as its teacher, at the cell's
# augmentation, on each labelled batch plus `pseudo_batch_size` pseudo-labelled images, with Zoph et al.'s loss
# normalisation (`rethink.core.training.pseudo.LossNormaliser`). Joint training adds the upstream labelled
# classification task to every step: a second head on the shared backbone, its loss balanced by the same
# normalisation. Algorithms by name: `rethink.core.training.selftrain`.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.
#
# **Runs.** The supervised teachers (random and pre-trained init in every cell; SimCLR init at the strongest augmentation
# with all labels), ZO-3's and ZO-4's students, and ZO-5's joint arms.

# %% [markdown]
# ## ZO-3: the gain from self-training
# Student − teacher, paired by seed, in each of ZO-3's cells (the paper's Tables 4 and 5; bars: mean with 95% CI,
# dots: seeds), and for comparison the gain from pre-training in the same cells (pretrained − scratch, the runs of
# notebook 04). The criterion is on the mean over the cells; each cell's own gain is in the table.

# %%
final = effects.final_metric(results, "accuracy")
gains = zo.cell_gains(final, {"self-training on scratch": ("scratch+ST", "scratch"),
                              "self-training on pretrained": ("pretrained+ST", "pretrained"),
                              "pre-training (pretrained − scratch)": ("pretrained", "scratch")})
figures.save(figures.gain_bars(gains, "ZO-3: accuracy change from self-training (and from pre-training)"),
             Path(s.out_dir) / "zo3_self_training_gain.png",
             caption="ZO-3. Student − teacher accuracy in each of ZO-3's cells, paired by seed, and the gain from "
                     "pre-training in the same cells (bars: mean with 95% CI; dots: seeds). The paper's version is "
                     "its Tables 4 and 5 ([Zoph et al. 2020](https://arxiv.org/abs/2006.06882)).")
display(tables.gain_table(gains))

# %% [markdown]
# The pseudo-labels of every student's teacher (mean over seeds): the share of the unlabeled pool the teacher
# kept, the share of kept images that show a downstream class at all (all of them unless the pool has an
# out-of-domain share), and the pseudo-labels' accuracy on those, from the pool's hidden labels.

# %%
display(zo.pseudo_label_table(results))

# %% [markdown]
# ## Had the students converged?
# Validation accuracy over training steps, teachers and students, in each cell that has a student (mean over
# seeds, 95% CI band). The converged gate below checks each run.

# %%
figures.save(figures.training_curves(zo.with_cells(zo.student_cells(results)), "accuracy", panel="cell", x="step"),
             Path(s.out_dir) / "zo_students_val_accuracy.png",
             caption="Validation accuracy over training steps of the teachers and their students, in each cell that "
                     "has a student (mean over seeds, 95% CI band).")

# %% [markdown]
# ## ZO-4: SimCLR init, and self-training on top of it
# SimCLR trained on the upstream images without their labels (the `simclr` rule). Its own numbers beside the
# supervised checkpoint's (its pretext loss, and a 1-NN probe on the upstream validation set):

# %%
display(tables.Readable(tables.checkpoint_table(s.out_dir), "no such number for this checkpoint (a supervised one has no 1-NN probe; SimCLR reports no upstream accuracy)"))
simclr_gains = zo.cell_gains(final, {"simclr − scratch": ("simclr", "scratch"),
                                     "pretrained − scratch": ("pretrained", "scratch"),
                                     "self-training on simclr": ("simclr+ST", "simclr")})
simclr_gains = simclr_gains[simclr_gains.aug.eq(s.aug_levels[-1]) & simclr_gains.label_fraction.eq(max(s.label_fractions))]
figures.save(figures.gain_bars(simclr_gains, "ZO-4: SimCLR init against supervised pre-training"),
             Path(s.out_dir) / "zo4_simclr.png",
             caption="ZO-4. At the strongest augmentation with all labels: SimCLR init and supervised pre-training "
                     "against scratch, and self-training on top of SimCLR init (bars: mean with 95% CI; dots: "
                     "seeds). The paper's version is its Table 6 ([Zoph et al. "
                     "2020](https://arxiv.org/abs/2006.06882)).")
display(tables.gain_table(simclr_gains))

# %% [markdown]
# ## ZO-5: pre-training, joint training and self-training
# At ZO-5's cell: accuracy per arm (bars: 95% CI; dots: seeds), from random init, pre-trained,
# pre-trained + joint training, and pre-trained + joint training + self-training; then the training losses of the
# joint runs (the downstream labels, the upstream task's and the pseudo-labels').

# %%
cell = final[(final.aug == zo5_aug) & (final.label_fraction == zo5_label_fraction)
             & final.arm.isin(["scratch", "pretrained", *zo.ZO5_ARMS])]
figures.save(figures.arm_points(cell, "accuracy", f"ZO-5 at {zo.cell_name(zo5_aug, zo5_label_fraction)}",
                                order=["scratch", "pretrained", *zo.ZO5_ARMS]),
             Path(s.out_dir) / "zo5_additive.png",
             caption=f"ZO-5. Accuracy at {zo.cell_name(zo5_aug, zo5_label_fraction)} from random init, pre-trained, "
                     f"+ joint training and + self-training on top, in the claim's order (mean with 95% CI; grey "
                     f"lines: one seed each, so a step's paired gain is a line's slope); each step "
                     f"must add ([Zoph et al. 2020](https://arxiv.org/abs/2006.06882), Section 5).")
joint = results[(results.aug == zo5_aug) & (results.label_fraction == zo5_label_fraction)
                & results.arm.isin(list(zo.ZO5_ARMS)) & (results.split == "train")
                & results.metric.isin(["loss", "auxiliary_loss", "pseudo_loss"])]
display(joint.groupby(["arm", "metric", "step"]).value.mean().unstack("step").round(3))

# %%
pages.show_closing(findings, s)
