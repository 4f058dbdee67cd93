"""Newell & Deng 2020 and the overview article (ND-1 to ND-5, BL-1, BL-2): the runs of notebooks 06 to 08
and their verdicts. The self-supervised checkpoints themselves come from rethink.selfsup (Snakemake's
`selfsup` rule); the training runs and the effects' statistics are rethink.study's."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .findings import mean_effect, paired_differences
from .study import METRIC_UNITS, final_metric, finding, gap, iteration_matched_runs, seed_gaps, seed_values, \
    world_file
from .utility import utility
from .world import load_world

RANK_UNIT = "Spearman rho"


def n_train(world_dir: str, task: str = "classify") -> int:
    return len(load_world(world_file(world_dir, task, "train"))["images"])


def label_count_runs(world_dir: str, label_counts: list[int], epochs_1x: float, batch_size: int, **axes) -> list[dict]:
    """Newell & Deng's label-count sweep: each count (a prefix of the downstream training set) crossed with the
    grid of `axes`, every count trained for as many iterations as the full set's `epochs_1x`."""
    total = n_train(world_dir)
    bad = [n for n in label_counts if not 1 <= n <= total]
    if bad or sorted(set(label_counts)) != list(label_counts):
        raise ValueError(f"label_counts must rise strictly, each in [1, {total}] (the downstream training set); "
                         f"got {list(label_counts)}")
    return iteration_matched_runs(world_dir, "classify", [n / total for n in label_counts], epochs_1x, batch_size,
                                  **axes)


def with_label_counts(results: pd.DataFrame, world_dir: str) -> pd.DataFrame:
    """The results with a label_count column: the number of labels each run's label_fraction kept."""
    total = n_train(world_dir)
    return results.assign(label_count=(results.label_fraction * total).round().clip(lower=1).astype(int))


def utility_rows(final: pd.DataFrame, arms: list[str], max_factor: float, scratch: str = "scratch") -> pd.DataFrame:
    """U(n) per arm, seed and label count, each seed's fine-tuned curve against the same seed's scratch curve:
    columns arm, seed, label_count, utility, extrapolated."""
    rows = []
    for seed, runs in final.groupby("seed"):
        curves = runs.pivot_table(index="label_count", columns="arm", values="value").sort_index()
        for arm in arms:
            u, outside = utility(curves.index, curves[scratch], curves[arm], max_factor)
            rows += [dict(arm=arm, seed=seed, label_count=n, utility=v, extrapolated=bool(e))
                     for n, v, e in zip(curves.index, u, outside)]
    return pd.DataFrame(rows)


def seed_means(rows: pd.DataFrame, value: str = "utility") -> dict:
    """seed -> the mean of `value` over the rows of that seed (e.g. over methods)."""
    return rows.groupby("seed")[value].mean().to_dict()


def nd1_finding(final: pd.DataFrame, methods: list[str], max_change: float, max_utility_largest: float,
                max_factor: float, profile: str, figure: str | None = None) -> dict:
    """ND-1: averaged over the methods, U falls from the fewest labels to the most (change < max_change) and
    ends low (U at the most labels < max_utility_largest)."""
    u = utility_rows(final, methods, max_factor)
    fewest, most = u.label_count.min(), u.label_count.max()
    at_most = seed_means(u[u.label_count == most])
    change = paired_differences(at_most, seed_means(u[u.label_count == fewest]))
    effects = {f"utility_change_{fewest}_to_{most}_labels": mean_effect(change.values(), unit="utility"),
               f"utility_at_{most}_labels": mean_effect(at_most.values(), unit="utility")}
    text = (f"averaged over the methods {', '.join(methods)}: U({most}) − U({fewest}) < {max_change:g}, and "
            f"U({most}) < {max_utility_largest:g} (95% CIs)")
    conditions = [dict(effect=f"utility_change_{fewest}_to_{most}_labels", op="<", value=max_change),
                  dict(effect=f"utility_at_{most}_labels", op="<", value=max_utility_largest)]
    return finding("ND-1", text, conditions, effects, profile, figure)


def nd2_finding(final: pd.DataFrame, method: str, large: str, max_gap_scratch: float, min_gap_finetuned: float,
                profile: str, figure: str | None = None) -> dict:
    """ND-2: with the fewest labels, large − small from scratch < max_gap_scratch and large − small fine-tuned
    from `method` > min_gap_finetuned. Large arms are named '<arm> (<large>)'."""
    fewest = final.label_count.min()
    effects = {f"large_minus_small_scratch_{fewest}_labels":
               gap(final, f"scratch ({large})", "scratch", "accuracy", label_count=fewest),
               f"large_minus_small_{method}_{fewest}_labels":
               gap(final, f"{method} ({large})", method, "accuracy", label_count=fewest)}
    text = (f"with {fewest} labels, {large} − the small model's accuracy from scratch < {max_gap_scratch:g} points, "
            f"and fine-tuned from {method} > {min_gap_finetuned:g} points (95% CIs)")
    conditions = [dict(effect=f"large_minus_small_scratch_{fewest}_labels", op="<", value=max_gap_scratch),
                  dict(effect=f"large_minus_small_{method}_{fewest}_labels", op=">", value=min_gap_finetuned)]
    return finding("ND-2", text, conditions, effects, profile, figure, primary=conditions[1]["effect"])


def nd3_finding(easy: pd.DataFrame, hard: pd.DataFrame, method: str, min_gain: float, max_factor: float,
                profile: str, figure: str | None = None) -> dict:
    """ND-3: the mean over label counts of U on the hard world minus U on the easy one, per seed, > min_gain."""
    utilities = {name: seed_means(utility_rows(final, [method], max_factor)) for name, final in
                 (("hard", hard), ("easy", easy))}
    effects = {"utility_hard_minus_easy": mean_effect(paired_differences(utilities["hard"], utilities["easy"]).values(),
                                                      unit="utility")}
    text = (f"{method}'s utility averaged over the label counts, on the hard world minus on the easy one > "
            f"{min_gain:g} (95% CI)")
    return finding("ND-3", text, [dict(effect="utility_hard_minus_easy", op=">", value=min_gain)], effects, profile,
                   figure)


def rank_correlations(final: pd.DataFrame, arms: list[str], a: dict, b: dict) -> dict:
    """seed -> Spearman's rho between the arms' values in the rows matching `a` and in those matching `b`."""
    left, right = ([seed_values(final, arm, **where) for arm in arms] for where in (a, b))
    out = {}
    for seed in sorted(final.seed.unique()):
        x, y = [v.get(seed) for v in left], [v.get(seed) for v in right]
        if None not in x + y:
            out[seed] = float(stats.spearmanr(x, y).statistic)
    return out


def nd4_finding(final: pd.DataFrame, methods: list[str], max_gap: float, max_rank_correlation: float,
                profile: str, figure: str | None = None) -> dict:
    """ND-4: averaged over the methods, the linear probe (most stages frozen) − fine-tuning all < max_gap, and
    Spearman's rho between the methods' linear-probe and fine-tuned accuracies < max_rank_correlation."""
    probe, tuned = final.freeze.max(), final.freeze.min()
    gaps = {}
    for method in methods:
        for seed, value in paired_differences(seed_values(final, method, freeze=probe),
                                              seed_values(final, method, freeze=tuned)).items():
            gaps.setdefault(seed, []).append(value)
    effects = {"linear_probe_minus_finetune": mean_effect([np.mean(v) for v in gaps.values()],
                                                          unit=METRIC_UNITS["accuracy"]),
               "rank_correlation_probe_vs_finetune":
               mean_effect(rank_correlations(final, methods, dict(freeze=probe), dict(freeze=tuned)).values(),
                           unit=RANK_UNIT)}
    text = (f"averaged over the methods, linear probe (freeze {probe}) − fine-tuning (freeze {tuned}) accuracy < "
            f"{max_gap:g} points, and Spearman's rho between the methods' probe and fine-tuned accuracies < "
            f"{max_rank_correlation:g} (95% CIs)")
    conditions = [dict(effect="linear_probe_minus_finetune", op="<", value=max_gap),
                  dict(effect="rank_correlation_probe_vs_finetune", op="<", value=max_rank_correlation)]
    return finding("ND-4", text, conditions, effects, profile, figure)


def task_gains(finals: dict[str, pd.DataFrame], methods: list[str]) -> pd.DataFrame:
    """Per task, method and seed: the fine-tuned score minus scratch's (columns task, arm, seed, value)."""
    rows = [dict(task=task, arm=method, seed=seed, value=value) for task, final in finals.items()
            for method in methods for seed, value in seed_gaps(final, method, "scratch").items()]
    return pd.DataFrame(rows)


def nd5_finding(finals: dict[str, pd.DataFrame], methods: list[str], max_rank_correlation: float, profile: str,
                figure: str | None = None) -> dict:
    """ND-5: the methods' gains over scratch rank differently between tasks: Spearman's rho between two tasks'
    gains, averaged over the pairs of tasks, per seed, < max_rank_correlation."""
    gains = task_gains(finals, methods)
    tasks = list(finals)
    pairs = [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]
    by_pair = [rank_correlations(gains, methods, dict(task=a), dict(task=b)) for a, b in pairs]
    seeds = sorted(set.intersection(*(set(p) for p in by_pair)))
    effects = {"rank_correlation_between_tasks": mean_effect([np.mean([p[s] for p in by_pair]) for s in seeds],
                                                             unit=RANK_UNIT)}
    text = (f"Spearman's rho between the methods' gains over scratch on two tasks ({', '.join(tasks)}), averaged "
            f"over the pairs of tasks, < {max_rank_correlation:g} (95% CI)")
    return finding("ND-5", text, [dict(effect="rank_correlation_between_tasks", op="<", value=max_rank_correlation)],
                   effects, profile, figure)


def bl1_finding(invariance: pd.DataFrame, max_gap: float, profile: str, figure: str | None = None,
                autoencoder: str = "autoencoder") -> dict:
    """BL-1: the autoencoder's feature invariance minus the least invariant other method's, per seed (each seed
    a draw of the augmentations), < max_gap. `invariance` has columns method, seed, value."""
    wide = invariance.pivot_table(index="seed", columns="method", values="value")
    others = wide.drop(columns=[autoencoder])
    effects = {"autoencoder_minus_least_invariant_other":
               mean_effect((wide[autoencoder] - others.min(axis=1)).values, unit="invariance")}
    text = (f"feature invariance of the autoencoder − that of the least invariant of {', '.join(others.columns)} < "
            f"{max_gap:g} (95% CI)")
    return finding("BL-1", text, [dict(effect="autoencoder_minus_least_invariant_other", op="<", value=max_gap)],
                   effects, profile, figure)


def round_arm(k: int) -> str:
    return "teacher (round 0)" if k == 0 else f"round {k}"


def bl2_runs(world_dir: str, aug: str, label_fraction: float, init: str, rounds: int, seeds: list[int],
             epochs_1x: float, batch_size: int) -> list[dict]:
    """BL-2: the supervised teacher, then `rounds` noisy students, each the next one's teacher."""
    if rounds < 1:
        raise ValueError(f"bl2_rounds must be >= 1; got {rounds}")
    base = iteration_matched_runs(world_dir, "classify", [label_fraction], epochs_1x, batch_size, init=[init],
                                  aug=[aug], seed=seeds)
    return ([dict(run, arm=round_arm(0)) for run in base]
            + [dict(run, arm=round_arm(k), method="noisy_student", pseudo_rounds=k)
               for k in range(1, rounds + 1) for run in base])


def bl2_finding(final: pd.DataFrame, min_gain: float, profile: str, figure: str | None = None) -> dict:
    """BL-2: the last round's student beats the teacher and the first round's student, each by > min_gain."""
    last = max(int(a.split()[-1]) for a in final.arm.unique() if a.startswith("round"))
    effects = {f"round_{last}_minus_teacher": gap(final, round_arm(last), round_arm(0), "accuracy"),
               f"round_{last}_minus_round_1": gap(final, round_arm(last), round_arm(1), "accuracy")}
    text = (f"accuracy of the round-{last} student − the teacher's, and − the round-1 student's, each > {min_gain:g} "
            f"points (95% CIs)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding("BL-2", text, conditions, effects, profile, figure)


def utility_final(results: pd.DataFrame, world_dir: str) -> pd.DataFrame:
    """Final validation accuracy per run, with its label count."""
    return final_metric(with_label_counts(results, world_dir), "accuracy")


def invariance_table(world_dir: str, checkpoints: dict[str, str | None], arch: str, width: int, norm: str, level: str,
                     seeds: list[int], device: str) -> pd.DataFrame:
    """BL-1's invariance of each checkpoint's features (None: a randomly initialised network) on the downstream
    validation images, under views of augmentation `level`; one row per (method, seed), each seed a draw of the
    views: columns method, seed, value."""
    from .augment import KorniaAugment
    from .data import load_task_data
    from .selfsup import feature_invariance
    from .train import new_model, resolve_device

    device = resolve_device(device)
    data = load_task_data(world_file(world_dir, "classify", "val"), "classify", device)
    rows = []
    for name, path in checkpoints.items():
        model = new_model(data, arch, width, norm, seed=0, init="scratch" if path is None else name,
                          checkpoint=path).to(device)
        for seed in seeds:
            views = KorniaAugment(level, data.images.shape[1], seed=seed).to(device)
            rows.append(dict(method=name, seed=seed, value=feature_invariance(model, data.images, views, seed)))
    return pd.DataFrame(rows)
