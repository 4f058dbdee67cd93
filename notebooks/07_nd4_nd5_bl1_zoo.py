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

# %%
from pathlib import Path

import pandas as pd
from IPython.display import display

from rethink.core.training.config import FROZEN_STAGES_MAX
from rethink import config
from rethink.report import figures, pages, tables
from rethink.study import bl, effects, gates, nd, notebook, runs

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
s = config.notebook("07_nd4_nd5_bl1_zoo", globals())  # config/study.yaml under the profile; the cell above wins
checkpoints = {m: f"{s.checkpoints_dir}/{config.checkpoint_file(m)}" for m in s.selfsup_methods}  # one per seed
nd.check_counts(s, zoo=True)


def train():
    """ND-4's runs (each method frozen to each depth; the linear probe at probe_lr: at the fine-tuning lr its head
    was still under-trained after 800 steps, docs/calibration.md), ND-5's (scratch and each method on each task)
    and BL-1's invariance of each checkpoint. The runs notebook 06 has too come from its cache."""
    zoo_runs = lambda min_steps=s.min_steps, **axes: nd.label_count_runs(s.world_dir, [s.zoo_label_count], s.epochs,
                                                                         s.batch_size, min_steps, seed=s.seeds, **axes)
    frozen = runs.sweep([dict(run, lr=s.probe_lr) if run["freeze"] == FROZEN_STAGES_MAX else run
                         for run in zoo_runs(init=s.selfsup_methods, freeze=s.freezes)], s, task="classify",
                        held_out=True, checkpoints=checkpoints)
    # A task's own step floor where it needs more steps than classification to converge (pose: task_min_steps).
    by_task = {task: runs.sweep(zoo_runs(max(s.min_steps, s.task_min_steps.get(task, 0)),
                                         init=["scratch", *s.selfsup_methods]), s, task=task, files="classify",
                                held_out=True, checkpoints=checkpoints, aug="S0" if task == "pose" else s.aug)
               for task in s.tasks}
    invariance = bl.invariance_table(s.world_dir, {**checkpoints, "random init (reference)": None,
                                                   "supervised (reference)": s.upstream_checkpoint},
                                     s.arch, s.width, s.norm, s.invariance_level, s.seeds, s.device)
    return pd.concat(
        [frozen.assign(experiment="ND-4", task="classify", run_id="ND-4 " + frozen.run_id),
         *(r.assign(experiment="ND-5", task=task, run_id=f"ND-5 task={task} " + r.run_id) for task, r in by_task.items()),
         invariance.rename(columns={"method": "arm"}).assign(experiment="BL-1", run_id="invariance", split="val",
                                                             metric="invariance")])


results = notebook.results(s, train, checkpoints=checkpoints)
# Each run's model selected by its validation score, reported on the held-out test split (Newell & Deng).
probe = nd.selected_metric(results[results.experiment == "ND-4"], "accuracy")
finals = {task: nd.selected_metric(results[(results.experiment == "ND-5") & (results.task == task)],
                                   effects.TASK_METRIC[task]) for task in s.tasks}
invariance = results[results.experiment == "BL-1"].rename(columns={"arm": "method"})[["method", "seed", "value"]]
# The rank correlations and the invariance gap decide only when each seed pre-trained its own checkpoints
# (protocol v2); results with one checkpoint per method shared by every seed (the exploration's) are shown, not judged.
replicated = gates.per_seed_pretraining(results[results.experiment.isin(["ND-4", "ND-5"])])
findings = notebook.judge(s, [nd.nd4_finding(probe, s.selfsup_methods, s.criteria["ND-4"], s.profile, figure="nd4_freeze.png",
                           replicated=replicated),
            nd.nd5_finding(finals, s.selfsup_methods, s.criteria["ND-5"], s.profile, figure="nd5_tasks.png",
                           replicated=replicated, not_run_minutes=config.cut_minutes("ND-5")),
            bl.bl1_finding(invariance[invariance.method.isin(s.selfsup_methods)], s.criteria["BL-1"], s.profile,
                           figure="bl1_invariance.png", replicated=replicated)], results)

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

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
# angles within a tenth of the period; trained unaugmented, as geometric augmentation would change the answer, and
# for at least `task_min_steps` steps: pose converges more slowly than classification).
# BL-1: the linear-probe and fine-tuned accuracies side by side, and the
# invariance of each method's features to augmentation: (mean cosine between an image's features and those
# of an augmented view of it − the mean cosine between an image and a view of another image) / (1 − the
# latter); 1 is fully invariant, 0 is no closer than a view of another image. A randomly initialised network and the supervised upstream
# checkpoint are shown for reference; they take no part in the verdict.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above. The rank
# correlations and the invariance gap decide only with a pre-training per seed; with one checkpoint per method
# they are shown, not judged.

# %% [markdown]
# ## ND-4: freezing more of the network
# Accuracy per method and number of frozen stages (mean with 95% CI over seeds):

# %%
figures.save(figures.metric_bars({f"{k} stages frozen": probe[probe.freeze == k] for k in sorted(s.freezes)},
                             "ND-4: fine-tuning against frozen features", ylabel="held-out test accuracy (points)"),
           Path(s.out_dir) / "nd4_freeze.png",
             caption="ND-4. Held-out test accuracy of each method fine-tuned with 0 stages frozen up to the linear "
                     "probe, each run's model selected on validation (bars: mean with 95% CI over seeds; [Newell & Deng "
                     "2020](https://arxiv.org/abs/2003.14323)).")
display(probe.groupby(["arm", "freeze"]).value.apply(figures.mean_ci_text).unstack("freeze"))

# %% [markdown]
# ## ND-5: the methods on several tasks
# Each method's gain over scratch training, per task (points of the task's own metric; bars: 95% CI):

# %%
gains = nd.task_gains(finals, s.selfsup_methods)
figures.save(figures.metric_bars({task: gains[gains.task == task] for task in s.tasks}, "ND-5: gain over scratch by task",
                             ylabel="fine-tuned − scratch (points)"), Path(s.out_dir) / "nd5_tasks.png",
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
                                f"BL-1: feature invariance under {s.invariance_level} views", order=order,
                                ylabel="invariance (1 = invariant, 0 = as far as another image's view)"),
             Path(s.out_dir) / "bl1_invariance.png",
             caption=f"BL-1. Feature invariance of each method under {s.invariance_level} views: 1 is invariant, 0 as "
                     f"far apart as a view of another image (mean with 95% CI; grey lines: one seed's views each).")
zoo = pd.DataFrame({"linear probe": probe[probe.freeze == max(s.freezes)].groupby("arm").value.apply(figures.mean_ci_text),
                    "fine-tuned": probe[probe.freeze == 0].groupby("arm").value.apply(figures.mean_ci_text),
                    "invariance": invariance.groupby("method").value.apply(lambda v: "{:.2f} ± {:.2f}".format(*figures.mean_ci(v)))})
display(tables.Readable(zoo.join(tables.checkpoint_table(s.out_dir)), "not measured for this row: the references are no self-supervised method (no probe, no fine-tuning), and a random network has no pre-training numbers"))

# %%
pages.show_closing(findings, s)
