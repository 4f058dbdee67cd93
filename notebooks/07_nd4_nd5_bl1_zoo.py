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
# # ND-4, ND-5 and BL-1: the pretext zoo under one evaluation
#
# **Findings.** *ND-4* (Newell & Deng 2020, [arXiv 2003.14323](https://arxiv.org/abs/2003.14323)): freezing
# more of the pre-trained network hurts, and linear evaluation does not predict the ranking after fine-tuning. *ND-5*: the methods rank differently on
# different tasks. *BL-1* (the overview article): handcrafted, contrastive and clustering methods compared
# on one downstream evaluation; autoencoder features are "not invariant enough".
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
parameters = config.notebook_parameters("07_nd4_nd5_bl1_zoo", globals())
globals().update(parameters)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from rethink.core.training.config import FROZEN_STAGES_MAX
from rethink.report import figures
from rethink.study import bl, effects, gates, nd, outputs, runs

# %%
effects.require_member("zoo_label_count", zoo_label_count, finetune_label_counts, "finetune_label_counts")
effects.require_member("autoencoder", "autoencoder", selfsup_methods, "selfsup_methods (BL-1 needs it)")
checkpoints = {m: f"{checkpoints_dir}/{m}.pt" for m in selfsup_methods}
if not from_results:
    settings = dict(world_dir=world_dir, upstream_checkpoint=upstream_checkpoint, checkpoints=checkpoints,
                    runs_dir=runs_dir, arch=arch, width=width, norm=norm, batch_size=batch_size, lr=lr,
                    grad_clip=grad_clip, lr_drops=lr_drops, evals=evals, aug_backend=aug_backend, device=device,
                    precision=precision, held_out=True)
    # The runs notebook 06 has too (classification, nothing frozen, at zoo_label_count) come from its cache.
    zoo_runs = lambda **axes: nd.label_count_runs(world_dir, [zoo_label_count], epochs, batch_size, min_steps,
                                                  seed=seeds, **axes)
    # The linear probe (every stage frozen) trains at probe_lr: at the fine-tuning lr its head was still under-trained
    # after 800 steps (docs/calibration.md). Partly frozen and fine-tuned runs keep lr.
    frozen = runs.sweep([dict(run, lr=probe_lr) if run["freeze"] == FROZEN_STAGES_MAX else run
                         for run in zoo_runs(init=selfsup_methods, freeze=freezes)], task="classify", aug=aug, **settings)
    by_task = {task: runs.sweep(zoo_runs(init=["scratch", *selfsup_methods]), task=task, files="classify",
                                aug="S0" if task == "pose" else aug, **settings) for task in tasks}
    invariance = bl.invariance_table(world_dir, {**checkpoints, "random init (reference)": None,
                                                 "supervised (reference)": upstream_checkpoint},
                                     arch, width, norm, invariance_level, seeds, device)
    outputs.write_results(out_dir, pd.concat(
        [frozen.assign(experiment="ND-4", task="classify", run_id="ND-4 " + frozen.run_id),
         *(r.assign(experiment="ND-5", task=task, run_id=f"ND-5 task={task} " + r.run_id) for task, r in by_task.items()),
         invariance.rename(columns={"method": "arm"}).assign(experiment="BL-1", run_id="invariance", split="val",
                                                             metric="invariance")]),
        parameters, checkpoints=checkpoints)
results = outputs.read_results(out_dir, results_dir if from_results else None)
# Each run's model selected by its validation score, reported on the held-out test split (Newell & Deng).
probe = nd.selected_metric(results[results.experiment == "ND-4"], "accuracy")
finals = {task: nd.selected_metric(results[(results.experiment == "ND-5") & (results.task == task)],
                                   effects.TASK_METRIC[task]) for task in tasks}
invariance = results[results.experiment == "BL-1"].rename(columns={"arm": "method"})[["method", "seed", "value"]]
# Each method has one pre-training checkpoint (decided before the runs, for the budget: a checkpoint per method and
# seed would cost about 3x the zoo's pre-training): the seeds fine-tune the same checkpoint, so the rank
# correlations and the invariance gap are no independent replicates and are shown, not judged.
replicated = False  # one pre-training checkpoint per method, shared by every seed
findings = [nd.nd4_finding(probe, selfsup_methods, criteria["ND-4"], profile, figure="nd4_freeze.png",
                           replicated=replicated),
            nd.nd5_finding(finals, selfsup_methods, criteria["ND-5"], profile, figure="nd5_tasks.png",
                           replicated=replicated, not_run_minutes=config.cut_minutes("ND-5")),
            bl.bl1_finding(invariance[invariance.method.isin(selfsup_methods)], criteria["BL-1"], profile,
                           figure="bl1_invariance.png", replicated=replicated)]
findings = [gates.apply_gates(f, gates.report_gates(results, parameters, out_dir, checkpoint_of=lambda run: None if run["init"] == "scratch" else run["init"])) for f in findings]
findings = outputs.write_findings(out_dir, findings, from_results, deviations, phase)

# %% [markdown]
# ## Summary

# %%
outputs.show_summary(findings, deviations, out_dir)

# %% [markdown]
# ## How it was tested
#
# **Here.** The self-supervised checkpoints of notebook 06 (rotation, autoencoder, SimCLR, SwAV), with
# `zoo_label_count` downstream labels, trained as notebook 06 trains that count (and from its cache where the
# run is the same), each run's model selected on validation and scored on the held-out test split. ND-4: each
# method fine-tuned with its first `freezes` backbone stages frozen (0: everything trains; 4: only the linear
# head, the linear probe, trained at its own `probe_lr`). ND-5: scratch and each method fine-tuned on the
# `tasks` of the same images:
# classification and pose (the object's angle within its symmetry period, and its tilt; scored as the share of
# angles within a tenth of the period; trained unaugmented, as geometric augmentation would change the answer).
# BL-1: the linear-probe and fine-tuned accuracies side by side, and the
# invariance of each method's features to augmentation: (mean cosine between an image's features and those
# of an augmented view of it − the mean cosine between an image and a view of another image) / (1 − the
# latter); 1 is fully invariant, 0 is no closer than a view of another image. A randomly initialised network and the supervised upstream
# checkpoint are shown for reference; they take no part in the verdict.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/study.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above. The rank
# correlations and the invariance gap decide only with a pre-training per seed; with one checkpoint per method
# they are shown, not judged.

# %% [markdown]
# ## ND-4: freezing more of the network
# Accuracy per method and number of frozen stages (mean with 95% CI over seeds):

# %%
figures.save(figures.metric_bars({f"{k} stages frozen": probe[probe.freeze == k] for k in sorted(freezes)},
                             "ND-4: fine-tuning against frozen features", ylabel="held-out test accuracy (points)"),
           Path(out_dir) / "nd4_freeze.png",
             caption="ND-4. Held-out test accuracy of each method fine-tuned with 0 stages frozen up to the linear "
                     "probe, each run's model selected on validation (bars: mean with 95% CI over seeds; [Newell & Deng "
                     "2020](https://arxiv.org/abs/2003.14323)).")
display(probe.groupby(["arm", "freeze"]).value.apply(figures.mean_ci_text).unstack("freeze"))

# %% [markdown]
# ## ND-5: the methods on several tasks
# Each method's gain over scratch training, per task (points of the task's own metric; bars: 95% CI):

# %%
gains = nd.task_gains(finals, selfsup_methods)
figures.save(figures.metric_bars({task: gains[gains.task == task] for task in tasks}, "ND-5: gain over scratch by task",
                             ylabel="fine-tuned − scratch (points)"), Path(out_dir) / "nd5_tasks.png",
             caption="ND-5. Each method's gain over scratch on each task, in the task's own metric (bars: mean with "
                     "95% CI over seeds; [Newell & Deng 2020](https://arxiv.org/abs/2003.14323)).")
display(pd.concat(finals.values()).groupby(["task", "arm"]).value.apply(figures.mean_ci_text).unstack("task"))

# %% [markdown]
# ## BL-1: the pretext zoo
# Every method under one evaluation: linear probe, full fine-tuning, the feature invariance, and the
# checkpoint's own numbers on the upstream validation set (its loss and a 1-nearest-neighbour probe).

# %%
order = ["autoencoder", *sorted(set(invariance.method) - {"autoencoder"})]  # the claim's arm first
figures.save(figures.arm_points(invariance.rename(columns={"method": "arm"}), "invariance",
                                f"BL-1: feature invariance under {invariance_level} views", order=order,
                                ylabel="invariance (1 = invariant, 0 = as far as another image's view)"),
             Path(out_dir) / "bl1_invariance.png",
             caption=f"BL-1. Feature invariance of each method under {invariance_level} views: 1 is invariant, 0 as "
                     f"far apart as a view of another image (mean with 95% CI; grey lines: one seed's views each).")
zoo = pd.DataFrame({"linear probe": probe[probe.freeze == max(freezes)].groupby("arm").value.apply(figures.mean_ci_text),
                    "fine-tuned": probe[probe.freeze == 0].groupby("arm").value.apply(figures.mean_ci_text),
                    "invariance": invariance.groupby("method").value.apply(lambda v: "{:.2f} ± {:.2f}".format(*figures.mean_ci(v)))})
display(outputs.Readable(zoo.join(outputs.checkpoint_table(out_dir)), "not measured for this row: the references are no self-supervised method (no probe, no fine-tuning), and a random network has no pre-training numbers"))

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
display(outputs.parameters_table(parameters, "07_nd4_nd5_bl1_zoo"))
figures.prune(out_dir)  # a figure an earlier version of this notebook saved is not this report's
