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
# # ZO-1 and ZO-2: stronger augmentation and more labels leave pre-training less to give
#
# **Findings (Zoph et al. 2020, "Rethinking Pre-training and Self-training",
# [arXiv 2006.06882](https://arxiv.org/abs/2006.06882)).**
# *ZO-1*: the stronger the data augmentation, the less ImageNet pre-training helps, until it hurts: on all
# of COCO it helps with flip + crop (Augment-S1) and costs about 1 AP with RandAugment and large scale
# jitter (Augment-S4). *ZO-2*: the more labelled data, the less it helps: with 20% of the COCO labels it
# helps, with 100% it hurts. Both hold for the stronger "ImageNet++" checkpoint too (cut here for the budget).
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
s = config.notebook("04_zo1_zo2_augmentation_data", globals())  # config/study.yaml under the profile; the cell above wins
grid = lambda: zo.zo_runs(s.world_dir, s.label_fractions, s.aug_levels, s.seeds, s.inits, s.epochs_1x, s.batch_size)
results = notebook.results(s, lambda: runs.sweep(grid(), s, task="classify", held_out="final"),
                           checkpoints={"pretrained": s.upstream_checkpoint})
findings = notebook.judge(s, [zo.zo1_finding(results, s.criteria["ZO-1"], s.profile, figure="zo_pretraining_gain.png"),
                              zo.zo2_finding(results, s.criteria["ZO-2"], s.profile, figure="zo_pretraining_gain.png")],
                          results)

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** Downstream classification on the study's world: a grid of augmentation level (`aug_levels`,
# the ladder of `rethink.core.augment.ladder`, Kornia or DALI on the training device) × share of the downstream labels
# (`label_fractions`) × initialisation: random (`scratch`) or the upstream supervised checkpoint (`pretrained`,
# the study's "ImageNet"). Each augmentation level trains every cell for the same number of iterations
# (`schedule` × its `epochs_1x` over the full set), so a smaller label share is seen for more epochs, as the
# paper keeps its iteration counts; a stronger level gets as many iterations as its scratch arm needs to
# converge (calibrated with one-seed probes before these runs: docs/calibration.md).
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.
#
# **Runs.** The sweep trains every run (finished runs are read back from `runs_dir`) and writes `results.csv`; with
# `from_results` it trains nothing. Everything after this cell reads `results.csv` only.

# %% [markdown]
# The upstream checkpoint on the upstream validation set (the paper's ImageNet model reaches 84.5% top-1):

# %%
display(tables.Readable(tables.checkpoint_table(s.out_dir), "no such number for this checkpoint (a supervised one has no 1-NN probe; SimCLR reports no upstream accuracy)"))

# %% [markdown]
# ## The change in accuracy from pre-training, per cell
# As the paper's Tables 2 and 3: each pre-trained init minus random init, paired by seed (bars: mean with
# 95% CI; dots: seeds). Above zero pre-training helps, below it hurts.

# %%
final = effects.final_metric(results, "accuracy")
comparisons = {f"{init} − scratch": (init, "scratch") for init in s.inits if init != "scratch"}
gains = zo.cell_gains(final, comparisons)
figure = figures.gain_bars(gains, "ZO-1/ZO-2: accuracy change from pre-training")
figures.save(figure, Path(s.out_dir) / "zo_pretraining_gain.png",
             caption="ZO-1 and ZO-2. Pre-trained − scratch accuracy, paired by seed, per augmentation level (panels)"
                     " and share of the labels (bars: mean with 95% CI; dots: seeds). The paper's version is its "
                     "Tables 2 and 3 ([Zoph et al. 2020](https://arxiv.org/abs/2006.06882)).")
display(tables.gain_table(gains))

# %% [markdown]
# ## Had the arms converged?
# Validation accuracy over training steps in every cell (mean over seeds, 95% CI band): a curve still
# rising at the last step had not converged, and its cell's gain would say more about speed than about the end
# point. The converged gate below checks each run: it moved less than `converged_tolerance` over the last third.

# %%
figures.save(figures.training_curves(zo.with_cells(results), "accuracy", panel="cell", x="step"),
             Path(s.out_dir) / "zo_curves_val_accuracy.png",
             caption="Validation accuracy over training steps in every cell of the grid, per arm (mean over seeds, "
                     "95% CI band): each run must be flat over its last third.")

# %% [markdown]
# Accuracy of every arm (mean ± 95% CI half-width over seeds), per augmentation level and label share:

# %%
display(final.groupby(["aug", "label_fraction", "arm"]).value.apply(figures.mean_ci_text).unstack("arm"))

# %%
pages.show_closing(findings, s)
