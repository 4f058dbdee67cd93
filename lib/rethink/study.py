"""The study's experiments: arms of training runs, cached per run, turned into tidy results and
verdicts. Notebooks call these; they hold no training logic themselves."""
from __future__ import annotations

import hashlib
import itertools
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from .data import check_fraction, load_task_data
from .augment import LEVELS
from .findings import Effect, judge, mean_effect, paired_differences, paired_effect
from .methods import ALGORITHMS, SelfTraining, check_method
from .pseudo import pseudo_label_quality
from .report import finding_name
from .train import Diverged, TrainConfig, check_task_aug, new_model, resolve_device
from .world import load_world

LIB = Path(__file__).parent

# What each finding claims and what the paper reports (../shared/STUDY.md). Criteria values are
# not here: they are pre-registered in config/study.yaml.
FINDINGS = {
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
    # Zoph et al. 2020 (COCO, RetinaNet / EfficientNet-B7), as ../shared/STUDY.md summarises them.
    "ZO-1": dict(
        claim="The stronger the augmentation, the less pre-training helps, until it hurts.",
        paper="ImageNet pre-training helps with flip+crop (Augment-S1) and hurts with RandAugment + large scale "
              "jitter (Augment-S4) on 100% of COCO, by about −1 AP (Zoph et al. 2020, Table 2)."),
    "ZO-2": dict(
        claim="The more labelled data, the less pre-training helps.",
        paper="ImageNet pre-training helps with 20% of the COCO labels and hurts with 100% (Zoph et al. 2020, Table 3)."),
    "ZO-3": dict(
        claim="Self-training helps in every regime, including where pre-training hurts, and stacks with pre-training.",
        paper="+1.3 to +3.4 AP from self-training at every data size and augmentation; at 20% of the labels +3.4 AP on "
              "random init vs +2.6 on ImageNet init (Zoph et al. 2020, Tables 4-5)."),
    "ZO-4": dict(
        claim="Self-supervised pre-training (SimCLR) behaves like supervised pre-training: it hurts where that hurts, "
              "and self-training still helps on top of it.",
        paper="SimCLR init hurts at Augment-S4 with 100% of COCO, and self-training on top of it still helps "
              "(Zoph et al. 2020, Table 6)."),
    "ZO-5": dict(
        claim="Joint training (supervised and pseudo-label loss in one run) helps more than using the pseudo-labels "
              "one after the other, and the pseudo-label loss normalisation keeps it stable.",
        paper="Joint training and self-training stack; the loss normalisation matters most with strong augmentation "
              "(Zoph et al. 2020, Sec. 5 and Appendix)."),
    # Newell & Deng 2020 and the overview article, as ../shared/STUDY.md summarises them.
    "ND-1": dict(
        claim="The utility U(n) of self-supervised pre-training (how many more labels scratch training needs) falls "
              "toward zero as labels grow, often before accuracy plateaus.",
        paper="Utility falls toward 0 with ample labels for VAE, Rotation, CMC and AMDIM: \"better regularization, not "
              "better optimization\" (Newell & Deng 2020, Fig. 3)."),
    "ND-2": dict(
        claim="Larger models benefit more: from scratch the large model is worse than the small one with few labels; "
              "pre-trained it is better.",
        paper="ResNet50 against ResNet9 (Newell & Deng 2020, Sec. 4.2)."),
    "ND-3": dict(
        claim="Harder, more varied data gets more utility from pre-training.",
        paper="Utility rises with the variation factors texture, color, viewpoint and lighting (Newell & Deng 2020, "
              "Sec. 4.3)."),
    "ND-4": dict(
        claim="Freezing more of the pre-trained network hurts, and linear evaluation does not predict the ranking "
              "after fine-tuning.",
        paper="Fine-tuning all layers > freezing more layers > linear probe; linear-probe rankings of the methods "
              "differ from fine-tuned ones (Newell & Deng 2020, Sec. 4.4)."),
    "ND-5": dict(
        claim="Self-supervised methods rank differently on different tasks.",
        paper="The best of VAE, Rotation, CMC and AMDIM changes between classification, pose estimation, "
              "segmentation and depth (Newell & Deng 2020, Sec. 4.5)."),
    "BL-1": dict(
        claim="Handcrafted, contrastive and clustering pretext methods on one downstream evaluation; autoencoder "
              "features are the least invariant to augmentation.",
        paper="Taxonomy of the overview article: autoencoders are \"not invariant enough\"; contrastive and "
              "clustering methods learn invariance to the augmentations they are trained with."),
    "BL-2": dict(
        claim="Iterated self-training: teacher → confident pseudo-labels → noisy student → the student as the next "
              "teacher improves over the rounds.",
        paper="The noisy-student loop, repeated with the student as the next teacher (Xie et al. 2020; the overview "
              "article)."),
}

# The papers' numbers as tables, set next to ours in the reports (He et al. 2019, R50 Mask R-CNN, box AP).
PAPER_TABLES = {
    "HE-1": {"scratch": {2: 36.8, 3: 39.5, 4: 40.6, 5: 40.7, 6: 41.3},
             "pretrained": {2: 40.3, 3: 40.8, 4: 40.9, 5: 40.9, 6: 41.1}},
    "HE-2": {"scratch": (41.3, 61.8, 45.6), "pretrained": (41.1, 61.7, 44.6)},  # AP, AP50, AP75
    "HE-3": {"scratch": {"35k (30%)": 36.3, "10k (8.5%)": 25.9, "3.5k (3%)": 9.3, "1k (0.85%)": 3.5},
             "pretrained": {"35k (30%)": 36.3, "10k (8.5%)": 26.0, "3.5k (3%)": 16.0, "1k (0.85%)": 9.9}},
}

DIVERGED_SCORES = {"classify": ("accuracy",), "segment": ("miou",), "detect": ("AP", "AP50", "AP75"),
                   "pose": ("pose_accuracy",)}
TASK_METRIC = {"classify": "accuracy", "segment": "miou", "detect": "AP", "pose": "pose_accuracy"}
METRIC_UNITS = {"accuracy": "accuracy points", "miou": "mIoU points", "AP": "AP points", "AP50": "AP50 points",
                "AP75": "AP75 points", "pose_accuracy": "pose accuracy points"}


# The modules whose code decides a training run's numbers. A cached run is reused only by the code
# that made it; plotting, reporting and verdict code are left out so that changing them never retrains.
TRAINING_MODULES = ("augment", "data", "detection", "methods", "metrics", "models", "pretrain", "pseudo", "selfsup",
                    "train", "world")


def code_hash() -> str:
    h = hashlib.sha256()
    for name in TRAINING_MODULES:
        h.update((LIB / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


MODEL_KEYS = ("arch", "width", "norm", "bn_batch")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "progress")
FLOAT_KEYS = tuple(f.name for f in fields(TrainConfig) if f.type == "float")
# A run's self-training settings, as `pseudo_<field of SelfTraining>`.
PSEUDO_KEYS = tuple(f"pseudo_{f.name}" for f in fields(SelfTraining))
RUN_KEYS = ("init", "label_fraction", "method") + MODEL_KEYS + TRAIN_KEYS + PSEUDO_KEYS


def run_arm(*, train_file: str, val_file: str, task: str, init: str, checkpoint: str | None, runs_dir: str,
            model: dict, label_fraction: float, train: TrainConfig, desc: str, method: str = "supervised",
            selftrain: SelfTraining | None = None, unlabeled_file: str | None = None) -> tuple[str, list[dict]]:
    """One training run (cached on disk by everything that determines it, its final weights beside it)
    -> (its cache digest, tidy history rows). `model` holds build_model's arch, width, norm and bn_batch.
    A self-training `method` first runs (or finds) its teacher: the supervised run of the same settings."""
    device = resolve_device(train.device)  # the key holds the device used, not "auto": CPU and CUDA differ
    selftrain = selftrain or SelfTraining()
    model = {**model, "bn_batch": model.get("bn_batch", 0) if model["norm"] == "bn" else 0}  # only BN reads it
    key = dict(train_file=file_hash(train_file), val_file=file_hash(val_file), task=task, init=init,
               checkpoint=file_hash(checkpoint) if init != "scratch" else None, **model,
               label_fraction=label_fraction,
               train={**{k: v for k, v in asdict(train).items() if k != "progress"}, "device": device},
               code=code_hash())
    teacher = None
    if check_method(method) != "supervised":
        if unlabeled_file is None:
            raise ValueError(f"method {method!r} needs an unlabeled pool (unlabeled_file)")
        # Round 1's teacher is the supervised run; round k's is the student of round k - 1 (Xie et al.'s loop).
        previous = (dict(method=method, selftrain=replace(selftrain, rounds=selftrain.rounds - 1),
                         unlabeled_file=unlabeled_file) if selftrain.rounds > 1 else {})
        teacher, _ = run_arm(train_file=train_file, val_file=val_file, task=task, init=init, checkpoint=checkpoint,
                             runs_dir=runs_dir, model=model, label_fraction=label_fraction, train=train,
                             desc=f"{desc} (teacher)", **previous)
        key.update(method=method, teacher=teacher, unlabeled_file=file_hash(unlabeled_file),
                   selftrain=asdict(selftrain))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    cached, weights = Path(runs_dir) / f"{digest}.json", Path(runs_dir) / f"{digest}.pt"
    if not cached.is_file():
        train_data = load_task_data(train_file, task, device, label_fraction)
        val_data = load_task_data(val_file, task, device)
        net = new_model(train_data, seed=train.seed, init=init, checkpoint=checkpoint, **model)
        extra, quality = {}, []
        if teacher:
            teacher_net = new_model(train_data, seed=train.seed, **model)
            teacher_net.load_state_dict(torch.load(Path(runs_dir) / f"{teacher}.pt", map_location="cpu",
                                                   weights_only=True))
            pool = load_world(unlabeled_file)
            extra = dict(teacher=teacher_net.to(device), pool=torch.from_numpy(pool["images"]).to(device),
                         selftrain=selftrain)
        started = time.perf_counter()
        try:
            history, info = ALGORITHMS[method](net, train_data, val_data, train, desc=desc, **extra)
            if teacher and task == "classify":
                quality = [dict(step=history[-1]["step"], epoch=history[-1]["epoch"], split="pseudo", metric=m, value=v)
                           for m, v in pseudo_label_quality(info, pool["labels"], pool["classes"],
                                                            train_data.classes).items()]
        except Diverged as stop:
            # A run whose loss blew up is a result, not a crash (HE-4: training without normalization can
            # diverge): its model is unusable, so it scores 0 from the step where it diverged.
            history = stop.history + [dict(step=stop.step, epoch=stop.epoch, split="val", metric=m, value=0.0)
                                      for m in DIVERGED_SCORES[task]]
            history.append(dict(step=stop.step, epoch=stop.epoch, split="train", metric="diverged", value=1.0))
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), weights)  # a later student's teacher; written before the record that names it
        cached.write_text(json.dumps({"key": key, "seconds": time.perf_counter() - started,
                                      "history": history + quality}))
    record = json.loads(cached.read_text())
    # The run's training time, measured when it ran, travels with its rows: a rerun that reads the
    # cache back must still report what the run cost.
    last = record["history"][-1]
    return digest, record["history"] + [dict(step=last["step"], epoch=last["epoch"], split="train",
                                              metric="seconds", value=record["seconds"])]


def world_file(world_dir: str, task: str, split: str, kind: str | None = None) -> Path:
    """The downstream world file a task trains (split 'train') or is scored on ('val'); split 'unlabeled'
    is self-training's pool (images of every class, upstream and downstream, labels unused). `kind` picks
    the files ('classify': one object per image, which also segments; 'scenes'); default: the task's own."""
    kind = kind or ("classify" if task in ("classify", "pose") else "scenes")
    if kind not in ("classify", "scenes"):
        raise ValueError(f"world file kind must be 'classify' or 'scenes'; got {kind!r}")
    if split == "unlabeled":
        return Path(world_dir) / f"unlabeled_{kind}.npz"
    return Path(world_dir) / f"downstream_{kind}_{split}.npz"


def grid(**axes) -> list[dict]:
    """Every combination of the axes' values as one run each: grid(init=[...], schedule=[...], seed=[...])."""
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def sweep(runs: list[dict], *, world_dir: str, upstream_checkpoint: str, runs_dir: str, task: str,
          arm: str = "init", checkpoints: dict[str, str] | None = None, files: str | None = None,
          **base) -> pd.DataFrame:
    """Train every run: the `base` settings (model, TrainConfig, init, label_fraction, method, pseudo_*)
    overridden by the run's own keys. Init 'pretrained' starts from `upstream_checkpoint`, any other
    init but 'scratch' from its entry in `checkpoints`. Tidy rows: run_id, arm (the run's "arm" key if
    it has one, else the value of its setting named by `arm`), the run's keys, step, epoch, split,
    metric, value. `files` picks the world files (study.world_file's kind). Finished runs come back from
    `runs_dir`."""
    checkpoints = {"pretrained": upstream_checkpoint, **(checkpoints or {})}
    specs = [{"init": "scratch", "label_fraction": 1.0, "method": "supervised", **base, **run} for run in runs]
    labels = [spec.pop("arm", None) or spec[arm] for spec in specs]
    for spec in specs:
        unknown = sorted(set(spec) - set(RUN_KEYS))
        if unknown:
            raise ValueError(f"unknown run settings {unknown}; allowed: {', '.join(RUN_KEYS)}")
        if spec["init"] != "scratch" and spec["init"] not in checkpoints:
            raise ValueError(f"init {spec['init']!r} unknown; allowed: scratch, {', '.join(checkpoints)}")
        check_method(spec["method"])
    # Build every config before the first run, so that a bad value fails before any training.
    # YAML's 4 and 4.0 are one schedule: cast so that they make one cache key.
    configs = [TrainConfig(progress=False, **{k: float(spec[k]) if k in FLOAT_KEYS else spec[k]
                                              for k in TRAIN_KEYS if k in spec}) for spec in specs]
    selftrains = [SelfTraining(**{k.removeprefix("pseudo_"): spec[k] for k in PSEUDO_KEYS if k in spec})
                  for spec in specs]
    for spec, cfg in zip(specs, configs):
        check_fraction(spec["label_fraction"])
        check_task_aug(task, cfg.aug)
    rows = []
    # One bar over the runs; per-step bars would flood the report.
    # One line a minute at most: in a rendered report each refresh is a line of its own.
    bar = tqdm(list(zip(runs, specs, configs, selftrains, labels)), desc=f"{task} runs", file=sys.stderr,
               mininterval=60)
    for run, spec, cfg, selftrain, label in bar:
        run_id = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.items())
        _, history = run_arm(train_file=str(world_file(world_dir, task, "train", files)),
                             val_file=str(world_file(world_dir, task, "val", files)), task=task, init=spec["init"],
                             checkpoint=checkpoints.get(spec["init"]), runs_dir=runs_dir,
                             model={k: spec[k] for k in MODEL_KEYS if k in spec},
                             label_fraction=spec["label_fraction"], train=cfg, desc=run_id, method=spec["method"],
                             selftrain=selftrain, unlabeled_file=str(world_file(world_dir, task, "unlabeled", files)))
        rows += [dict(run_id=run_id, **{**run, "arm": label}, **r) for r in history]
    results = pd.DataFrame(rows)
    percent = results["metric"].isin(METRIC_UNITS)  # fractions -> points, the unit the papers report
    results.loc[percent, "value"] *= 100
    return results


def final_metric(results: pd.DataFrame, metric: str, split: str = "val") -> pd.DataFrame:
    """The last evaluation of each run: one row per (arm, schedule, seed)."""
    rows = results[(results.metric == metric) & (results.split == split)]
    return rows.loc[rows.groupby("run_id").step.idxmax()]


def seed_values(final: pd.DataFrame, arm: str, **where) -> dict[int, float]:
    """seed -> value of one arm in the rows of `final` that match `where` (e.g. schedule=6.0)."""
    rows = final[final.arm == arm]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return dict(zip(rows.seed, rows.value))


def gap(final: pd.DataFrame, a: str, b: str, metric: str, **where) -> Effect:
    """Arm a minus arm b, paired by seed, over the rows matching `where`."""
    return paired_effect(seed_values(final, a, **where), seed_values(final, b, **where), unit=METRIC_UNITS[metric])


def finding(finding_id: str, text: str, conditions: list[dict], effects: dict[str, Effect], profile: str,
            figure: str | None = None, panel: str | None = None, primary: str | None = None) -> dict:
    """A findings.json entry for a finding of FINDINGS, judged against its pre-registered conditions."""
    criterion = dict(text=text, conditions=conditions, primary=primary or conditions[0]["effect"])
    entry = judge(finding_id, FINDINGS[finding_id]["claim"], criterion, effects, FINDINGS[finding_id]["paper"], profile)
    return {**entry, "figure": figure, **({"panel": panel} if panel else {})}


def he1_finding(results: pd.DataFrame, metric: str, min_gap_shortest: float, max_gap_longest: float,
                profile: str, figure: str | None = None, panel: str | None = None) -> dict:
    """HE-1: pre-trained minus scratch, at the shortest schedule (> min_gap_shortest) and at the longest
    (|gap| <= max_gap_longest)."""
    final = final_metric(results, metric)
    shortest, longest = final.schedule.min(), final.schedule.max()
    effects = {f"gap_{s:g}x": gap(final, "pretrained", "scratch", metric, schedule=s) for s in (shortest, longest)}
    text = (f"pretrained − scratch {metric} at {shortest:g}x > {min_gap_shortest:g} points and "
            f"|pretrained − scratch| at {longest:g}x ≤ {max_gap_longest:g} points (95% CIs)")
    conditions = [dict(effect=f"gap_{shortest:g}x", op=">", value=min_gap_shortest),
                  dict(effect=f"gap_{longest:g}x", op="abs<=", value=max_gap_longest)]
    return finding("HE-1", text, conditions, effects, profile, figure, panel, primary=f"gap_{longest:g}x")


def he2_finding(results: pd.DataFrame, min_gap_ap75: float, profile: str, figure: str | None = None) -> dict:
    """HE-2: at the longest schedule scratch is no worse than pre-trained on the strict metric (AP75)."""
    longest = results.schedule.max()
    effects = {"scratch_minus_pretrained_AP75": gap(final_metric(results, "AP75"), "scratch", "pretrained", "AP75",
                                                    schedule=longest)}
    text = f"scratch − pretrained AP75 at {longest:g}x > {min_gap_ap75:g} points (95% CI)"
    conditions = [dict(effect="scratch_minus_pretrained_AP75", op=">", value=min_gap_ap75)]
    return finding("HE-2", text, conditions, effects, profile, figure)


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
    return finding("HE-3", text, conditions, effects, profile, figure, primary=name(fractions[0]))


def require_member(name: str, value, allowed: list, allowed_name: str) -> None:
    """A criterion that names a cell of the grid must name one that runs: checked before any training."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} must be one of the {allowed_name} {list(allowed)}")


def he4_finding(results: pd.DataFrame, min_gap: float, profile: str, figure: str | None = None) -> dict:
    """HE-4: from scratch, GN beats BatchNorm with a small per-device batch by more than `min_gap` AP points."""
    final = final_metric(results, "AP")
    effects = {"gn_minus_bn": gap(final, "gn", "bn", "AP")}
    text = f"from scratch, GN − small-batch BN AP > {min_gap:g} points (95% CI)"
    return finding("HE-4", text, [dict(effect="gn_minus_bn", op=">", value=min_gap)], effects, profile, figure)


# ---------------------------------------------------------------------------------------------
# Zoph et al. 2020: a grid of augmentation level x label fraction; arms are inits ("scratch",
# "pretrained", "pretrained_longer", "simclr") and their self-trained students ("<init>+ST").

STUDENT = "+ST"


def cell_name(aug: str, fraction: float) -> str:
    return f"{aug}_{fraction * 100:g}%"


def seed_gaps(final: pd.DataFrame, a: str, b: str, **where) -> dict[int, float]:
    """seed -> arm a minus arm b, over the rows matching `where`."""
    return paired_differences(seed_values(final, a, **where), seed_values(final, b, **where))


def cell_gains(final: pd.DataFrame, comparisons: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """The paper's tables in tidy form: per cell (aug, label_fraction), per comparison name -> (arm a,
    arm b), per seed, a − b. Comparisons whose arms did not run in a cell are left out."""
    rows = []
    for (aug, fraction), cell in final.groupby(["aug", "label_fraction"]):
        for name, (a, b) in comparisons.items():
            rows += [dict(aug=aug, label_fraction=fraction, comparison=name, seed=seed, value=value)
                     for seed, value in seed_gaps(cell, a, b).items()]
    return pd.DataFrame(rows)


def zo_runs(world_dir: str, label_fractions: list[float], aug_levels: list[str], seeds: list[int], inits: list[str],
            epochs_1x: float, batch_size: int, students: list[str] = (), student_cells: list[tuple] | None = None,
            extra_students: dict[str, dict] | None = None, extra_cell: tuple | None = None) -> list[dict]:
    """The classification grid: every init at every (aug, label_fraction) cell and seed, each cell trained
    for the full set's `epochs_1x` in iterations. Then a noisy student for each init in `students` (in
    `student_cells`, all cells if None), and in `extra_cell`, on random init, one more student per
    `extra_students` entry (arm name -> run settings, e.g. a sequential one)."""
    teachers = iteration_matched_runs(world_dir, "classify", label_fractions, epochs_1x, batch_size,
                                      init=inits, aug=aug_levels, seed=seeds)
    in_cells = lambda run, cells: cells is None or (run["aug"], run["label_fraction"]) in cells
    runs = teachers + [dict(run, method="noisy_student", arm=run["init"] + STUDENT) for run in teachers
                       if run["init"] in students and in_cells(run, student_cells)]
    runs += [{**run, **settings, "arm": arm} for arm, settings in (extra_students or {}).items() for run in teachers
             if run["init"] == "scratch" and in_cells(run, [extra_cell])]
    return runs


def corner_cells(final: pd.DataFrame) -> tuple[str, str, float, float]:
    """The grid's weakest and strongest augmentation and its smallest and largest label fraction."""
    augs, fractions = sorted(final.aug.unique(), key=LEVELS.index), sorted(final.label_fraction.unique())
    return augs[0], augs[-1], fractions[0], fractions[-1]


def zo1_finding(results: pd.DataFrame, max_drop: float, max_gain_strongest: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-1: with all labels, pre-training's gain shrinks from the weakest to the strongest augmentation
    (gain_strongest − gain_weakest < max_drop) until it hurts (gain_strongest < max_gain_strongest)."""
    final = final_metric(results, "accuracy")
    weakest, strongest, _, largest = corner_cells(final)
    gains = {aug: seed_gaps(final, "pretrained", "scratch", aug=aug, label_fraction=largest) for aug in (weakest, strongest)}
    change, at_strongest = f"gain_{strongest}_minus_{weakest}_{largest:.0%}", f"gain_{cell_name(strongest, largest)}"
    effects = {change: paired_effect(gains[strongest], gains[weakest], unit=METRIC_UNITS["accuracy"]),
               at_strongest: mean_effect(gains[strongest].values(), unit=METRIC_UNITS["accuracy"])}
    text = (f"with {largest:.0%} of the labels, pre-training's accuracy gain (pretrained − scratch) at {strongest} minus "
            f"that at {weakest} < {max_drop:g} points, and the gain at {strongest} < {max_gain_strongest:g} points "
            f"(95% CIs)")
    conditions = [dict(effect=change, op="<", value=max_drop), dict(effect=at_strongest, op="<", value=max_gain_strongest)]
    return finding("ZO-1", text, conditions, effects, profile, figure, primary=at_strongest)


def zo2_finding(results: pd.DataFrame, min_gain_smallest: float, max_drop: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-2: at the strongest augmentation, pre-training helps with the fewest labels (gain > min_gain_smallest)
    and helps less with all of them (gain_largest − gain_smallest < max_drop)."""
    final = final_metric(results, "accuracy")
    _, strongest, smallest, largest = corner_cells(final)
    gains = {f: seed_gaps(final, "pretrained", "scratch", aug=strongest, label_fraction=f) for f in (smallest, largest)}
    at_smallest, change = f"gain_{cell_name(strongest, smallest)}", f"gain_{strongest}_{largest:.0%}_minus_{smallest:.0%}"
    effects = {at_smallest: mean_effect(gains[smallest].values(), unit=METRIC_UNITS["accuracy"]),
               change: paired_effect(gains[largest], gains[smallest], unit=METRIC_UNITS["accuracy"])}
    text = (f"at {strongest}, pre-training's accuracy gain with {smallest:.0%} of the labels > {min_gain_smallest:g} "
            f"points, and the gain with {largest:.0%} minus that with {smallest:.0%} < {max_drop:g} points (95% CIs)")
    conditions = [dict(effect=at_smallest, op=">", value=min_gain_smallest), dict(effect=change, op="<", value=max_drop)]
    return finding("ZO-2", text, conditions, effects, profile, figure, primary=change)


def zo3_finding(results: pd.DataFrame, min_gain: float, profile: str, figure: str | None = None,
                inits: tuple[str, ...] = ("scratch", "pretrained")) -> dict:
    """ZO-3: in every cell of the grid, on every init of `inits`, the self-trained student beats its
    teacher (the supervised run of the same cell, init and seed) by more than `min_gain` points."""
    final = final_metric(results, "accuracy")
    gains = cell_gains(final, {init: (init + STUDENT, init) for init in inits})
    effects = {f"st_{init}_{cell_name(aug, fraction)}": mean_effect(g.value, unit=METRIC_UNITS["accuracy"])
               for (init, aug, fraction), g in gains.groupby(["comparison", "aug", "label_fraction"])}
    _, strongest, _, largest = corner_cells(final)
    text = (f"student − teacher accuracy > {min_gain:g} points in every cell of the grid, on {' and '.join(inits)} "
            f"init (95% CIs)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding("ZO-3", text, conditions, effects, profile, figure,
                   primary=f"st_{inits[0]}_{cell_name(strongest, largest)}")


def zo4_finding(results: pd.DataFrame, max_gain: float, min_gain_selftraining: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-4: at the strongest augmentation with all labels, SimCLR init minus scratch < max_gain (it hurts
    where supervised pre-training does in the paper), and its self-trained student beats it (> min gain)."""
    final = final_metric(results, "accuracy")
    _, strongest, _, largest = corner_cells(final)
    cell = dict(aug=strongest, label_fraction=largest)
    name = cell_name(strongest, largest)
    effects = {f"simclr_gain_{name}": gap(final, "simclr", "scratch", "accuracy", **cell),
               f"st_simclr_{name}": gap(final, "simclr" + STUDENT, "simclr", "accuracy", **cell)}
    text = (f"at {strongest} with {largest:.0%} of the labels, SimCLR init − scratch accuracy < {max_gain:g} points, and "
            f"its self-trained student − SimCLR init > {min_gain_selftraining:g} points (95% CIs)")
    conditions = [dict(effect=f"simclr_gain_{name}", op="<", value=max_gain),
                  dict(effect=f"st_simclr_{name}", op=">", value=min_gain_selftraining)]
    return finding("ZO-4", text, conditions, effects, profile, figure)


ZO5_ARMS = {  # ZO-5's extra students at its cell, on random init: arm -> run settings
    "scratch+sequential": dict(method="sequential"),
    "scratch+ST unnormalised": dict(method="noisy_student", pseudo_normalise=False),
}
ZO5_EFFECTS = {"scratch": "joint_minus_supervised", "scratch+sequential": "joint_minus_sequential",
               "scratch+ST unnormalised": "joint_minus_unnormalised"}


def zo5_finding(results: pd.DataFrame, aug: str, label_fraction: float, min_gain: float, profile: str,
                figure: str | None = None) -> dict:
    """ZO-5: at one cell, from random init, joint self-training (labels and pseudo-labels in one run, the
    normalised loss) beats the supervised teacher, the sequential use of the same pseudo-labels, and the
    same joint run without loss normalisation, each by more than `min_gain` points."""
    final = final_metric(results, "accuracy")
    cell = dict(aug=aug, label_fraction=label_fraction)
    joint = "scratch" + STUDENT
    effects = {name: gap(final, joint, other, "accuracy", **cell) for other, name in ZO5_EFFECTS.items()}
    text = (f"at {cell_name(aug, label_fraction)}, joint self-training − each of supervised, sequential and "
            f"unnormalised joint > {min_gain:g} accuracy points (95% CIs)")
    conditions = [dict(effect=name, op=">", value=min_gain) for name in effects]
    return finding("ZO-5", text, conditions, effects, profile, figure)


def fixed_iteration_runs(world_dir: str, task: str, label_fractions: list[float], schedules: list[float],
                         seeds: list[int], inits: list[str], epochs_1x: float, batch_size: int) -> list[dict]:
    """HE-3's runs: every data size keeps the full set's 1x schedule in iterations, not epochs (He et al.
    train on 1k-35k images with COCO's iteration counts), so a smaller set is seen for more epochs."""
    return iteration_matched_runs(world_dir, task, label_fractions, epochs_1x, batch_size, init=inits,
                                  schedule=schedules, seed=seeds)


def iteration_matched_runs(world_dir: str, task: str, label_fractions: list[float], epochs_1x: float,
                           batch_size: int, **axes) -> list[dict]:
    """Every data size of `label_fractions` crossed with the grid of `axes`, each size trained for the full
    set's `epochs_1x` in iterations (so a smaller set is seen for more epochs)."""
    n_full = len(load_world(world_file(world_dir, task, "train"))["images"])
    steps_per_epoch = lambda n: n // min(batch_size, n)
    steps_1x = round(epochs_1x * steps_per_epoch(n_full))
    runs = []
    for fraction in label_fractions:
        check_fraction(fraction)
        n = max(1, round(n_full * fraction))
        epochs = epochs_1x if fraction == 1 else steps_1x / steps_per_epoch(n)  # 1.0: the same runs as HE-1
        runs += [dict(label_fraction=fraction, epochs_1x=epochs, **run) for run in grid(**axes)]
    return runs


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


def paper_comparison(final: pd.DataFrame, paper: dict[str, dict], by: str = "schedule") -> pd.DataFrame:
    """Ours (mean ± 95% CI half-width over seeds) next to the paper's numbers: one row per value of `by`,
    columns (arm, source). `paper` maps arm -> {value of by: number}; a cell one side lacks shows —."""
    from .plots import mean_ci_text
    ours = final.groupby([by, "arm"]).value.apply(mean_ci_text).unstack("arm")
    columns = {}
    for arm in ours.columns:
        columns[(arm, "ours")] = ours[arm]
        if arm in paper:
            columns[(arm, "paper")] = pd.Series({k: f"{v:.1f}" for k, v in paper[arm].items()})
    return pd.DataFrame(columns).rename_axis(by).fillna("—")


def metric_table(results: pd.DataFrame, schedule: float, paper: dict[str, tuple[float, ...]] | None = None,
                 metrics: tuple[str, ...] = ("AP", "AP50", "AP75")) -> pd.DataFrame:
    """The paper's Table 2 shape: AP, AP50, AP75 per arm at one schedule (mean ± 95% CI), with the paper's rows."""
    from .plots import mean_ci_text
    rows = {}
    for metric in metrics:
        final = final_metric(results, metric)
        final = final[final.schedule == schedule]
        for arm, values in final.groupby("arm").value:
            rows.setdefault(f"{arm} (ours, {schedule:g}x)", {})[metric] = mean_ci_text(values)
    for arm, numbers in (paper or {}).items():
        rows[f"{arm} (paper)"] = {m: f"{v:.1f}" for m, v in zip(metrics, numbers)}
    return pd.DataFrame(rows).T


def verdict_markdown(findings: list[dict]) -> str:
    """A sentence per finding, written from the computed verdict and effects."""
    lines = []
    for f in findings:
        lines.append(f"**{finding_name(f)}: {f['verdict']}** at this scale (profile `{f['profile']}`, {f['n_seeds']} seeds). "
                     f"Criterion: {f['criterion']['text']}.")
        for c in f["conditions"]:
            lines.append(f"- {c['effect']}: {c['estimate']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] "
                         f"{c['unit']} — needs {c['op']} {c['value']:g}: **{c['status']}**")
        lines.append(f"\n{verdict_sentence(f)}\n\nPaper: {f['paper']}")
    return "\n".join(lines)


def verdict_sentence(finding: dict) -> str:
    """Whether the finding held at this scale, in words, from the computed verdict."""
    named = lambda status: ", ".join(c["effect"] for c in finding["conditions"] if c["status"] == status)
    if finding["verdict"] == "reproduced":
        return "The finding held at this scale: every condition's whole confidence interval meets the criterion."
    if finding["verdict"] == "not reproduced":
        return f"The finding did not hold at this scale: the confidence interval of {named('failed')} lies " \
               f"entirely on the wrong side of the criterion."
    return f"Undecided at this scale: the confidence interval of {named('undecided')} straddles the criterion, " \
           f"so more seeds are needed to tell."


def notebook_parameters(namespace: dict) -> dict:
    """The flat parameters a notebook ran with (call right after its parameters cell)."""
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in ("In", "Out") and isinstance(v, (str, int, float, bool, list))}


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=LIB).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks", "config", "Snakefile",
                                "workflow"], capture_output=True, text=True, cwd=LIB.parent.parent).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_outputs(out_dir: str, results: pd.DataFrame, findings: list[dict], parameters: dict) -> dict:
    """results.csv, findings.json and run.json (parameters, git commit, package versions)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    (out / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")
    packages = {name: metadata.version(name) for name in
                ("torch", "torchvision", "kornia", "nvidia-dali-cuda120", "pycocotools", "papermill", "snakemake")}
    device = resolve_device(parameters.get("device", "auto"))
    run = dict(parameters=parameters, git_commit=git_commit(), python=sys.version.split()[0],
               platform=platform.platform(), packages=packages,
               device=torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu")
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


def gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """study.cell_gains as the paper prints it: mean ± 95% CI half-width per comparison and augmentation
    level (rows) and label fraction (columns)."""
    from .plots import mean_ci_text
    table = gains.groupby(["comparison", "aug", "label_fraction"]).value.apply(mean_ci_text).unstack("label_fraction")
    return table.rename(columns=lambda f: f"{f:.0%} labels")


def checkpoint_table(checkpoints: dict[str, str]) -> pd.DataFrame:
    """Each checkpoint's own final numbers on its upstream validation set, from the JSON its rule writes
    beside it (supervised: loss and accuracy; SimCLR: NT-Xent and the 1-NN probe's accuracy)."""
    return pd.DataFrame({name: json.loads(Path(path).with_suffix(".json").read_text())["val"]
                         for name, path in checkpoints.items()}).T
