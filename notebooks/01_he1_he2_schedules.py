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
# # HE-1 and HE-2: training from scratch catches up with pre-training, and localizes no worse
#
# **Findings (He, Girshick & Dollár 2019, "Rethinking ImageNet Pre-training",
# [arXiv 1811.08883](https://arxiv.org/abs/1811.08883)).**
# *HE-1*: with GroupNorm, a detector trained from random initialisation reaches the box AP of one
# fine-tuned from ImageNet pre-training when it is trained long enough: pre-training speeds up
# convergence but does not raise the final result (R50 Mask R-CNN box AP at 2x-6x: scratch
# 36.8 / 39.5 / 40.6 / 40.7 / 41.3, pre-trained 40.3 / 40.8 / 40.9 / 40.9 / 41.1).
# *HE-2*: at convergence, pre-training gives no better localization: scratch is at least as good on
# the strict AP75 (R50 at 6x: scratch 41.3 / 61.8 / 45.6, pre-trained 41.1 / 61.7 / 44.6 AP / AP50 / AP75).
#
# The answer is under *Summary*; how it was tested, under *How it was tested* below it.

# %%
from pathlib import Path

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
s = config.notebook("01_he1_he2_schedules", globals())  # config/study.yaml under the profile; the cell above wins
# Every detector is also scored once, at its end, on the held-out scenes: what the verdicts read (protocol v2).
grid = lambda: runs.grid(init=["scratch", "pretrained"], schedule=s.schedules, seed=s.seeds)
results = notebook.results(s, lambda: runs.sweep(grid(), s, task="detect", held_out="final").assign(task="detect"),
                           checkpoints={"pretrained": s.upstream_checkpoint})
detect = results[results.task == "detect"]
findings = notebook.judge(s, [he.he1_finding(detect, "AP", s.criteria["HE-1"], s.profile, figure="he1_schedules.png"),
                              he.he2_finding(detect, s.criteria["HE-2"], s.profile, figure="he2_metrics.png")],
                          results, task="detect")

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** The downstream task is detection in the synthetic world's scenes (several downstream-class
# objects per image, occluding each other), scored with pycocotools; the detector is a CenterNet-style
# head on a ResNet-9 with GroupNorm. Pre-training is supervised classification of the disjoint
# *upstream* classes (the study's "ImageNet", the Snakemake rule `pretrain`). Both arms train with He
# et al.'s step policy (the learning rate drops 10x for the last 2/3 and the last 2/9 of a 1x schedule,
# whatever the total length) and flip + crop augmentation. Each (init, schedule, seed) is one run, cached, so
# re-plotting never retrains. HE-1 reads the 500 validation scenes; HE-2, whose margin is a fraction of a point,
# reads the final 6x detectors on 2,000 held-out scenes the world generates (four times less evaluation noise in
# the He et al. redesign's probe, docs/calibration.md).
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.
#
# **Runs.** Every (init, schedule, seed) is trained; finished runs are read back from `runs_dir`. The longest schedule's
# detectors are also scored once on the held-out scenes (HE-2).

# %% [markdown]
# ## HE-1: final box AP against schedule length
# Schedules are multiples of this study's own 1x (a few epochs), not of the paper's 90k iterations.

# %%
figure = figures.metric_curve(effects.final_metric(detect, "AP"), "AP",
                              "HE-1: scratch vs pre-trained over schedule length (mean, 95% CI over seeds)")
figures.save(figure, Path(s.out_dir) / "he1_schedules.png",
             caption="HE-1. Final box AP on the validation scenes of each arm against the schedule, in multiples of "
                     "this study's 1x; mean over seeds with 95% CIs. The paper's version is its Figure 1 ([He et al. "
                     "2019](https://arxiv.org/abs/1811.08883)).")

# %% [markdown]
# Box AP per schedule, ours (mean ± 95% CI half-width) next to the paper's R50 numbers (its own 1x).

# %%
display(tables.paper_comparison(effects.final_metric(detect, "AP"), he.PAPER_TABLES["HE-1"]))

# %% [markdown]
# ## HE-2: AP, AP50 and AP75 at the longest schedule (the paper's Table 2)
# On the held-out scenes, which the verdicts read (and, for comparison, on the validation scenes).

# %%
split = he.held_out_split(detect, "AP75")
display(tables.metric_table(detect, max(s.schedules), he.PAPER_TABLES["HE-2"], split=split))
display(tables.metric_table(detect, max(s.schedules), split="val"))
longest = detect[detect.schedule == max(s.schedules)]
scenes = "held-out" if split == "test" else "validation"
figure = figures.metric_bars({m: effects.final_metric(longest, m, split) for m in ("AP", "AP50", "AP75")},
                             f"HE-2: box AP at {max(s.schedules):g}x (mean, 95% CI over seeds)",
                             ylabel=f"box AP on the {scenes} scenes (points)")
figures.save(figure, Path(s.out_dir) / "he2_metrics.png",
             caption=f"HE-2. AP, AP50 and AP75 of each arm at {max(s.schedules):g}x, the longest schedule, on the "
                     f"{scenes} scenes; mean over seeds with 95% CIs. The "
                     f"paper's version is its Table 2 ([He et al. 2019](https://arxiv.org/abs/1811.08883)).")

# %% [markdown]
# ## Training curves
# Validation box AP and training loss over epochs, per schedule (mean over seeds, 95% CI band).

# %%
figures.save(figures.training_curves(detect, "AP"), Path(s.out_dir) / "he1_curves_val_ap.png",
             caption="Validation box AP over training, one panel per schedule (mean over seeds, 95% CI band): the "
                     "converged gate reads the evaluations of each run's last third after its last LR drop.")
figures.save(figures.training_curves(detect, "loss", split="train"), Path(s.out_dir) / "he1_curves_train_loss.png",
             caption="Detection training loss over training, one panel per schedule (mean over seeds, 95% CI band).")

# %%
pages.show_closing(findings, s)
