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

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from rethink import config
from rethink.report import figures, pages, tables
from rethink.study import gates, nd, notebook, runs

# %% tags=["parameters"]
profile: str = "default"    # the profile of config/study.yaml whose settings and criteria this runs with
from_results: bool = False  # True: re-render from the results.csv in results_dir, training nothing
device: str = None          # auto | cpu | cuda (None: the config's)
seeds: list = None          # e.g. [0] for a quick look (None: the profile's)
out_dir: str = None         # None: build/lab/<profile>/<notebook> (Snakemake writes the reports)
results_dir: str = None     # from_results reads here (None: the profile's committed report folder)

# %%
s = config.notebook("06_nd1_nd3_utility", globals())  # config/study.yaml under the profile; the cell above wins
large = f"{s.large_arch}-{s.large_width}"
checkpoint = lambda name: f"{s.checkpoints_dir}/{config.checkpoint_file(name)}"  # one per seed
nd.check_counts(s)
# Scratch at every count (the curve n̂ is read off); each method at the counts it is fine-tuned at.
count_runs = lambda counts, inits: nd.label_count_runs(s.world_dir, counts, s.epochs, s.batch_size, s.min_steps,
                                                       init=inits, seed=s.seeds)
large_checkpoint = {f"{s.nd_method} ({large})": checkpoint(f"{s.nd_method}_large")} if s.nd2_label_counts else {}
hard_checkpoint = {f"{s.nd_method} (hard world)": checkpoint(f"{s.nd_method}_hard")} if s.nd3_hard_world else {}


def train():
    """ND-1 on the default world; ND-2's large model where the profile names its label counts; ND-3 on the hard world
    where the profile turns it on. Each run's model is selected on validation and scored on the held-out test split."""
    easy = runs.sweep(count_runs(s.label_counts, ["scratch"]) + count_runs(s.finetune_label_counts, s.selfsup_methods),
                      s, task="classify", held_out=True, checkpoints={m: checkpoint(m) for m in s.selfsup_methods})
    large_runs = [dict(run, arch=s.large_arch, width=s.large_width, arm=f"{run['init']} ({large})",
                       init=run["init"] if run["init"] == "scratch" else f"{s.nd_method}_large")
                  for run in count_runs(s.nd2_label_counts, ["scratch", s.nd_method])]
    larger = runs.sweep(large_runs, s, task="classify", held_out=True,
                        checkpoints={f"{s.nd_method}_large": checkpoint(f"{s.nd_method}_large")}) if large_runs else None
    hard = runs.sweep(count_runs(s.label_counts, ["scratch"]) + count_runs(s.finetune_label_counts, [s.nd_method]), s,
                      task="classify", held_out=True, world_dir=s.hard_world_dir,
                      checkpoints={s.nd_method: checkpoint(f"{s.nd_method}_hard")}) if s.nd3_hard_world else None
    return pd.concat([  # run_id unique in the CSV; label_count: the labels each run kept
        nd.with_label_counts(r, directory).assign(experiment=name, world=world, run_id=name + " " + r.run_id)
        for name, world, r, directory in (("ND-1", "easy", easy, s.world_dir), ("ND-2", "easy", larger, s.world_dir),
                                          ("ND-3", "hard", hard, s.hard_world_dir)) if r is not None])


results = notebook.results(s, train, checkpoints={m: checkpoint(m) for m in s.selfsup_methods} | large_checkpoint
                           | hard_checkpoint)
# Each run's model selected by its validation accuracy, scored on the held-out test split (Newell & Deng).
final = {name: nd.selected_metric(results[results.experiment == experiment], "accuracy")
         for name, experiment in (("easy", "ND-1"), ("large", "ND-2"), ("hard", "ND-3"))}
sizes = pd.concat([final["easy"][final["easy"].arm.isin(["scratch", s.nd_method])
                                 & final["easy"].label_count.isin(s.nd2_label_counts)], final["large"]])
def checkpoint_name(run) -> str | None:
    """The checkpoints.csv entry a run started from (the large model's and the hard world's are their own)."""
    if run["init"] == "scratch":
        return None
    if run["init"].endswith("_large"):
        return f"{s.nd_method} ({large})"
    return f"{run['init']} (hard world)" if run["world"] == "hard" else run["init"]


findings = notebook.judge(s, [nd.nd1_finding(final["easy"], s.selfsup_methods, s.criteria["ND-1"], s.utility_max_factor,
                           s.utility_max_extrapolated, s.profile, figure="nd1_utility.png"),
            nd.nd2_finding(sizes, s.nd_method, large, s.criteria["ND-2"], s.profile,
                           figure="nd2_model_size.png" if s.nd2_label_counts else None,
                           not_run_minutes=config.cut_minutes("ND-2")),
            nd.nd3_finding(final["easy"], final["hard"], s.nd_method, s.criteria["ND-3"], s.utility_max_factor,
                           s.utility_max_extrapolated, s.profile, figure="nd3_hard_world.png" if s.nd3_hard_world else None,
                           not_run_minutes=config.cut_minutes("ND-3"))],
                          results, checkpoint_of=checkpoint_name)

# %% [markdown]
# ## Summary

# %%
pages.show_summary(findings, s)

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
# **Pre-registered criteria** (protocol v2, docs/protocol.md: the `criteria` of config/protocol.yaml, fixed before
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
display(tables.Readable(tables.checkpoint_table(s.out_dir), "no such number for this checkpoint (a supervised one has no 1-NN probe; SimCLR reports no upstream accuracy)"))
pretraining = pd.read_csv(Path(s.out_dir) / "pretraining.csv")
figures.save(figures.pretraining_losses(pretraining, gates.checkpoint_chances(pretraining.checkpoint.unique(), s),
                                        s.pretext_factor), Path(s.out_dir) / "pretraining.png",
             caption="Pre-training. Each self-supervised checkpoint's pretext loss per epoch on the upstream images, "
                     "against its chance value (dashed) and the pre-training gate (dotted: the loss must end below "
                     f"{s.pretext_factor:g} x chance). The autoencoder's reconstruction loss has no chance value.")

# %% [markdown]
# ## Fine-tuning curves
# Validation accuracy during fine-tuning, one panel per label count (mean over seeds with a 95% CI band): every
# run's LR drops at 0.45 and 0.6 of it, and the model kept is the evaluation with the best validation accuracy.

# %%
easy_curves = results[results.experiment == "ND-1"]
figures.save(figures.training_curves(easy_curves, "accuracy", panel="label_count", x="step"),
             Path(s.out_dir) / "nd1_curves.png",
             caption="Fine-tuning. Validation accuracy against training steps of scratch and each method, one panel "
                     "per label count (mean over seeds, 95% CI bands).")

# %% [markdown]
# ## ND-1: accuracy and utility against the number of labels
# Left: accuracy of scratch and of every fine-tuned method (mean with 95% CI over seeds). Right: U(n) per
# method; 0 means the pre-trained model is worth no labels, 1 that scratch needs twice as many.

# %%
utilities = nd.utility_rows(final["easy"], s.selfsup_methods, s.utility_max_factor)
figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
TEST_ACCURACY = "held-out test accuracy (points)"  # of each run's model selected on validation
figures.metric_curve(final["easy"], "accuracy", "ND-1: accuracy", x="label_count", ax=axes[0], log_x=True,
                     ylabel=TEST_ACCURACY)
figures.metric_curve(utilities.rename(columns={"utility": "value"}), "utility", "ND-1: utility of pre-training",
                   x="label_count", ax=axes[1], log_x=True, ylabel="utility U(n) = n̂/n − 1")
axes[1].axhline(0, color="black", linewidth=0.8)
figures.mark_extrapolated(axes[1], utilities)
figures.save(figure, Path(s.out_dir) / "nd1_utility.png",
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
    figures.save(figures.metric_curve(sizes, "accuracy", f"ND-2: {s.arch}-{s.width} against {large}", x="label_count",
                                      log_x=True, ylabel=TEST_ACCURACY), Path(s.out_dir) / "nd2_model_size.png",
                 caption=f"ND-2. The small ({s.arch}-{s.width}) and the large ({large}) model, from scratch and fine-tuned "
                         f"from {s.nd_method}, against the number of labels (mean over seeds, 95% CIs; [Newell & Deng "
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
    by_world = pd.concat([nd.utility_rows(final[world], [s.nd_method], s.utility_max_factor)
                          .assign(arm=f"{s.nd_method} ({world} world)") for world in ("easy", "hard")])
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    figures.metric_curve(by_world.rename(columns={"utility": "value"}), "utility", "ND-3: utility by world",
                         x="label_count", ax=axes[0], log_x=True, ylabel="utility U(n) = n̂/n − 1")
    axes[0].axhline(0, color="black", linewidth=0.8)
    figures.mark_extrapolated(axes[0], by_world)
    accuracies = pd.concat([final[world][final[world].arm.isin(["scratch", s.nd_method])] for world in ("easy", "hard")])
    accuracies["arm"] += " (" + accuracies.world + " world)"
    figures.metric_curve(accuracies, "accuracy", "ND-3: accuracy by world", x="label_count", ax=axes[1], log_x=True,
                         ylabel=TEST_ACCURACY)
    figures.save(figure, Path(s.out_dir) / "nd3_hard_world.png",
                 caption=f"ND-3. The utility of {s.nd_method} on the easy and the hard world (left) and the accuracies it "
                         f"comes from (right), against the number of labels (mean over seeds, 95% CIs; [Newell & Deng "
                         f"2020](https://arxiv.org/abs/2003.14323)).")
    display(by_world.groupby(["label_count", "arm"]).utility.apply(figures.mean_ci_text).unstack("arm"))

# %%
pages.show_closing(findings, s)
