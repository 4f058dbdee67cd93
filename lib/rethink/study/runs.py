"""Training runs as the study asks for them: grids of settings, a sweep that trains each run once and
caches it on disk (keyed by everything that decides its numbers, rethink.core's code among it), and
the tidy results table every notebook's verdicts are computed from."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Mapping

import pandas as pd
import torch
from tqdm import tqdm

from ..core.data.tasks import check_fraction, load_task_data
from ..core.training.pseudo import pseudo_label_quality
from ..core.training.selftrain import ALGORITHMS, NEEDS_TEACHER, NEEDS_UPSTREAM, SelfTraining, check_method
from ..core.training.loop import Diverged
from ..core.training.config import TrainConfig, check_task_aug
from ..core.training.evaluation import evaluate
from ..core.training.checkpoints import new_model
from ..core.training.hardware import resolve_device, resolve_precision
from ..core.training.schedule import steps_per_epoch
from ..core.data.world import load_world
from .effects import METRIC_UNITS
from .provenance import code_hash
from .records import seeded


# The metrics a run whose loss diverged scores 0 on, from the step where it diverged (HE-4's no-norm arm).
DIVERGED_SCORES = {"classify": ("accuracy",), "segment": ("miou",), "detect": ("AP", "AP50", "AP75"),
                   "pose": ("pose_accuracy",)}


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


MODEL_KEYS = ("arch", "width", "norm", "bn_batch")
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "progress")
FLOAT_KEYS = tuple(f.name for f in fields(TrainConfig) if f.type == "float")
# A run's self-training settings, as `pseudo_<field of SelfTraining>`.
PSEUDO_KEYS = tuple(f"pseudo_{f.name}" for f in fields(SelfTraining))
RUN_KEYS = ("init", "label_fraction", "method") + MODEL_KEYS + TRAIN_KEYS + PSEUDO_KEYS


def cached_record(record: Path, weights: Path) -> dict | None:
    """A cached run's record, or None: not run yet, or its record or weights cannot be read (a crash mid-write, a
    bad copy), in which case both are deleted, with a line in the log, so that it is retrained rather than loaded."""
    if not record.is_file():
        return None
    try:
        cached = json.loads(record.read_text())
        cached["history"][-1]
        torch.load(weights, map_location="cpu", weights_only=True)
        return cached
    except Exception as error:
        print(f"cached run {record} or {weights.name} is unreadable ({type(error).__name__}): discarded, "
              f"it is trained again", file=sys.stderr)
        record.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)
        return None


def write_atomically(path: Path, write) -> None:
    """write(temporary file) beside `path`, then rename it onto `path`. Two notebooks that share a run (04 and 05,
    01 and 02) can train it at once when Snakemake runs two jobs side by side: each then sees the other's weights
    and record whole or not at all, never half-written (the same run gives the same bytes either way)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_arm(*, train_file: str, val_file: str, task: str, init: str, checkpoint: str | None, runs_dir: str,
            model: dict, label_fraction: float, train: TrainConfig, desc: str, method: str = "supervised",
            selftrain: SelfTraining | None = None, unlabeled_file: str | None = None,
            upstream_file: str | None = None, test_file: str | None = None,
            final_test_file: str | None = None) -> tuple[str, list[dict]]:
    """One training run (cached on disk by everything that determines it, its final weights beside it)
    -> (its cache digest, tidy history rows). `model` holds build_model's arch, width, norm and bn_batch.
    A self-training `method` first runs (or finds) its teacher: the supervised run of the same settings.
    A joint one also trains the upstream labelled task of `upstream_file`. With `test_file` (supervised runs only),
    every evaluation also scores that held-out split (rows of split 'test'); with `final_test_file`, only the final
    model does (final_scores: kept beside the run, outside its key)."""
    device = resolve_device(train.device)  # the key holds the device used, not "auto": CPU and CUDA differ
    selftrain = selftrain or SelfTraining()
    model = {**model, "bn_batch": model.get("bn_batch", 0) if model["norm"] == "bn" else 0}  # only BN reads it
    key = dict(train_file=file_hash(train_file), val_file=file_hash(val_file), task=task, init=init,
               checkpoint=file_hash(checkpoint) if init != "scratch" else None, **model,
               label_fraction=label_fraction,
               train={**{k: v for k, v in asdict(train).items() if k != "progress"}, "device": device,
                      "precision": resolve_precision(train.precision, device)},  # as the device: what ran
               code=code_hash())
    teacher = None
    if test_file is not None:
        if method != "supervised":
            raise ValueError(f"a held-out test split is scored by supervised runs only; got method {method!r}")
        key["test_file"] = file_hash(test_file)
    if check_method(method) in NEEDS_UPSTREAM:
        if upstream_file is None:
            raise ValueError(f"method {method!r} trains the upstream task too: it needs upstream_file")
        key.update(method=method, upstream_file=file_hash(upstream_file), selftrain=asdict(selftrain))
    if method in NEEDS_TEACHER:
        if unlabeled_file is None:
            raise ValueError(f"method {method!r} needs an unlabeled pool (unlabeled_file)")
        # Round 1's teacher is the supervised run; round k's is the student of round k - 1 (Xie et al.'s loop).
        previous = (dict(method=method, selftrain=replace(selftrain, rounds=selftrain.rounds - 1),
                         unlabeled_file=unlabeled_file, upstream_file=upstream_file) if selftrain.rounds > 1 else {})
        teacher, _ = run_arm(train_file=train_file, val_file=val_file, task=task, init=init, checkpoint=checkpoint,
                             runs_dir=runs_dir, model=model, label_fraction=label_fraction, train=train,
                             desc=f"{desc} (teacher)", **previous)
        key.update(method=method, teacher=teacher, unlabeled_file=file_hash(unlabeled_file),
                   selftrain=asdict(selftrain))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    cached, weights = Path(runs_dir) / f"{digest}.json", Path(runs_dir) / f"{digest}.pt"
    record = cached_record(cached, weights)
    if record is None:
        train_data = load_task_data(train_file, task, device, label_fraction)
        val_data = load_task_data(val_file, task, device)
        net = new_model(train_data, seed=train.seed, init=init, checkpoint=checkpoint, **model)
        extra, quality = ({"test": load_task_data(test_file, task, device)} if test_file else {}), []
        if teacher:
            teacher_net = new_model(train_data, seed=train.seed, **model)
            teacher_net.load_state_dict(torch.load(Path(runs_dir) / f"{teacher}.pt", map_location="cpu",
                                                   weights_only=True))
            pool = load_world(unlabeled_file)
            extra = dict(teacher=teacher_net.to(device), pool=torch.from_numpy(pool["images"]).to(device),
                         selftrain=selftrain)
        if method in NEEDS_UPSTREAM:
            extra.update(upstream=load_task_data(upstream_file, "classify", device), selftrain=selftrain)
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
        # The weights (a later student's teacher) are written before the record that names them.
        write_atomically(weights, lambda tmp: torch.save(net.state_dict(), tmp))
        text = json.dumps({"key": key, "seconds": time.perf_counter() - started, "history": history + quality})
        write_atomically(cached, lambda tmp: Path(tmp).write_text(text))
        record = json.loads(text)  # the rows exactly as a rerun reads them back
    # The run's training time, measured when it ran, travels with its rows: a rerun that reads the
    # cache back must still report what the run cost.
    last = record["history"][-1]
    rows = record["history"] + [dict(step=last["step"], epoch=last["epoch"], split="train", metric="seconds",
                                     value=record["seconds"])]
    if final_test_file:
        scores = final_scores(record, cached, weights, final_test_file, task, model, train, device)
        rows += [dict(step=last["step"], epoch=last["epoch"], split="test", metric=m, value=v) for m, v in scores.items()]
    return digest, rows


def final_scores(record: dict, cached: Path, weights: Path, test_file: str, task: str, model: dict,
                 train: TrainConfig, device: str) -> dict:
    """A run's final model scored on a held-out split, once: the scores are kept in its record under the split's
    hash, so that a rerun reads them back. Outside the run's key: a run that other notebooks share stays one cache
    entry whether or not one of them asks for the held-out scores. A diverged run scores 0."""
    split = file_hash(test_file)
    scores = record.get("held_out", {}).get(split)
    if scores is None:
        if any(row["metric"] == "diverged" for row in record["history"]):
            scores = {metric: 0.0 for metric in DIVERGED_SCORES[task]}
        else:
            data = load_task_data(test_file, task, device)
            net = new_model(data, seed=train.seed, **model)
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            scores = evaluate(net.to(device), data, precision=resolve_precision(train.precision, device))
        record.setdefault("held_out", {})[split] = scores
        write_atomically(cached, lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return scores


def world_file(world_dir: str, task: str, split: str, kind: str | None = None) -> Path:
    """The downstream world file a task trains (split 'train') or is scored on ('val'; 'test': the procedural
    world's held-out split, for a model selected on 'val' or scored once at its end); split 'unlabeled'
    is self-training's pool (labels unused; classification: downstream classes plus the world's
    unlabeled_ood_share of upstream ones). `kind` picks
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


def sweep(runs: list[dict], settings: Mapping, *, task: str, arm: str = "init", checkpoints: dict[str, str] | None = None,
          files: str | None = None, held_out: bool | str = False, world_dir: str | None = None,
          **overrides) -> pd.DataFrame:
    """Train every run. The base settings are the notebook's (`settings`: its model, TrainConfig and pseudo_* keys,
    its world, upstream checkpoint and run cache; `world_dir` another world), overridden by `overrides`, then by the
    run's own keys. Init 'pretrained' starts from the upstream checkpoint, any other init but 'scratch' from its
    entry in `checkpoints`; a checkpoint path with `{seed}` is the run's own seed's (a `checkpoint` column names
    the file each run started from). Tidy rows: run_id, arm (the run's "arm" key if it has one, else the value of its setting
    named by `arm`), the run's keys, step, epoch, split, metric, value. `files` picks the world files
    (study.world_file's kind). `held_out` (or a run's own "held_out" key) also scores the world's held-out test
    split: True at every evaluation (a model selected on validation, nd.selected_metric), "final" the final model
    only. Finished runs come back from the run cache."""
    world_dir, upstream_checkpoint, runs_dir = world_dir or settings["world_dir"], settings["upstream_checkpoint"], \
        settings["runs_dir"]
    base = {**{k: settings[k] for k in RUN_KEYS if k in settings}, **overrides}
    checkpoints = {"pretrained": upstream_checkpoint, **(checkpoints or {})}
    specs = [{"init": "scratch", "label_fraction": 1.0, "method": "supervised", **base, **run} for run in runs]
    labels = [spec.pop("arm", None) or spec[arm] for spec in specs]
    tests = [spec.pop("held_out", held_out) for spec in specs]
    if not set(tests) <= {False, True, "final"}:
        raise ValueError(f"held_out must be False, True (every evaluation) or 'final'; got {sorted(map(str, set(tests)))}")
    held_out_path = world_file(world_dir, task, "test", files)
    if any(tests) and not held_out_path.is_file():  # real data without a held-out split: verdicts read validation
        print(f"no held-out split {held_out_path}: these runs are scored on validation only", file=sys.stderr)
        tests = [False] * len(tests)
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
    bar = tqdm(list(zip(runs, specs, configs, selftrains, labels, tests)), desc=f"{task} runs", file=sys.stderr,
               mininterval=60)
    for run, spec, cfg, selftrain, label, test in bar:
        run = {k: v for k, v in run.items() if k != "held_out"}  # how a run is scored is no part of its name
        run_id = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.items())
        held_out_file = str(held_out_path) if test else None
        checkpoint = seeded(checkpoints.get(spec["init"]), spec.get("seed", cfg.seed))
        _, history = run_arm(train_file=str(world_file(world_dir, task, "train", files)),
                             val_file=str(world_file(world_dir, task, "val", files)), task=task, init=spec["init"],
                             checkpoint=checkpoint, runs_dir=runs_dir,
                             model={k: spec[k] for k in MODEL_KEYS if k in spec},
                             label_fraction=spec["label_fraction"], train=cfg, desc=run_id, method=spec["method"],
                             selftrain=selftrain, unlabeled_file=str(world_file(world_dir, task, "unlabeled", files)),
                             upstream_file=str(Path(world_dir) / "upstream_classify_train.npz"),
                             test_file=held_out_file if test is True else None,
                             final_test_file=held_out_file if test == "final" else None)
        # The checkpoint a run fine-tuned (its file's stem), so that an effect counts its pre-training replicates.
        source = {"checkpoint": Path(checkpoint).stem} if checkpoint else {}
        rows += [dict(run_id=run_id, **{**run, "arm": label}, **source, **r) for r in history]
    results = pd.DataFrame(rows)
    percent = results["metric"].isin(METRIC_UNITS)  # fractions -> points, the unit the papers report
    results.loc[percent, "value"] *= 100
    return results


def iteration_matched_runs(world_dir: str, task: str, label_fractions: list[float], epochs_1x: float,
                           batch_size: int, **axes) -> list[dict]:
    """Every data size of `label_fractions` crossed with the grid of `axes`, each size trained for the full
    set's `epochs_1x` in iterations (so a smaller set is seen for more epochs)."""
    n_full = n_train(world_dir, task)
    steps_1x = round(epochs_1x * steps_per_epoch(n_full, batch_size))
    runs = []
    for fraction in label_fractions:
        check_fraction(fraction)
        n = max(1, round(n_full * fraction))
        epochs = epochs_1x if fraction == 1 else steps_1x / steps_per_epoch(n, batch_size)  # 1.0: the same runs as HE-1
        runs += [dict(label_fraction=fraction, epochs_1x=epochs, **run) for run in grid(**axes)]
    return runs


def n_train(world_dir: str, task: str = "classify") -> int:
    """The number of images in the task's downstream training file (all its labels)."""
    return len(load_world(world_file(world_dir, task, "train"))["images"])
