"""He, Girshick & Dollár 2019, "Rethinking ImageNet Pre-training" (arXiv 1811.08883): HE-1 to HE-4 on the
study's detector. What each finding claims, the paper's numbers, the runs that test it and its criterion; the
criterion's values are pre-registered in config/study.yaml."""
from __future__ import annotations

import pandas as pd

from .runs import iteration_matched_runs
from .verdicts import final_metric, finding, gap, require_member

# What each finding claims and what the paper reports.
CLAIMS = {
    "HE-1": dict(
        claim="From random init (with GN), training catches up with pre-trained fine-tuning given a longer "
              "schedule; pre-training mainly speeds up convergence.",
        paper="R50 box AP at 2x/3x/4x/5x/6x: scratch 36.8/39.5/40.6/40.7/41.3, pretrained 40.3/40.8/40.9/40.9/41.1 "
              "(He et al. 2019, Fig. 1 / Table 1)."),
    "HE-2": dict(
        claim="At convergence pre-training gives no better regularization and no better localization: scratch ≥ "
              "pre-trained on the strict metric (AP75).",
        paper="R50 at 6x, box AP/AP50/AP75: scratch 41.3/61.8/45.6, pretrained 41.1/61.7/44.6 (He et al. 2019, Table 2)."),
    "HE-3": dict(
        claim="With less data scratch training still catches up, down to a breakdown regime where it overfits: "
              "its training loss catches up, its validation does not.",
        paper="box AP pretrained vs scratch, each at its best schedule: 35k images 36.3 vs 36.3, 10k 26.0 vs 25.9, "
              "3.5k 16.0 vs 9.3, 1k 9.9 vs 3.5 (He et al. 2019, Figs. 5-6)."),
    "HE-4": dict(
        claim="Normalization decides whether training from scratch works: BatchNorm with small per-device batches "
              "trains poorly from scratch, GroupNorm (or SyncBN) works.",
        paper="Mask R-CNN from scratch needs GN or SyncBN (BN at 2 images/GPU fails); VGG without normalization: "
              "scratch 35.2 AP at 11x vs pretrained 35.6 at 9x (He et al. 2019, Sec. 4-5)."),
}


# The papers' numbers as tables, set next to ours in the reports (He et al. 2019, R50 Mask R-CNN, box AP).
PAPER_TABLES = {
    "HE-1": {"scratch": {2: 36.8, 3: 39.5, 4: 40.6, 5: 40.7, 6: 41.3},
             "pretrained": {2: 40.3, 3: 40.8, 4: 40.9, 5: 40.9, 6: 41.1}},
    "HE-2": {"scratch": (41.3, 61.8, 45.6), "pretrained": (41.1, 61.7, 44.6)},  # AP, AP50, AP75
    "HE-3": {"scratch": {"35k (30%)": 36.3, "10k (8.5%)": 25.9, "3.5k (3%)": 9.3, "1k (0.85%)": 3.5},
             "pretrained": {"35k (30%)": 36.3, "10k (8.5%)": 26.0, "3.5k (3%)": 16.0, "1k (0.85%)": 9.9}},
}


def he1_finding(results: pd.DataFrame, metric: str, min_gap_shortest: float, max_gap_longest: float,
                profile: str, figure: str | None = None) -> dict:
    """HE-1: pre-trained minus scratch, at the shortest schedule (> min_gap_shortest) and at the longest
    (|gap| <= max_gap_longest), on the validation scenes."""
    final = final_metric(results, metric)
    shortest, longest = final.schedule.min(), final.schedule.max()
    effects = {f"gap_{s:g}x": gap(final, "pretrained", "scratch", metric, schedule=s) for s in (shortest, longest)}
    text = (f"pretrained − scratch {metric} at {shortest:g}x > {min_gap_shortest:g} points and "
            f"|pretrained − scratch| at {longest:g}x ≤ {max_gap_longest:g} points (95% CIs)")
    conditions = [dict(effect=f"gap_{shortest:g}x", op=">", value=min_gap_shortest),
                  dict(effect=f"gap_{longest:g}x", op="abs<=", value=max_gap_longest)]
    return finding(CLAIMS, "HE-1", text, conditions, effects, profile, figure, primary=f"gap_{longest:g}x")


def held_out_split(results: pd.DataFrame, metric: str) -> str:
    """'test' where the runs scored `metric` on the held-out scenes (runs.sweep's held_out), else 'val'."""
    return "test" if ((results.split == "test") & (results.metric == metric)).any() else "val"


def he2_finding(results: pd.DataFrame, min_gap_ap75: float, profile: str, figure: str | None = None) -> dict:
    """HE-2: at the longest schedule scratch is no worse than pre-trained on the strict metric (AP75), scored on
    the held-out scenes where the runs have them (four times the validation set: less evaluation noise)."""
    longest = results.schedule.max()
    split = held_out_split(results, "AP75")
    effects = {"scratch_minus_pretrained_AP75": gap(final_metric(results, "AP75", split), "scratch", "pretrained",
                                                    "AP75", schedule=longest)}
    scenes = "the held-out scenes" if split == "test" else "the validation scenes"
    text = f"scratch − pretrained AP75 at {longest:g}x on {scenes} > {min_gap_ap75:g} points (95% CI)"
    conditions = [dict(effect="scratch_minus_pretrained_AP75", op=">", value=min_gap_ap75)]
    return finding(CLAIMS, "HE-2", text, conditions, effects, profile, figure)


def best_schedule(final: pd.DataFrame, by: str = "label_fraction") -> pd.DataFrame:
    """For each value of `by` and each arm, the rows of the schedule with the best mean over seeds
    (He et al. report each model at its best schedule; chosen on the validation set, for both arms alike)."""
    means = final.groupby([by, "arm", "schedule"]).value.mean().reset_index()
    best = means.loc[means.groupby([by, "arm"]).value.idxmax(), [by, "arm", "schedule"]]
    return final.merge(best, on=[by, "arm", "schedule"])


def he3_finding(results: pd.DataFrame, catchup_fraction: float, max_gap_catchup: float, min_gap_smallest: float,
                profile: str, figure: str | None = None) -> dict:
    """HE-3: with each arm at its best schedule, scratch catches up at `catchup_fraction` of the data
    (|gap| <= max_gap_catchup) but not at the smallest (pretrained − scratch > min_gap_smallest)."""
    best = best_schedule(final_metric(results, "AP"))
    fractions = sorted(float(f) for f in best.label_fraction.unique())
    require_member("he3_catchup_fraction", catchup_fraction, fractions, "label_fractions")
    name = lambda fraction: f"gap_{fraction * 100:g}%data"
    effects = {name(f): gap(best, "pretrained", "scratch", "AP", label_fraction=f)
               for f in (catchup_fraction, fractions[0])}
    text = (f"with each arm at its best schedule, |pretrained − scratch| AP at {catchup_fraction:.0%} of the data ≤ "
            f"{max_gap_catchup:g} points, and pretrained − scratch at {fractions[0]:.0%} > {min_gap_smallest:g} "
            f"points (95% CIs)")
    conditions = [dict(effect=name(catchup_fraction), op="abs<=", value=max_gap_catchup),
                  dict(effect=name(fractions[0]), op=">", value=min_gap_smallest)]
    return finding(CLAIMS, "HE-3", text, conditions, effects, profile, figure, primary=name(fractions[0]))


def he4_finding(results: pd.DataFrame, min_gap: float, profile: str, figure: str | None = None) -> dict:
    """HE-4: from scratch, GN beats BatchNorm with a small per-device batch by more than `min_gap` AP points."""
    final = final_metric(results, "AP")
    effects = {"gn_minus_bn": gap(final, "gn", "bn", "AP")}
    text = f"from scratch, GN − small-batch BN AP > {min_gap:g} points (95% CI)"
    return finding(CLAIMS, "HE-4", text, [dict(effect="gn_minus_bn", op=">", value=min_gap)], effects, profile, figure)


def fixed_iteration_runs(world_dir: str, task: str, label_fractions: list[float], schedules: list[float],
                         seeds: list[int], inits: list[str], epochs_1x: float, batch_size: int) -> list[dict]:
    """HE-3's runs: every data size keeps the full set's 1x schedule in iterations, not epochs (He et al.
    train on 1k-35k images with COCO's iteration counts), so a smaller set is seen for more epochs."""
    return iteration_matched_runs(world_dir, task, label_fractions, epochs_1x, batch_size, init=inits,
                                  schedule=schedules, seed=seeds)


NORM_ARMS = {  # HE-4's arms: name -> model settings; bn_batch is filled in from the notebook's parameter
    "gn": dict(norm="gn"),
    "bn": dict(norm="bn"),          # statistics over `bn_batch` images, as per GPU without SyncBN
    "syncbn": dict(norm="bn", bn_batch=0),  # statistics over the whole batch, as SyncBN
    "none": dict(norm="none"),
}


def norm_runs(norms: list[str], seeds: list[int], bn_batch: int) -> list[dict]:
    """HE-4's runs: one arm per normalisation of NORM_ARMS, every seed, from scratch."""
    unknown = [n for n in norms if n not in NORM_ARMS]
    if unknown:
        raise ValueError(f"norms {unknown} unknown; allowed: {', '.join(NORM_ARMS)}")
    arms = {name: {**NORM_ARMS[name]} for name in norms}
    for settings in arms.values():
        if settings["norm"] == "bn":
            settings.setdefault("bn_batch", bn_batch)
    return [dict(arm=name, **arms[name], seed=seed) for name in norms for seed in seeds]
