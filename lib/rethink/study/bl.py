"""The overview article "(Self-)Supervised Pre-training? Self-training? Which one to start with?": BL-1 (the
pretext zoo and the invariance of its features) and BL-2 (iterated self-training, Xie et al.'s loop). The
criteria's values are pre-registered in config/protocol.yaml."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .effects import because, gap, mean_effect, not_replicated, selector, with_arms
from .gates import PRETRAINING
from .records import seeded
from .runs import iteration_matched_runs, world_file
from .verdicts import finding

# What each finding claims and what the overview reports.
CLAIMS = {
    "BL-1": dict(
        claim="Handcrafted, contrastive and clustering pretext methods on one downstream evaluation; autoencoder "
              "features are the least invariant to augmentation.",
        paper="Taxonomy of the overview article: autoencoders are \"not invariant enough\"; contrastive and "
              "clustering methods learn invariance to the augmentations they are trained with.",
        paper_effect="autoencoder − least invariant other method: negative (no number)"),
    "BL-2": dict(
        claim="Iterated self-training: teacher → confident pseudo-labels → noisy student → the student as the next "
              "teacher improves over the rounds.",
        paper="The noisy-student loop, repeated with the student as the next teacher (Xie et al. 2020; the overview "
              "article).",
        paper_effect="the students − the teacher: +1.9 top-1 points on ImageNet after the first round, about +1 more "
                     "after the later rounds (87.4% to 88.4%)"),
}


def bl1_finding(invariance: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None,
                autoencoder: str = "autoencoder", *, replicated: bool) -> dict:
    """BL-1: the autoencoder's feature invariance minus the least invariant other method's, per seed
    (invariance_gap). `invariance` has columns method, seed, value. It decides only if every seed had its own
    pre-training (`replicated`): otherwise a seed is a draw of the augmentations of one checkpoint per method."""
    wide = invariance.pivot_table(index="seed", columns="method", values="value")
    others = wide.drop(columns=[autoencoder])
    # No training run: what must have worked is each method's pre-training (its checkpoint's gate).
    arms = [selector(method, experiment=PRETRAINING) for method in wide.columns]
    reason = None if replicated else not_replicated("each method has one pre-training checkpoint: the seeds are draws "
                                                    "of the views of one replicate, not independent pre-trainings")
    effect = with_arms(mean_effect((wide[autoencoder] - others.min(axis=1)).to_dict(), unit="invariance"), arms)
    labels = {"invariance_gap": f"feature invariance of the autoencoder − that of the least invariant of "
                                f"{', '.join(others.columns)}"}
    return finding(CLAIMS, "BL-1", criterion, {"invariance_gap": because(effect, reason)}, labels, profile, figure)


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


def bl2_finding(final: pd.DataFrame, criterion: dict, profile: str, figure: str | None = None) -> dict:
    """BL-2: the last round's student − the teacher (last_minus_teacher) and − the first round's student
    (last_minus_first)."""
    last = max(int(a.split()[-1]) for a in final.arm.unique() if a.startswith("round"))
    effects = {"last_minus_teacher": gap(final, round_arm(last), round_arm(0), "accuracy"),
               "last_minus_first": gap(final, round_arm(last), round_arm(1), "accuracy")}
    labels = {"last_minus_teacher": f"accuracy of the round-{last} student − the teacher's",
              "last_minus_first": f"accuracy of the round-{last} student − the round-1 student's"}
    return finding(CLAIMS, "BL-2", criterion, effects, labels, profile, figure)


def invariance_table(world_dir: str, checkpoints: dict[str, str | None], arch: str, width: int, norm: str, level: str,
                     seeds: list[int], device: str) -> pd.DataFrame:
    """BL-1's invariance of each checkpoint's features (None: a randomly initialised network) on the downstream
    validation images, under views of augmentation `level`; one row per (method, seed), each seed a draw of the
    views and, for a per-seed checkpoint, the seed's own pre-training: columns method, seed, value, checkpoint."""
    from ..core.augment.kornia import KorniaAugment
    from ..core.data.tasks import load_task_data
    from ..core.training.probes import feature_invariance
    from ..core.training.checkpoints import new_model
    from ..core.training.hardware import resolve_device

    device = resolve_device(device)
    data = load_task_data(world_file(world_dir, "classify", "val"), "classify", device)
    rows = []
    for name, path in checkpoints.items():
        for seed in seeds:  # a per-seed checkpoint (a `{seed}` template) is the seed's own pre-training
            file = seeded(path, seed)
            model = new_model(data, arch, width, norm, seed=0, init="scratch" if file is None else name,
                              checkpoint=file).to(device)
            views = KorniaAugment(level, data.images.shape[1], seed=seed).to(device)
            rows.append(dict(method=name, seed=seed, value=feature_invariance(model, data.images, views, seed),
                             **({} if file is None else {"checkpoint": Path(file).stem})))
    return pd.DataFrame(rows)
