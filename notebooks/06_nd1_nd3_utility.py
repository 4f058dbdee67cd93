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
# # ND-1 to ND-3: how many labels does self-supervised pre-training save?
#
# **Findings (Newell & Deng 2020).** *ND-1*: the utility of self-supervised pre-training,
# U(n) = n̂/n − 1 where training from scratch on n̂ labels scores what the pre-trained model fine-tuned on
# n labels scores, falls toward zero as labels grow, often before accuracy plateaus. *ND-2*: larger models
# benefit more: from scratch the large model is worse than the small one with few labels, pre-trained it is
# better. *ND-3*: harder, more varied data gets more utility from pre-training.
#
# **Here.** Five self-supervised methods, each pre-trained on the upstream images without their labels by
# the `selfsup` rule (`rethink.selfsup`): rotation prediction and jigsaw (handcrafted pretext tasks), an
# autoencoder, SimCLR (contrastive) and SwAV (clustering). Each is fine-tuned on the downstream classes with
# a rising number of labels on a log scale, next to training from scratch; every label count trains for the
# same number of iterations. U(n) is read off each seed's scratch curve (`rethink.utility`, linear in log n;
# beyond the measured counts the nearest segment is extended and n̂ is clamped to `utility_max_factor`
# times the range, and such values are flagged). ND-2 repeats `nd_method` with a larger network, pre-trained
# the same way; ND-3 repeats it on a world whose variation knobs (texture, colour, viewpoint, lighting,
# clutter) are turned up, pre-trained on that world's upstream images.
#
# **Pre-registered criteria** (config/study.yaml, 95% CIs over seeds). ND-1: averaged over the methods,
# U(most labels) − U(fewest) < `nd1_max_change` and U(most labels) < `nd1_max_utility_largest`. ND-2: with
# the fewest labels, large − small accuracy from scratch < `nd2_max_gap_scratch` and fine-tuned >
# `nd2_min_gap_finetuned`. ND-3: `nd_method`'s utility, averaged over the label counts, hard − easy world >
# `nd3_min_gain`.

# %% tags=["parameters"]
profile: str = "default"            # which config profile made these parameters
world_dir: str = "../cache/default/world"
hard_world_dir: str = "../cache/default/world_hard"
upstream_checkpoint: str = "../cache/default/checkpoints/upstream.pt"
checkpoints_dir: str = "../cache/default/checkpoints"  # <method>.pt, <method>_large.pt, <method>_hard.pt
runs_dir: str = "../cache/default/runs"   # per-run cache: a rerun reuses finished runs
out_dir: str = "../reports/06_nd1_nd3_utility"
device: str = "auto"                # auto | cpu | cuda
aug_backend: str = "kornia"         # kornia | dali: who augments the classification batches
selfsup_methods: list = ["simclr", "rotation", "autoencoder", "swav", "jigsaw"]
nd_method: str = "rotation"         # the method of ND-2 and ND-3
arch: str = "resnet9"
width: int = 16                     # channels of the first stage (the checkpoints' width)
large_arch: str = "resnet18"        # ND-2's large model
large_width: int = 16
norm: str = "gn"
seeds: list = [0, 1, 2]
label_counts: list = [40, 120, 400, 1200, 4000]  # downstream labels, rising
nd2_label_counts: list = [40, 400]  # ND-2's large-model runs
epochs_1x: float = 0.5              # epochs over the *full* downstream set in 1x; every count trains as long
schedule: float = 4                 # multiple of 1x (He et al.'s step policy)
batch_size: int = 64
lr: float = 0.1                     # peak SGD learning rate
evals: int = 2                      # validation evaluations per run
aug: str = "S1"                     # augmentation while fine-tuning
utility_max_factor: float = 10.0    # n̂ clamped to [fewest / this, most × this] labels (pre-registered)
nd1_max_change: float = 0.0         # utility (pre-registered)
nd1_max_utility_largest: float = 1.0  # utility (pre-registered)
nd2_max_gap_scratch: float = 0.0    # accuracy points (pre-registered)
nd2_min_gap_finetuned: float = 0.0  # accuracy points (pre-registered)
nd3_min_gain: float = 0.0           # utility (pre-registered)

# %%
from rethink import study

parameters = study.notebook_parameters(globals())  # as run, for run.json

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from rethink import plots
from rethink import selfsup_study as nd

# %% [markdown]
# ## Runs
# ND-1: scratch and every method at every label count. ND-2: scratch and `nd_method` on the large model at
# `nd2_label_counts`. ND-3: scratch and `nd_method` on the hard world at every label count.

# %%
study.require_member("nd_method", nd_method, selfsup_methods, "selfsup_methods")
for count in nd2_label_counts:
    study.require_member("nd2_label_counts", count, label_counts, "label_counts")
large = f"{large_arch}-{large_width}"
checkpoint = lambda name: f"{checkpoints_dir}/{name}.pt"
settings = dict(task="classify", upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir, arch=arch, width=width,
                norm=norm, batch_size=batch_size, schedule=schedule, lr=lr, evals=evals, aug=aug,
                aug_backend=aug_backend, device=device)
easy_runs = nd.label_count_runs(world_dir, label_counts, epochs_1x, batch_size, init=["scratch", *selfsup_methods],
                                seed=seeds)
large_runs = [dict(run, arch=large_arch, width=large_width, arm=f"{run['init']} ({large})",
                   init=run["init"] if run["init"] == "scratch" else f"{nd_method}_large")
              for run in nd.label_count_runs(world_dir, nd2_label_counts, epochs_1x, batch_size,
                                             init=["scratch", nd_method], seed=seeds)]
hard_runs = nd.label_count_runs(hard_world_dir, label_counts, epochs_1x, batch_size, init=["scratch", nd_method],
                                seed=seeds)
easy = study.sweep(easy_runs, world_dir=world_dir, checkpoints={m: checkpoint(m) for m in selfsup_methods}, **settings)
larger = study.sweep(large_runs, world_dir=world_dir, checkpoints={f"{nd_method}_large": checkpoint(f"{nd_method}_large")},
                     **settings)
hard = study.sweep(hard_runs, world_dir=hard_world_dir, checkpoints={nd_method: checkpoint(f"{nd_method}_hard")},
                   **settings)
final = {name: nd.utility_final(results, directory) for name, results, directory in
         (("easy", easy, world_dir), ("large", larger, world_dir), ("hard", hard, hard_world_dir))}
sizes = pd.concat([final["easy"][final["easy"].arm.isin(["scratch", nd_method])
                                 & final["easy"].label_count.isin(nd2_label_counts)], final["large"]])
findings = [nd.nd1_finding(final["easy"], selfsup_methods, nd1_max_change, nd1_max_utility_largest, utility_max_factor,
                           profile, figure="nd1_utility.png"),
            nd.nd2_finding(sizes, nd_method, large, nd2_max_gap_scratch, nd2_min_gap_finetuned, profile,
                           figure="nd2_model_size.png"),
            nd.nd3_finding(final["easy"], final["hard"], nd_method, nd3_min_gain, utility_max_factor, profile,
                           figure="nd3_hard_world.png")]
results = pd.concat([r.assign(experiment=name, world=world, run_id=name + " " + r.run_id)  # run_id unique in the CSV
                     for name, world, r in (("ND-1", "easy", easy), ("ND-2", "easy", larger), ("ND-3", "hard", hard))])
run = study.write_outputs(out_dir, results, findings, parameters)

# %% [markdown]
# The self-supervised checkpoints on the upstream validation set: each method's own final loss, and the
# accuracy of a 1-nearest-neighbour probe of its features (which trains nothing):

# %%
display(study.checkpoint_table({m: checkpoint(m) for m in selfsup_methods}
                               | {f"{nd_method} ({large})": checkpoint(f"{nd_method}_large"),
                                  f"{nd_method} (hard world)": checkpoint(f"{nd_method}_hard")}).round(3))

# %% [markdown]
# ## ND-1: accuracy and utility against the number of labels
# Left: accuracy of scratch and of every fine-tuned method (mean with 95% CI over seeds). Right: U(n) per
# method; 0 means the pre-trained model is worth no labels, 1 that scratch needs twice as many.

# %%
utilities = nd.utility_rows(final["easy"], selfsup_methods, utility_max_factor)
figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
plots.metric_curve(final["easy"], "accuracy", "ND-1: accuracy", x="label_count", ax=axes[0], log_x=True)
plots.metric_curve(utilities.rename(columns={"utility": "value"}), "utility", "ND-1: utility of pre-training",
                   x="label_count", ax=axes[1], log_x=True, ylabel="utility U(n) = n̂/n − 1")
axes[1].axhline(0, color="black", linewidth=0.8)
plots.save(figure, Path(out_dir) / "nd1_utility.png")
display(utilities.groupby(["label_count", "arm"]).utility.apply(plots.mean_ci_text).unstack("arm"))

# %% [markdown]
# The share of utility values read off beyond the measured scratch curve (extrapolated, then clamped):

# %%
display(utilities.groupby(["label_count", "arm"]).extrapolated.mean().unstack("arm"))

# %% [markdown]
# ## ND-2: a larger model
# Accuracy of the small and the large model, from scratch and fine-tuned from `nd_method`:

# %%
plots.save(plots.metric_curve(sizes, "accuracy", f"ND-2: {arch}-{width} against {large}", x="label_count",
                              log_x=True), Path(out_dir) / "nd2_model_size.png")
display(sizes.groupby(["label_count", "arm"]).value.apply(plots.mean_ci_text).unstack("arm"))

# %% [markdown]
# ## ND-3: a harder world
# `nd_method`'s utility on the default world and on the one with every variation knob turned up (left), and
# the accuracies behind it (right).

# %%
by_world = pd.concat([nd.utility_rows(final[world], [nd_method], utility_max_factor).assign(arm=f"{nd_method} ({world} world)")
                      for world in ("easy", "hard")])
figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
plots.metric_curve(by_world.rename(columns={"utility": "value"}), "utility", "ND-3: utility by world", x="label_count",
                   ax=axes[0], log_x=True, ylabel="utility U(n) = n̂/n − 1")
axes[0].axhline(0, color="black", linewidth=0.8)
accuracies = pd.concat([final[world][final[world].arm.isin(["scratch", nd_method])] for world in ("easy", "hard")],
                       keys=["easy", "hard"], names=["world"]).reset_index("world")
accuracies["arm"] += " (" + accuracies.world + " world)"
plots.metric_curve(accuracies, "accuracy", "ND-3: accuracy by world", x="label_count", ax=axes[1], log_x=True)
plots.save(figure, Path(out_dir) / "nd3_hard_world.png")
display(by_world.groupby(["label_count", "arm"]).utility.apply(plots.mean_ci_text).unstack("arm"))

# %% [markdown]
# ## Verdicts

# %%
display(Markdown(study.verdict_markdown(findings)))
