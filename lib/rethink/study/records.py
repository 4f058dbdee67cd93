"""The study's records of a notebook's runs: results.csv and the files beside it (run.json with the settings, the
commit and the environment; each checkpoint's own numbers), read back exactly as written, and findings.json."""
from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch

from ..core.training.hardware import resolve_device
from .provenance import code_hash, results_hash

LIB = Path(__file__).parent.parent


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=LIB).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "notebooks", "config", "Snakefile",
                                "workflow"], capture_output=True, text=True, cwd=LIB.parent.parent).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str = "auto") -> dict:
    """What a run ran on, for run.json: Python, platform, CPU, GPUs, torch's build (its CUDA and cuDNN) and
    every installed package with its version."""
    device = resolve_device(device)
    cuda = torch.cuda.is_available()
    return dict(
        python=sys.version.split()[0], platform=platform.platform(), cpu=cpu_name(), threads=torch.get_num_threads(),
        gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        device=torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        torch_build=dict(version=torch.__version__, cuda=torch.version.cuda,
                         cudnn=torch.backends.cudnn.version() if cuda else None),
        packages=dict(sorted((d.metadata["Name"], d.version) for d in metadata.distributions() if d.metadata["Name"])))


def seeded(checkpoint: str | None, seed: int) -> str | None:
    """A checkpoint path for a run of `seed`: a template (config.checkpoint_file: one pre-training per seed) filled
    in; a plain path as it is (one checkpoint shared by every seed)."""
    return checkpoint.replace("{seed}", str(int(seed))) if checkpoint else checkpoint


def checkpoint_files(checkpoints: dict[str, str], seeds) -> dict[str, str]:
    """name -> file of every pre-training behind a notebook: a per-seed template becomes one entry per seed,
    named '<name> (seed <k>)' (gates.checkpoint_kind reads the method from the first word)."""
    out = {}
    for name, path in checkpoints.items():
        out.update({f"{name} (seed {int(k)})": seeded(path, k) for k in seeds} if "{seed}" in path else {name: path})
    return out


def write_results(out_dir: str, results: pd.DataFrame, parameters: dict,
                  checkpoints: dict[str, str] | None = None) -> dict:
    """The sweep's half of a notebook: results.csv, run.json (parameters, git commit, the environment) and,
    for `checkpoints` (name -> path), checkpoints.csv with each checkpoint's own numbers from the JSON its
    rule writes beside it (supervised: loss and accuracy; self-supervised: its loss and the 1-NN probe)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    files = checkpoint_files(checkpoints or {}, parameters.get("seeds") or [])
    records = {name: json.loads(Path(path).with_suffix(".json").read_text()) for name, path in files.items()}
    rows = [dict(checkpoint=name, metric=metric, value=value) for name, record in records.items()
            for metric, value in record["val"].items()]
    if rows:
        pd.DataFrame(rows).to_csv(out / "checkpoints.csv", index=False)
        # Each checkpoint's training curve (its pretext loss per epoch), for the figure against its chance line.
        pd.DataFrame([dict(checkpoint=name, **{k: row[k] for k in ("step", "epoch", "metric", "value")})
                      for name, record in records.items() for row in record.get("history", [])
                      if row.get("split", "train") == "train"]).to_csv(out / "pretraining.csv", index=False)
    settings = {k: v for k, v in parameters.items() if k != "deviations"}  # a record of the config, not a setting
    core, name = code_hash(), parameters.get("notebook_name")
    run = dict(parameters=settings, git_commit=git_commit(), core_hash=core,  # provenance by content (the index's)
               results_hash=results_hash(settings, name, core) if name else None,
               **environment(parameters.get("device", "auto")))
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


RESULT_FILES = ("results.csv", "run.json", "checkpoints.csv", "pretraining.csv")


def read_results(out_dir: str, results_dir: str | None = None) -> pd.DataFrame:
    """The other half's only input: results.csv in `out_dir`. With `results_dir` (a re-render from committed
    results), its result files are first copied into `out_dir` unless it is the same folder. Floats are read
    back exactly as written, so a re-render computes the very effects the sweep's run did."""
    out = Path(out_dir)
    if results_dir is not None and Path(results_dir).resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:
            if (Path(results_dir) / name).is_file():
                shutil.copyfile(Path(results_dir) / name, out / name)
    path = out / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: it is written by the notebook's sweep (run it with "
                                f"from_results=False, or `snakemake`), or set results_dir to a report folder that has one")
    return pd.read_csv(path)  # pandas 3 reads floats back exactly (round trip) by default


def write_findings(out_dir: str, findings: list[dict], from_results: bool = False, deviations: list[dict] = (),
                   phase: str = "confirmation") -> list[dict]:
    """findings.json, each finding with its phase (exploration or confirmation), the seeds of its results and
    the deviations from protocol v2 that name it; a re-render from results also notes its own commit in run.json,
    beside the one that trained. Returns the findings as written."""
    out = Path(out_dir)
    seeds = sorted(int(s) for s in pd.read_csv(out / "results.csv", usecols=["seed"]).seed.dropna().unique())
    findings = [{**f, "phase": phase, "seeds": seeds,
                 "deviations": [d for d in deviations if f["id"] in d["findings"]]} for f in findings]
    (out / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")
    if from_results:
        run = json.loads((out / "run.json").read_text())
        run["rendered_from_results_at"] = git_commit()
        (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return findings
