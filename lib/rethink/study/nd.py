"""Newell & Deng 2020, "How Useful is Self-Supervised Pretraining for Visual Tasks?" (arXiv 2003.14323):
ND-1 to ND-5 on the study's world, fine-tuning the self-supervised checkpoints of rethink.core.training.selfsup
(Snakemake's `selfsup` rule). The criteria's values are pre-registered in config/protocol.yaml.

Their utility of pre-training, U(n) = n̂/n − 1, where a model trained from scratch on n̂ labels scores what
the fine-tuned model scores on n: how many more labels scratch training needs for the same result.

The scratch curve is measured at a few label counts only, so n̂ is read off it by interpolation, linear in
log n (the curves are close to straight there). Written by hand: it is a few lines of numpy, and no pinned
library computes it. Two choices the paper leaves open, made here and reported with every value:
- the curve's monotone envelope is used (more labels never score less), so n̂ is unique;
- a score beyond the measured range extends the nearest segment of the curve, and n̂ is clamped to
  [n_min / max_factor, n_max * max_factor], so U stays finite; such values are flagged as extrapolated.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..core.training.schedule import steps_per_epoch
from .effects import (METRIC_UNITS, arm_selector, because, cells_mean_effect, failed_bound, gap, mean_effect,
                      not_replicated, not_run, paired_differences, rank_effect, require_member, seed_gaps, seed_values,
                      with_arms)
from .runs import grid, n_train
from .verdicts import finding, untested_finding

# What each finding claims and what the paper reports.
CLAIMS = {
    "ND-1": dict(
        claim="The utility U(n) of self-supervised pre-training (how many more labels scratch training needs) falls "
              "toward zero as labels grow, often before accuracy plateaus.",
        paper="Utility falls toward 0 with ample labels for VAE, Rotation, CMC and AMDIM: \"better regularization, not "
              "better optimization\" (Newell & Deng 2020, Fig. 3).",
        paper_effect="U at the most labels − at the fewest: negative (curves, no number)"),
    "ND-2": dict(
        claim="Larger models benefit more: from scratch the large model is worse than the small one with few labels; "
              "pre-trained it is better.",
        paper="ResNet50 against ResNet9 (Newell & Deng 2020, Sec. 4.2).",
        paper_effect="large − small, fine-tuned with few labels: positive (no number)"),
    "ND-3": dict(
        claim="Harder, more varied data gets more utility from pre-training.",
        paper="Utility rises with the variation factors texture, color, viewpoint and lighting (Newell & Deng 2020, "
              "Sec. 4.3).",
        paper_effect="U on harder data − on easier: positive (curves, no number)"),
    "ND-4": dict(
        claim="Freezing more of the pre-trained network hurts, and linear evaluation does not predict the ranking "
              "after fine-tuning.",
        paper="Fine-tuning all layers > freezing more layers > linear probe; linear-probe rankings of the methods "
              "differ from fine-tuned ones (Newell & Deng 2020, Sec. 4.4).",
        paper_effect="linear probe − fine-tuning: negative (no number)"),
    "ND-5": dict(
        claim="Self-supervised methods rank differently on different tasks.",
        paper="The best of VAE, Rotation, CMC and AMDIM changes between classification, pose estimation, "
              "segmentation and depth (Newell & Deng 2020, Sec. 4.5).",
        paper_effect="rank correlation of the methods' gains between tasks: low (no number)"),
}


def matched_count(counts, scratch, score: float, max_factor: float = 10.0) -> tuple[float, bool]:
    """n̂ with scratch(n̂) = score on the scratch curve (counts ascending, one score each) -> (n̂, extrapolated)."""
    counts, scratch = np.asarray(counts, float), np.asarray(scratch, float)
    if len(counts) < 2 or np.any(np.diff(counts) <= 0):
        raise ValueError(f"the scratch curve needs at least 2 strictly increasing label counts; got {counts.tolist()}")
    if max_factor < 1:
        raise ValueError(f"max_factor must be >= 1; got {max_factor}")
    envelope = np.maximum.accumulate(scratch)
    rising = np.concatenate([[True], np.diff(envelope) > 0])  # keep each level's first count
    log_n, level = np.log(counts[rising]), envelope[rising]
    low, high = np.log(counts[0] / max_factor), np.log(counts[-1] * max_factor)
    if len(level) == 1:  # a flat curve: any other score lies beyond it
        if score == level[0]:
            return float(counts[0]), False
        return float(np.exp(high if score > level[0] else low)), True
    if level[0] <= score <= level[-1]:
        return float(np.exp(np.interp(score, level, log_n))), False
    i = -2 if score > level[-1] else 0  # extend the last (or first) segment
    slope = (log_n[i + 1] - log_n[i]) / (level[i + 1] - level[i])
    return float(np.exp(np.clip(log_n[i] + slope * (score - level[i]), low, high))), True


def utility(counts, scratch, finetuned, max_factor: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """U(n) = n̂/n − 1 at every count of the curves (the same counts, ascending) -> (U, extrapolated flags)."""
    matched = [matched_count(counts, scratch, score, max_factor) for score in finetuned]
    n_hat = np.array([m[0] for m in matched])
    return n_hat / np.asarray(counts, float) - 1, np.array([m[1] for m in matched])


def label_count_runs(world_dir: str, label_counts: list[int], epochs: float, batch_size: int, min_steps: int = 0,
                     **axes) -> list[dict]:
    """Newell & Deng's label-count sweep: each count (a prefix of the downstream training set) crossed with the
    grid of `axes`, trained for max(min_steps, `epochs` epochs of its own labels) steps, so that a few labels get
    the steps they need to converge and many labels their epochs."""
    total = n_train(world_dir)
    bad = [n for n in label_counts if not 1 <= n <= total]
    if bad or sorted(set(label_counts)) != list(label_counts):
        raise ValueError(f"label_counts must rise strictly, each in [1, {total}] (the downstream training set); "
                         f"got {list(label_counts)}")
    runs = []
    for n in label_counts:
        epoch_steps = steps_per_epoch(n, batch_size)
        steps = max(min_steps, round(epochs * epoch_steps))
        runs += [dict(label_fraction=n / total, epochs_1x=steps / epoch_steps, **run) for run in grid(**axes)]
    return runs


def check_counts(settings, zoo: bool = False) -> None:
    """The label counts a notebook sweeps, checked before any training: each fine-tuned count is on the scratch curve,
    ND-2's are fine-tuned counts and nd_method is a method of the zoo; for the zoo's notebook (`zoo`), its label
    count is a fine-tuned one and the autoencoder (BL-1's subject) is in the zoo."""
    if zoo:
        require_member("zoo_label_count", settings.zoo_label_count, settings.finetune_label_counts,
                       "finetune_label_counts")
        require_member("autoencoder", "autoencoder", settings.selfsup_methods, "selfsup_methods (BL-1 needs it)")
        return
    require_member("nd_method", settings.nd_method, settings.selfsup_methods, "selfsup_methods")
    for count in settings.finetune_label_counts:
        require_member("finetune_label_counts", count, settings.label_counts, "label_counts")
    for count in settings.nd2_label_counts:
        require_member("nd2_label_counts", count, settings.finetune_label_counts, "finetune_label_counts")


def selected_metric(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Newell & Deng's model selection: for each run, the evaluation with the best validation `metric` (the
    earliest of ties), scored on the held-out test split. One row per run, as verdicts.final_metric gives."""
    val = results[(results.metric == metric) & (results.split == "val")]
    best = val.loc[val.groupby("run_id").value.idxmax(), ["run_id", "step"]]
    test = results[(results.metric == metric) & (results.split == "test")]
    if test.empty and not val.empty:
        raise ValueError(f"the results have no held-out test scores of {metric!r}: rerun the sweep with held_out=True")
    return test.merge(best, on=["run_id", "step"])


def with_label_counts(results: pd.DataFrame, world_dir: str) -> pd.DataFrame:
    """The results with a label_count column: the number of labels each run's label_fraction kept."""
    total = n_train(world_dir)
    return results.assign(label_count=(results.label_fraction * total).round().clip(lower=1).astype(int))


def utility_rows(final: pd.DataFrame, arms: list[str], max_factor: float, scratch: str = "scratch") -> pd.DataFrame:
    """U(n) per arm, seed and label count, each seed's fine-tuned scores against the same seed's scratch curve
    (scratch at every count; an arm at the counts it was fine-tuned at): columns arm, seed, label_count, utility,
    extrapolated."""
    rows = []
    for seed, runs in final.groupby("seed"):
        curves = runs.pivot_table(index="label_count", columns="arm", values="value").sort_index()
        curve = curves[scratch].dropna()
        for arm in arms:
            for n, score in curves[arm].dropna().items():
                n_hat, outside = matched_count(curve.index, curve.values, score, max_factor)
                rows.append(dict(arm=arm, seed=seed, label_count=n, utility=n_hat / n - 1, extrapolated=bool(outside)))
    return pd.DataFrame(rows)


def utility_validity(final: pd.DataFrame, utilities: pd.DataFrame, max_extrapolated: float,
                     scratch: str = "scratch", where: str = "") -> list[dict]:
    """Why the utilities cannot decide a condition (none when they can), against the pre-registered bounds: every
    seed's scratch curve must rise with the labels (n̂ is read off it), and at most `max_extrapolated` of the U
    values may lie beyond the measured curve (extrapolated, then perhaps clamped). Each reason is a failed bound."""
    reasons = []
    for seed, runs in final[final.arm == scratch].groupby("seed"):
        curve = runs.sort_values("label_count").value.to_numpy()
        if np.any(np.diff(curve) < 0):
            reasons.append(failed_bound("scratch curve rises", float(np.diff(curve).min()), 0.0,
                                        f"{where}seed {seed}'s scratch curve falls as labels grow "
                                        f"({', '.join(f'{v:.1f}' for v in curve)})"))
    share = float(utilities.extrapolated.mean()) if len(utilities) else 0.0
    if share > max_extrapolated:
        reasons.append(failed_bound("utility bound", share, max_extrapolated,
                                    f"{where}{share:.0%} of the U values were read off beyond the scratch curve "
                                    f"(extrapolated or clamped), more than the pre-registered {max_extrapolated:.0%}"))
    return reasons


def seed_means(rows: pd.DataFrame, value: str = "utility") -> dict:
    """seed -> the mean of `value` over the rows of that seed (e.g. over label counts)."""
    return rows.groupby("seed")[value].mean().to_dict()


def method_cells(u: pd.DataFrame, methods: list[str], label_count) -> list[dict]:
    """Per method, seed -> its U at `label_count`: the cells a mean over methods averages."""
    rows = u[u.label_count == label_count]
    return [dict(zip(rows[rows.arm == m].seed, rows[rows.arm == m].utility)) for m in methods]


def nd1_finding(final: pd.DataFrame, methods: list[str], criterion: dict, max_factor: float, max_extrapolated: float,
                profile: str, figure: str | None = None) -> dict:
    """ND-1: averaged over the methods (a mean over cells), U from the fewest fine-tuned labels to the most
    (utility_change) and U at the most (utility_most); not tested where utility_validity finds the utilities unfit
    to decide."""
    u = utility_rows(final, methods, max_factor)
    invalid = utility_validity(final, u, max_extrapolated)
    fewest, most = u.label_count.min(), u.label_count.max()
    at_most, at_fewest = method_cells(u, methods, most), method_cells(u, methods, fewest)
    change = [paired_differences(a, b) for a, b in zip(at_most, at_fewest)]
    # U(n) reads the whole scratch curve and each method at n.
    arms = [arm_selector(final, "scratch")] + [arm_selector(final, m, label_count=n) for m in methods
                                               for n in (fewest, most)]
    effects = {"utility_change": cells_mean_effect(change, unit="utility"),
               "utility_most": cells_mean_effect(at_most, unit="utility")}
    effects = {name: because(with_arms(effect, arms), *invalid) for name, effect in effects.items()}
    labels = {"utility_change": f"U({most}) − U({fewest}), averaged over {', '.join(methods)}",
              "utility_most": f"U({most}), averaged over the methods"}
    return finding(CLAIMS, "ND-1", criterion, effects, labels, profile, figure)


def nd2_finding(final: pd.DataFrame, method: str, large: str, criterion: dict, profile: str,
                figure: str | None = None, not_run_minutes: float | None = None) -> dict:
    """ND-2: with the fewest labels, large − small from scratch (scratch_gap) and large − small fine-tuned from
    `method` (finetuned_gap). Large arms are named '<arm> (<large>)'; with none (a profile whose nd2_label_counts is
    empty), ND-2 is not tested: not run, with `not_run_minutes`, its measured cost, where known."""
    fewest = f"{final.label_count.min()} labels" if len(final) else "the fewest labels"
    labels = {"scratch_gap": f"{large} − the small model's accuracy from scratch with {fewest}",
              "finetuned_gap": f"{large} − the small model's accuracy fine-tuned from {method} with {fewest}"}
    if not final.arm.str.endswith(f"({large})").any():
        return untested_finding(CLAIMS, "ND-2", criterion, labels, METRIC_UNITS["accuracy"],
                                not_run(f"no {large} runs: the profile cut the large model for its budget",
                                        not_run_minutes), profile, figure)
    fewest = final.label_count.min()
    effects = {"scratch_gap": gap(final, f"scratch ({large})", "scratch", "accuracy", label_count=fewest),
               "finetuned_gap": gap(final, f"{method} ({large})", method, "accuracy", label_count=fewest)}
    return finding(CLAIMS, "ND-2", criterion, effects, labels, profile, figure)


def nd3_finding(easy: pd.DataFrame, hard: pd.DataFrame, method: str, criterion: dict, max_factor: float,
                max_extrapolated: float, profile: str, figure: str | None = None,
                not_run_minutes: float | None = None) -> dict:
    """ND-3: the mean over label counts of U on the hard world minus U on the easy one, per seed (utility_gain);
    not tested where utility_validity finds either world's utilities unfit to decide, or without hard-world runs
    (a profile whose nd3_hard_world is off: not run, with `not_run_minutes` where known)."""
    labels = {"utility_gain": f"{method}'s utility averaged over the label counts, on the hard world − on the easy one"}
    if hard.empty:
        return untested_finding(CLAIMS, "ND-3", criterion, labels, "utility",
                                not_run("no hard-world runs: the profile cut the hard world for its budget",
                                        not_run_minutes), profile, figure)
    rows = {name: utility_rows(final, [method], max_factor) for name, final in (("hard", hard), ("easy", easy))}
    invalid = [reason for name, final in (("hard", hard), ("easy", easy))
               for reason in utility_validity(final, rows[name], max_extrapolated, where=f"{name} world: ")]
    utilities = {name: seed_means(u) for name, u in rows.items()}
    arms = [arm_selector(final, arm) for final in (hard, easy) for arm in ("scratch", method)]
    effect = mean_effect(paired_differences(utilities["hard"], utilities["easy"]), unit="utility")
    return finding(CLAIMS, "ND-3", criterion, {"utility_gain": because(with_arms(effect, arms), *invalid)}, labels,
                   profile, figure)


def rank_correlations(final: pd.DataFrame, arms: list[str], a: dict, b: dict) -> dict:
    """seed -> Spearman's rho between the arms' values in the rows matching `a` and in those matching `b`."""
    left, right = ([seed_values(final, arm, **where) for arm in arms] for where in (a, b))
    out = {}
    for seed in sorted(final.seed.unique()):
        x, y = [v.get(seed) for v in left], [v.get(seed) for v in right]
        if None not in x + y:
            out[seed] = float(stats.spearmanr(x, y).statistic)
    return out


ONE_PRETRAINING = "every seed fine-tunes the same pre-training checkpoint per method: one replicate, not independent seeds"


def nd4_finding(final: pd.DataFrame, methods: list[str], criterion: dict, profile: str, figure: str | None = None,
                *, replicated: bool) -> dict:
    """ND-4: averaged over the methods (a mean over cells), the linear probe (most stages frozen) − fine-tuning all
    (probe_gap), and Spearman's rho between the methods' linear-probe and fine-tuned accuracies (rank_correlation),
    which decides only if every seed had its own pre-training (`replicated`)."""
    probe, tuned = final.freeze.max(), final.freeze.min()
    gaps = [paired_differences(seed_values(final, m, freeze=probe), seed_values(final, m, freeze=tuned))
            for m in methods]
    arms = [arm_selector(final, m, freeze=k) for m in methods for k in (probe, tuned)]
    rhos = rank_correlations(final, methods, dict(freeze=probe), dict(freeze=tuned))
    effects = {"probe_gap": with_arms(cells_mean_effect(gaps, unit=METRIC_UNITS["accuracy"]), arms),
               "rank_correlation": with_arms(rank_effect(rhos, because=() if replicated else
                                                         (not_replicated(ONE_PRETRAINING),)), arms)}
    labels = {"probe_gap": f"linear probe (freeze {probe:g}) − fine-tuning (freeze {tuned:g}) accuracy, averaged over "
                           f"the methods",
              "rank_correlation": "Spearman's rho between the methods' probe and fine-tuned accuracies"}
    return finding(CLAIMS, "ND-4", criterion, effects, labels, profile, figure)


def task_gains(finals: dict[str, pd.DataFrame], methods: list[str]) -> pd.DataFrame:
    """Per task, method and seed: the fine-tuned score minus scratch's (columns task, arm, seed, value)."""
    rows = [dict(task=task, arm=method, seed=seed, value=value) for task, final in finals.items()
            for method in methods for seed, value in seed_gaps(final, method, "scratch").items()]
    return pd.DataFrame(rows)


def nd5_finding(finals: dict[str, pd.DataFrame], methods: list[str], criterion: dict, profile: str,
                figure: str | None = None, *, replicated: bool, not_run_minutes: float | None = None) -> dict:
    """ND-5: the methods' gains over scratch rank differently between tasks: Spearman's rho between two tasks'
    gains, averaged over the pairs of tasks, per seed (rank_correlation)."""
    tasks = list(finals)
    labels = {"rank_correlation": f"Spearman's rho between the methods' gains over scratch on two tasks "
                                  f"({', '.join(tasks)}), averaged over the pairs of tasks"}
    arms = [arm_selector(final, arm) for final in finals.values() for arm in ("scratch", *methods)]
    if len(tasks) < 2:  # a profile that cut the other tasks for its budget: nothing to correlate
        return untested_finding(CLAIMS, "ND-5", criterion, labels, "Spearman rho",
                                not_run(f"one task ({', '.join(tasks)}): the profile cut the others for its budget, "
                                        f"and rank correlations between tasks need two or more", not_run_minutes),
                                profile, figure, arms)
    gains = task_gains(finals, methods)
    pairs = [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    by_pair = [rank_correlations(gains, methods, dict(task=a), dict(task=b)) for a, b in pairs]
    seeds = sorted(set.intersection(*(set(p) for p in by_pair)))
    rhos = {s: float(np.mean([p[s] for p in by_pair])) for s in seeds}
    effects = {"rank_correlation": with_arms(rank_effect(rhos, because=() if replicated else
                                                         (not_replicated(ONE_PRETRAINING),)), arms)}
    return finding(CLAIMS, "ND-5", criterion, effects, labels, profile, figure)
