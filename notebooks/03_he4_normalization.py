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
# # HE-4: normalization decides whether training from scratch works
#
# **Finding (He, Girshick & Dollár 2019, [arXiv 1811.08883](https://arxiv.org/abs/1811.08883)).** Detectors
# fit few images on each GPU, so BatchNorm computes its statistics over 1-2 images: from scratch, it then
# trains poorly. GroupNorm, whose statistics do not depend on the batch, or SyncBN, which pools them over the
# GPUs, make training from scratch work; so, with care, does a network without normalization (VGG-16: scratch
# 35.2 AP at 11x vs pre-trained 35.6 at 9x).
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
s = config.notebook("03_he4_normalization", globals())  # config/study.yaml under the profile; the cell above wins
results = notebook.results(s, lambda: runs.sweep(he.norm_runs(s.norms, s.seeds, s.bn_batch), s, task="detect",
                                                         held_out="final"))
findings = notebook.judge(s, [he.he4_finding(results, s.criteria["HE-4"], s.profile, figure="he4_normalization.png")],
                          results, task="detect")

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

# %% [markdown]
# ## How it was tested
#
# **Here.** The HE-1 detector trained from scratch at `schedule`, the longest of HE-1's, where its GroupNorm runs
# converge, with the normalizations of `norms`: GroupNorm (`gn`, HE-1's scratch runs, read back from the cache),
# BatchNorm whose statistics come from `bn_batch` images at a time as on data-parallel GPUs without SyncBN
# (`bn`, the whole batch is still one SGD step), BatchNorm over the whole batch as SyncBN would compute it
# (`syncbn`, where a profile names it) and no normalization (`none`, convolutions with biases). Same schedule,
# learning rate, gradient clipping and seeds for all.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.

# %% [markdown]
# ## Box AP per normalization, from scratch

# %%
final = effects.final_metric(results, "AP")
figures.save(figures.arm_points(final, "AP", f"HE-4: from scratch at {s.schedule:g}x", order=["gn", "bn", "syncbn", "none"]),
             Path(s.out_dir) / "he4_normalization.png",
             caption=f"HE-4. Final box AP on the validation scenes from scratch at {s.schedule:g}x per normalization: "
                     f"GroupNorm, BatchNorm with statistics over {s.bn_batch} images (a small per-device batch) and no "
                     f"normalization (mean with 95% CI; grey lines: one seed each). The paper's claim is in its "
                     f"Sections 4-5 ([He et al. 2019](https://arxiv.org/abs/1811.08883)).")
display(tables.metric_table(results.assign(schedule=s.schedule), s.schedule))

# %% [markdown]
# ## No normalization: what the exploration saw
# The exploration's runs, from its archive (docs/exploration-results/), beside the paper's network without
# normalization.

# %%
from IPython.display import Markdown

from rethink.report import compare

display(Markdown(he.norm_exploration_text(effects.final_metric(compare.exploration_results(s.notebook_name), "AP"))))

# %% [markdown]
# ## Training curves
# Training loss and validation box AP over epochs (mean over seeds, 95% CI band).

# %%
figures.save(figures.training_curves(results.assign(schedule=s.schedule), "loss", split="train"),
           Path(s.out_dir) / "he4_curves_train_loss.png",
             caption="Training loss per normalization over training (mean over seeds, 95% CI band).")
figures.save(figures.training_curves(results.assign(schedule=s.schedule), "AP"), Path(s.out_dir) / "he4_curves_val_ap.png",
             caption="Validation box AP per normalization over training (mean over seeds, 95% CI band).")

# %%
pages.show_closing(findings, s)
