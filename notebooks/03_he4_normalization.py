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
parameters = config.notebook_parameters("03_he4_normalization", globals())
globals().update(parameters)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from rethink.report import figures
from rethink.study import effects, gates, he, outputs, runs

# %%
if not from_results:
    results = runs.sweep(he.norm_runs(norms, seeds, bn_batch), task="detect", world_dir=world_dir,
                         upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir, init="scratch", schedule=schedule,
                         arch=arch, width=width, norm=norm, epochs_1x=epochs_1x, batch_size=batch_size, lr=lr,
                         grad_clip=grad_clip, aug=aug, aug_backend=aug_backend, evals=evals, device=device,
                         precision=precision)
    outputs.write_results(out_dir, results, parameters)
results = outputs.read_results(out_dir, results_dir if from_results else None)
findings = [he.he4_finding(results, criteria["HE-4"], profile, figure="he4_normalization.png")]
findings = [gates.apply_gates(f, gates.report_gates(results, parameters, out_dir, task="detect")) for f in findings]
findings = outputs.write_findings(out_dir, findings, from_results, deviations, phase)

# %% [markdown]
# ## Summary

# %%
outputs.show_summary(findings, deviations, out_dir)

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
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/study.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.

# %% [markdown]
# ## Box AP per normalization, from scratch

# %%
final = effects.final_metric(results, "AP")
figures.save(figures.arm_points(final, "AP", f"HE-4: from scratch at {schedule:g}x", order=["gn", "bn", "syncbn", "none"]),
             Path(out_dir) / "he4_normalization.png",
             caption=f"HE-4. Final box AP on the validation scenes from scratch at {schedule:g}x per normalization: "
                     f"GroupNorm, BatchNorm with statistics over {bn_batch} images (a small per-device batch) and no "
                     f"normalization (mean with 95% CI; grey lines: one seed each). The paper's claim is in its "
                     f"Sections 4-5 ([He et al. 2019](https://arxiv.org/abs/1811.08883)).")
display(outputs.metric_table(results.assign(schedule=schedule), schedule))

# %% [markdown]
# ## Training curves
# Training loss and validation box AP over epochs (mean over seeds, 95% CI band).

# %%
figures.save(figures.training_curves(results.assign(schedule=schedule), "loss", split="train"),
           Path(out_dir) / "he4_curves_train_loss.png",
             caption="Training loss per normalization over training (mean over seeds, 95% CI band).")
figures.save(figures.training_curves(results.assign(schedule=schedule), "AP"), Path(out_dir) / "he4_curves_val_ap.png",
             caption="Validation box AP per normalization over training (mean over seeds, 95% CI band).")

# %% [markdown]
# ## Validity gates
# Every arm a condition compares, and its gates (`rethink.study.gates`, thresholds in the `gates` block of
# config/study.yaml): ✓ or ✗, the worst run's value against the threshold (and its seed), and how many of its
# runs failed. A condition whose arms failed a gate is `not tested`: its numbers say nothing about the
# paper.

# %%
display(outputs.gates_table(findings))

# %% [markdown]
# ## Deviations from protocol v2

# %%
display(Markdown(outputs.deviations_markdown(deviations)))

# %% [markdown]
# ## Verdicts

# %%
display(Markdown(outputs.verdict_markdown(findings)))

# %% [markdown]
# ## Settings of this run
# The settings this notebook's code names, from config/study.yaml under the profile, the parameters cell and
# papermill; run.json beside this report records every one, with the commit and the environment.

# %%
display(outputs.parameters_table(parameters, "03_he4_normalization"))
figures.prune(out_dir)  # a figure an earlier version of this notebook saved is not this report's
