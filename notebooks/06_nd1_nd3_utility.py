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
# # ND-1 to ND-3: how many labels does self-supervised pre-training save?
#
# **Findings (Newell & Deng 2020, [arXiv 2003.14323](https://arxiv.org/abs/2003.14323)).** *ND-1*: the utility
# of self-supervised pre-training, U(n) = n̂/n − 1 where training from scratch on n̂ labels scores what the
# pre-trained model fine-tuned on n labels scores, falls toward zero as labels grow, often before accuracy
# plateaus. *ND-2*: larger models benefit more: from scratch the large model is worse than the small one with
# few labels, pre-trained it is better. *ND-3*: harder, more varied data gets more utility from pre-training.
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
parameters = config.notebook_parameters("06_nd1_nd3_utility", globals())
globals().update(parameters)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from rethink.report import figures
from rethink.study import effects, gates, nd, outputs, runs

# %%
effects.require_member("nd_method", nd_method, selfsup_methods, "selfsup_methods")
for count in finetune_label_counts:
    effects.require_member("finetune_label_counts", count, label_counts, "label_counts")
for count in nd2_label_counts:
    effects.require_member("nd2_label_counts", count, finetune_label_counts, "finetune_label_counts")
large = f"{large_arch}-{large_width}"
checkpoint = lambda name: f"{checkpoints_dir}/{name}.pt"
if not from_results:
    settings = dict(task="classify", upstream_checkpoint=upstream_checkpoint, runs_dir=runs_dir, arch=arch,
                    width=width, norm=norm, batch_size=batch_size, lr=lr, grad_clip=grad_clip, lr_drops=lr_drops,
                    evals=evals, aug=aug, aug_backend=aug_backend, device=device, precision=precision, held_out=True)
    # Scratch at every count (the curve n̂ is read off); each method at the counts it is fine-tuned at.
    sweep_runs = lambda counts, inits: nd.label_count_runs(world_dir, counts, epochs, batch_size, min_steps,
                                                           init=inits, seed=seeds)
    easy_runs = sweep_runs(label_counts, ["scratch"]) + sweep_runs(finetune_label_counts, selfsup_methods)
    large_runs = [dict(run, arch=large_arch, width=large_width, arm=f"{run['init']} ({large})",
                       init=run["init"] if run["init"] == "scratch" else f"{nd_method}_large")
                  for run in sweep_runs(nd2_label_counts, ["scratch", nd_method])]
    hard_runs = (sweep_runs(label_counts, ["scratch"]) + sweep_runs(finetune_label_counts, [nd_method])
                 if nd3_hard_world else [])
    easy = runs.sweep(easy_runs, world_dir=world_dir, checkpoints={m: checkpoint(m) for m in selfsup_methods},
                      **settings)
    # ND-2 runs only where the profile names its label counts (the exploration cut it for its budget).
    larger = runs.sweep(large_runs, world_dir=world_dir,
                        checkpoints={f"{nd_method}_large": checkpoint(f"{nd_method}_large")},
                        **settings) if large_runs else None
    # ND-3 runs only where the profile turns nd3_hard_world on (the exploration cut it for its budget).
    hard = runs.sweep(hard_runs, world_dir=hard_world_dir, checkpoints={nd_method: checkpoint(f"{nd_method}_hard")},
                      **settings) if hard_runs else None
    outputs.write_results(out_dir, pd.concat([  # run_id unique in the CSV; label_count: the labels each run kept
        nd.with_label_counts(r, directory).assign(experiment=name, world=world, run_id=name + " " + r.run_id)
        for name, world, r, directory in (("ND-1", "easy", easy, world_dir), ("ND-2", "easy", larger, world_dir),
                                          ("ND-3", "hard", hard, hard_world_dir)) if r is not None]), parameters,
        checkpoints={m: checkpoint(m) for m in selfsup_methods}
        | ({f"{nd_method} ({large})": checkpoint(f"{nd_method}_large")} if large_runs else {})
        | ({f"{nd_method} (hard world)": checkpoint(f"{nd_method}_hard")} if hard_runs else {}))
results = outputs.read_results(out_dir, results_dir if from_results else None)
# Each run's model selected by its validation accuracy, scored on the held-out test split (Newell & Deng).
final = {name: nd.selected_metric(results[results.experiment == experiment], "accuracy")
         for name, experiment in (("easy", "ND-1"), ("large", "ND-2"), ("hard", "ND-3"))}
sizes = pd.concat([final["easy"][final["easy"].arm.isin(["scratch", nd_method])
                                 & final["easy"].label_count.isin(nd2_label_counts)], final["large"]])
def checkpoint_name(run) -> str | None:
    """The checkpoints.csv entry a run started from (the large model's and the hard world's are their own)."""
    if run["init"] == "scratch":
        return None
    if run["init"].endswith("_large"):
        return f"{nd_method} ({large})"
    return f"{run['init']} (hard world)" if run["world"] == "hard" else run["init"]


findings = [nd.nd1_finding(final["easy"], selfsup_methods, criteria["ND-1"], utility_max_factor,
                           utility_max_extrapolated, profile, figure="nd1_utility.png"),
            nd.nd2_finding(sizes, nd_method, large, criteria["ND-2"], profile,
                           figure="nd2_model_size.png" if nd2_label_counts else None,
                           not_run_minutes=config.cut_minutes("ND-2")),
            nd.nd3_finding(final["easy"], final["hard"], nd_method, criteria["ND-3"], utility_max_factor,
                           utility_max_extrapolated, profile, figure="nd3_hard_world.png" if nd3_hard_world else None,
                           not_run_minutes=config.cut_minutes("ND-3"))]
findings = [gates.apply_gates(f, gates.report_gates(results, parameters, out_dir, checkpoint_of=checkpoint_name)) for f in findings]
findings = outputs.write_findings(out_dir, findings, from_results, deviations, phase)

# %% [markdown]
# ## Summary

# %%
outputs.show_summary(findings, deviations, out_dir)

# %% [markdown]
# ## How it was tested
#
# **Here.** The self-supervised methods of `selfsup_methods`, each pre-trained on the upstream images without
# their labels by the `selfsup` rule (`rethink.core.training.selfsup`) and gated on its pretext loss: rotation prediction
# (handcrafted), an autoencoder, SimCLR (contrastive) and SwAV (clustering). Scratch trains at every one of
# `label_counts` downstream labels, each method is fine-tuned at `finetune_label_counts`; a count trains
# max(`min_steps`, `epochs` epochs of its own labels) steps, so that a few labels get the steps they need to
# converge. As Newell & Deng select their models on validation, each run keeps the evaluation with the best
# validation accuracy, and the verdicts read that model's accuracy on a held-out test split the world generates.
# U(n) is read off each seed's scratch curve (`rethink.study.nd`, linear in log n; beyond the measured counts
# the nearest segment is extended and n̂ is clamped to `utility_max_factor` times the range, and such values
# are flagged; U decides only if at most `utility_max_extrapolated` of its values are so read and every seed's
# scratch curve rises). ND-2 repeats `nd_method` with a larger network, pre-trained the same way, at
# `nd2_label_counts` (a profile that leaves them empty does not run it); ND-3 repeats
# it on a world whose variation knobs (texture, colour, viewpoint, lighting, clutter) are turned up,
# pre-trained on that world's upstream images.
#
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/study.yaml, fixed before
# the confirmation's runs): each finding's conditions with their values, its primary condition and, for a
# directional claim, δ, the smallest effect of interest, are written out in the Summary above.
#
# **Runs.** ND-1: scratch at every one of `label_counts`, each method at `finetune_label_counts`. ND-2: scratch and
# `nd_method` on the large model at `nd2_label_counts` (none: not run). ND-3: scratch and `nd_method` on the hard
# world, at the same counts as ND-1 (where `nd3_hard_world` is on).

# %% [markdown]
# The self-supervised checkpoints on the upstream validation set: each method's own final loss, and the
# accuracy of a 1-nearest-neighbour probe of its features (which trains nothing):

# %%
display(outputs.Readable(outputs.checkpoint_table(out_dir), "no such number for this checkpoint (a supervised one has no 1-NN probe; SimCLR reports no upstream accuracy)"))
pretraining = pd.read_csv(Path(out_dir) / "pretraining.csv")
figures.save(figures.pretraining_losses(pretraining, gates.checkpoint_chances(pretraining.checkpoint.unique(), parameters),
                                        pretext_factor), Path(out_dir) / "pretraining.png",
             caption="Pre-training. Each self-supervised checkpoint's pretext loss per epoch on the upstream images, "
                     "against its chance value (dashed) and the pre-training gate (dotted: the loss must end below "
                     f"{pretext_factor:g} x chance). The autoencoder's reconstruction loss has no chance value.")

# %% [markdown]
# ## Fine-tuning curves
# Validation accuracy during fine-tuning, one panel per label count (mean over seeds with a 95% CI band): every
# run's LR drops at 0.45 and 0.6 of it, and the model kept is the evaluation with the best validation accuracy.

# %%
easy_curves = results[results.experiment == "ND-1"]
figures.save(figures.training_curves(easy_curves, "accuracy", panel="label_count", x="step"),
             Path(out_dir) / "nd1_curves.png",
             caption="Fine-tuning. Validation accuracy against training steps of scratch and each method, one panel "
                     "per label count (mean over seeds, 95% CI bands).")

# %% [markdown]
# ## ND-1: accuracy and utility against the number of labels
# Left: accuracy of scratch and of every fine-tuned method (mean with 95% CI over seeds). Right: U(n) per
# method; 0 means the pre-trained model is worth no labels, 1 that scratch needs twice as many.

# %%
utilities = nd.utility_rows(final["easy"], selfsup_methods, utility_max_factor)
figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
TEST_ACCURACY = "held-out test accuracy (points)"  # of each run's model selected on validation
figures.metric_curve(final["easy"], "accuracy", "ND-1: accuracy", x="label_count", ax=axes[0], log_x=True,
                     ylabel=TEST_ACCURACY)
figures.metric_curve(utilities.rename(columns={"utility": "value"}), "utility", "ND-1: utility of pre-training",
                   x="label_count", ax=axes[1], log_x=True, ylabel="utility U(n) = n̂/n − 1")
axes[1].axhline(0, color="black", linewidth=0.8)
figures.mark_extrapolated(axes[1], utilities)
figures.save(figure, Path(out_dir) / "nd1_utility.png",
             caption="ND-1. Accuracy of scratch and of each fine-tuned method against the number of labels (left), "
                     "and each method's utility U(n) = n̂/n − 1 read off the scratch curve (right); mean over seeds "
                     "with 95% CIs, log scale; crosses: single seeds' values read off beyond the measured scratch curve "
                     "(extrapolated or clamped), dots: interpolated ([Newell & Deng "
                     "2020](https://arxiv.org/abs/2003.14323)). Accuracies are on the held-out test split.")
display(utilities.groupby(["label_count", "arm"]).utility.apply(figures.mean_ci_text).unstack("arm"))

# %% [markdown]
# The share of utility values read off beyond the measured scratch curve (extrapolated, then clamped):

# %%
display(utilities.groupby(["label_count", "arm"]).extrapolated.mean().unstack("arm"))

# %% [markdown]
# ## ND-2: a larger model
# Accuracy of the small and the large model, from scratch and fine-tuned from `nd_method`:

# %%
if sizes.arm.str.endswith(f"({large})").any():
    figures.save(figures.metric_curve(sizes, "accuracy", f"ND-2: {arch}-{width} against {large}", x="label_count",
                                      log_x=True, ylabel=TEST_ACCURACY), Path(out_dir) / "nd2_model_size.png",
                 caption=f"ND-2. The small ({arch}-{width}) and the large ({large}) model, from scratch and fine-tuned "
                         f"from {nd_method}, against the number of labels (mean over seeds, 95% CIs; [Newell & Deng "
                         f"2020](https://arxiv.org/abs/2003.14323)).")
    display(sizes.groupby(["label_count", "arm"]).value.apply(figures.mean_ci_text).unstack("arm"))
else:
    display(Markdown("ND-2 was not run under this profile (its large-model label counts are empty)."))

# %% [markdown]
# ## ND-3: a harder world
# `nd_method`'s utility on the default world and on the one with every variation knob turned up (left), and
# the accuracies behind it (right).

# %%
if final["hard"].empty:
    display(Markdown("ND-3 was not run under this profile (its hard world is off)."))
else:
    by_world = pd.concat([nd.utility_rows(final[world], [nd_method], utility_max_factor)
                          .assign(arm=f"{nd_method} ({world} world)") for world in ("easy", "hard")])
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    figures.metric_curve(by_world.rename(columns={"utility": "value"}), "utility", "ND-3: utility by world",
                         x="label_count", ax=axes[0], log_x=True, ylabel="utility U(n) = n̂/n − 1")
    axes[0].axhline(0, color="black", linewidth=0.8)
    figures.mark_extrapolated(axes[0], by_world)
    accuracies = pd.concat([final[world][final[world].arm.isin(["scratch", nd_method])] for world in ("easy", "hard")])
    accuracies["arm"] += " (" + accuracies.world + " world)"
    figures.metric_curve(accuracies, "accuracy", "ND-3: accuracy by world", x="label_count", ax=axes[1], log_x=True,
                         ylabel=TEST_ACCURACY)
    figures.save(figure, Path(out_dir) / "nd3_hard_world.png",
                 caption=f"ND-3. The utility of {nd_method} on the easy and the hard world (left) and the accuracies it "
                         f"comes from (right), against the number of labels (mean over seeds, 95% CIs; [Newell & Deng "
                         f"2020](https://arxiv.org/abs/2003.14323)).")
    display(by_world.groupby(["label_count", "arm"]).utility.apply(figures.mean_ci_text).unstack("arm"))

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
display(outputs.parameters_table(parameters, "06_nd1_nd3_utility"))
figures.prune(out_dir)  # a figure an earlier version of this notebook saved is not this report's
