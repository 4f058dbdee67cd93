"""The study's experiments: arms of training runs, cached per run, turned into tidy results and
verdicts. Notebooks call these; they hold no training logic themselves."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from .data import load_task_data
from .findings import judge, paired_effect
from .train import TrainConfig, fit, new_model, resolve_device

LIB = Path(__file__).parent

# What each finding claims and what the paper reports (../shared/STUDY.md). Criteria values are
# not here: they are pre-registered in config/study.yaml.
FINDINGS = {
    "HE-1": dict(
        claim="From random init (with GN), training catches up with pre-trained fine-tuning given a longer "
              "schedule; pre-training mainly speeds up convergence.",
        paper="R50 box AP at 2x/3x/4x/5x/6x: scratch 36.8/39.5/40.6/40.7/41.3, pretrained 40.3/40.8/40.9/40.9/41.1 "
              "(He et al. 2019, Fig. 1 / Table 1)."),
}

TASK_METRIC = {"classify": "accuracy", "segment": "miou", "detect": "AP"}
METRIC_UNITS = {"accuracy": "accuracy points", "miou": "mIoU points", "AP": "AP points", "AP50": "AP50 points",
                "AP75": "AP75 points"}


# The modules whose code decides a training run's numbers. A cached run is reused only by the code
# that made it; plotting, reporting and verdict code are left out so that changing them never retrains.
TRAINING_MODULES = ("augment", "data", "detection", "metrics", "models", "pretrain", "train", "world")


def code_hash() -> str:
    h = hashlib.sha256()
    for name in TRAINING_MODULES:
        h.update((LIB / f"{name}.py").read_bytes())
    return h.hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def run_arm(*, train_file: str, val_file: str, task: str, init: str, checkpoint: str | None, runs_dir: str,
            arch: str, width: int, norm: str, label_fraction: float, train: TrainConfig, desc: str) -> list[dict]:
    """One training run (cached on disk by everything that determines it) -> tidy history rows."""
    device = resolve_device(train.device)  # the key holds the device used, not "auto": CPU and CUDA differ
    key = dict(train_file=file_hash(train_file), val_file=file_hash(val_file), task=task, init=init,
               checkpoint=file_hash(checkpoint) if init == "pretrained" else None, arch=arch, width=width,
               norm=norm, label_fraction=label_fraction,
               train={**{k: v for k, v in asdict(train).items() if k != "progress"}, "device": device},
               code=code_hash())
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    cached = Path(runs_dir) / f"{digest}.json"
    if not cached.is_file():
        train_data = load_task_data(train_file, task, device, label_fraction)
        val_data = load_task_data(val_file, task, device)
        model = new_model(train_data, arch, width, norm, train.seed, init, checkpoint)
        started = time.perf_counter()
        history = fit(model, train_data, val_data, train, desc=desc)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"key": key, "seconds": time.perf_counter() - started, "history": history}))
    record = json.loads(cached.read_text())
    # The run's training time, measured when it ran, travels with its rows: a rerun that reads the
    # cache back must still report what the run cost.
    last = record["history"][-1]
    return record["history"] + [dict(step=last["step"], epoch=last["epoch"], split="train", metric="seconds",
                                     value=record["seconds"])]


def schedule_sweep(*, world_dir: str, upstream_checkpoint: str, runs_dir: str, task: str, arch: str, width: int,
                   norm: str, label_fraction: float, schedules: list[float], seeds: list[int],
                   inits: tuple[str, ...] = ("scratch", "pretrained"), **train_kwargs) -> pd.DataFrame:
    """Every init x schedule x seed, as tidy rows: run_id, arm, schedule, seed, step, epoch, split, metric, value."""
    world = Path(world_dir)
    kind = "classify" if task == "classify" else "scenes"
    runs = [(init, schedule, seed) for schedule in schedules for seed in seeds for init in inits]
    # Build every config before the first run, so that a bad value fails before any training.
    configs = [TrainConfig(schedule=float(schedule), seed=int(seed), progress=False, **train_kwargs)
               for _, schedule, seed in runs]
    rows = []
    # One bar over the runs (a notebook's output stays readable); finished runs come back from runs_dir.
    for (init, schedule, seed), cfg in tqdm(list(zip(runs, configs)), desc="runs", file=sys.stderr):
        run_id = f"{init}-{schedule}x-seed{seed}"
        history = run_arm(train_file=str(world / f"downstream_{kind}_train.npz"),
                          val_file=str(world / f"downstream_{kind}_val.npz"), task=task, init=init,
                          checkpoint=upstream_checkpoint, runs_dir=runs_dir, arch=arch, width=width, norm=norm,
                          label_fraction=label_fraction, train=cfg, desc=run_id)
        rows += [dict(run_id=run_id, arm=init, schedule=float(schedule), seed=int(seed), **r) for r in history]
    results = pd.DataFrame(rows)
    percent = results["metric"].isin(METRIC_UNITS)  # fractions -> points, the unit the papers report
    results.loc[percent, "value"] *= 100
    return results


def final_metric(results: pd.DataFrame, metric: str, split: str = "val") -> pd.DataFrame:
    """The last evaluation of each run: one row per (arm, schedule, seed)."""
    rows = results[(results.metric == metric) & (results.split == split)]
    return rows.loc[rows.groupby("run_id").step.idxmax()]


def he1_findings(results: pd.DataFrame, metric: str, min_gap_shortest: float, max_gap_longest: float,
                 profile: str, figure: str | None = None) -> list[dict]:
    """HE-1: pre-trained minus scratch, at the shortest schedule (> min_gap_shortest) and at the longest
    (|gap| <= max_gap_longest)."""
    final = final_metric(results, metric)
    by = {(r.arm, r.schedule, r.seed): r.value for r in final.itertuples()}
    shortest, longest = final.schedule.min(), final.schedule.max()

    def gap(schedule):
        arm = lambda name: {s: v for (a, sch, s), v in by.items() if a == name and sch == schedule}
        return paired_effect(arm("pretrained"), arm("scratch"), unit=METRIC_UNITS[metric])

    criterion = dict(
        text=f"pretrained − scratch {metric} at {shortest:g}x > {min_gap_shortest:g} points and "
             f"|pretrained − scratch| at {longest:g}x ≤ {max_gap_longest:g} points (95% CIs)",
        conditions=[dict(effect=f"gap_{shortest:g}x", op=">", value=min_gap_shortest),
                    dict(effect=f"gap_{longest:g}x", op="abs<=", value=max_gap_longest)],
        primary=f"gap_{longest:g}x")
    effects = {f"gap_{s:g}x": gap(s) for s in sorted(final.schedule.unique())}
    finding = judge("HE-1", FINDINGS["HE-1"]["claim"], criterion, effects, FINDINGS["HE-1"]["paper"], profile)
    return [{**finding, "figure": figure}]


def schedule_table(final: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95% CI half-width of the final metric, arms as columns, schedules as rows."""
    from .plots import mean_ci
    cells = final.groupby(["schedule", "arm"]).value.apply(lambda v: "{:.1f} ± {:.1f}".format(*mean_ci(v)))
    return cells.unstack("arm")


def verdict_markdown(findings: list[dict]) -> str:
    """A sentence per finding, written from the computed verdict and effects."""
    lines = []
    for f in findings:
        lines.append(f"**{f['id']}: {f['verdict']}** at this scale (profile `{f['profile']}`, {f['n_seeds']} seeds). "
                     f"Criterion: {f['criterion']['text']}.")
        for c in f["conditions"]:
            lines.append(f"- {c['effect']}: {c['estimate']:+.2f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] "
                         f"{c['unit']} — needs {c['op']} {c['value']:g}: **{c['status']}**")
        lines.append(f"\nPaper: {f['paper']}")
    return "\n".join(lines)


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
