"""`make gpu-check`: the CUDA path checked and timed on a GPU machine, in one command that keeps what it has.

    make gpu-check                                   # on a CUDA machine: everything below, into benchmarks/results/gpu-check
    make gpu-check ARGS="--time-limit 360"           # stop after 6 minutes, keeping every finished step
    make gpu-check --dry-run                         # on any machine: the same steps on the CPU, tiny sizes,
                                                     # into build/gpu-check-dry-run (or ARGS=--dry-run)

The steps, in order (each a subprocess with what is left of the time limit; summary.json is written after each):

  env         nvidia-smi, torch, CUDA, cuDNN, DALI and Kornia versions, what `device: auto` resolves to
  setup       `make setup` (from requirements.lock); where it fails (a machine without the package index), the
              Python that runs this script is used instead, and the summary says so
  cuda_tests  the tests marked `cuda` (tests/core/test_cuda.py): DALI device="gpu" and its "mixed" decoder, Kornia on
              CUDA, a fixed flip + crop on both, the ladder's statistics against the CPU's, bf16 training repeated
  agreement   the ladder's output statistics per backend, level and device: agreement.json
  bench       benchmarks/bench.py on this device: bench/cuda.json and cuda.png
  notebook    notebook 04 of the default profile from an empty cache (its world and checkpoint included), timed
  smoke_dag   the whole DAG of the smoke profile from an empty cache, timed

--dry-run walks the same code on the CPU: the cuda tests under RETHINK_CUDA_TESTS_ON_CPU=1, two levels of the
agreement table, bench.py --quick, and `snakemake -n` of notebook 04 of the smoke profile and of the smoke DAG (the
tests run both for real elsewhere). A first
run on a GPU can then fail only for reasons a GPU brings. Snakemake runs in a scratch folder outside the output
(its benchmark files are copied back), so the output folder stays small enough to commit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gpu-check"  # committed as it comes back from a GPU
DRY_OUT = ROOT / "build" / "gpu-check-dry-run"      # a dry run's: not results, never committed
STEPS = ("env", "setup", "cuda_tests", "agreement", "bench", "notebook", "smoke_dag")
NOTEBOOK = "04_zo1_zo2_augmentation_data"
ENV = ("import json, shutil, subprocess, torch\n"
       "from rethink.core.training.hardware import resolve_device, resolve_precision\n"
       "from rethink.core.augment.ladder import dali_installed\n"
       "import kornia\n"
       "cuda = torch.cuda.is_available()\n"
       "info = dict(torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if cuda else None,\n"
       "            gpu=torch.cuda.get_device_name() if cuda else None, kornia=kornia.__version__,\n"
       "            device_auto=resolve_device('auto'), precision_auto=resolve_precision('auto', resolve_device('auto')))\n"
       "if dali_installed():\n"
       "    import nvidia.dali as dali; info['dali'] = dali.__version__\n"
       "if shutil.which('nvidia-smi'):\n"
       "    info['nvidia_smi'] = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total',\n"
       "                                         '--format=csv,noheader'], capture_output=True, text=True).stdout.strip()\n"
       "print(json.dumps(info, indent=2))\n")


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def commands(step: str, out: Path, dry_run: bool, scratch: Path) -> list[list[str]]:
    """The command lines of a step (run in turn; the step fails at the first that fails)."""
    py = python()
    snakemake = [py, "-m", "rethink", "snakemake", "-s", str(ROOT / "Snakefile")]
    if step == "env":
        return [[py, "-c", ENV]]
    if step == "setup":
        return [["make", "-C", str(ROOT), "-n" if dry_run else "--no-print-directory", "setup"]]
    if step == "cuda_tests":
        return [[py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(ROOT / "tests"),
                 f"--junitxml={out / 'cuda_tests.xml'}"]]
    if step == "agreement":
        return [[py, __file__, "--agreement-only", "--out", str(out)] + (["--dry-run"] if dry_run else [])]
    if step == "bench":
        quick = ["--quick", "--rounds", "1"] if dry_run else ["--rounds", "5"]
        return [[py, str(ROOT / "benchmarks" / "bench.py"), *quick, "--out", str(out / "bench")]]
    profile = "smoke" if dry_run else "default"
    if step == "notebook":
        reports = "reports" if profile == "default" else f"build/{profile}/reports"
        return [[*snakemake, f"{reports}/{NOTEBOOK}/findings.json", "--cores", "all", "--config", f"profile={profile}",
                 *(["-n"] if dry_run else [])]]
    if step == "smoke_dag":
        return [[*snakemake, "--cores", "all", "--config", "profile=smoke", *(["-n"] if dry_run else [])]]
    raise ValueError(f"unknown step {step!r}; the steps are {', '.join(STEPS)}")


def run_step(step: str, out: Path, dry_run: bool, scratch: Path, seconds_left: float) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"RETHINK_CUDA_TESTS_ON_CPU": "1"} if dry_run else {})}
    record = {"step": step, "commands": [], "rc": 0, "seconds": 0.0, "timed_out": False}
    cwd = scratch / step if step in ("notebook", "smoke_dag") else ROOT  # Snakemake writes where it runs
    cwd.mkdir(parents=True, exist_ok=True)
    with open(out / f"{step}.log", "w") as log:
        for line in commands(step, out, dry_run, scratch):
            record["commands"].append(" ".join(line).replace(str(ROOT) + "/", "").replace(sys.executable, "python"))
            started = time.perf_counter()
            # A session of its own, so that a step stopped at the limit takes its children (Snakemake's jobs) along.
            process = subprocess.Popen(line, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            try:
                rc = process.wait(timeout=max(1.0, seconds_left - record["seconds"]))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                rc, record["timed_out"] = None, True
            record["seconds"] = round(record["seconds"] + time.perf_counter() - started, 1)
            record["rc"] = rc
            if rc != 0:
                break
    record["log_tail"] = (out / f"{step}.log").read_text(errors="replace")[-2000:]
    if step == "env" and rc == 0:
        record["env"] = json.loads(record["log_tail"][record["log_tail"].index("{"):])
    for tsv in sorted(cwd.rglob("benchmarks/*.tsv")) if cwd != ROOT else ():  # each rule's wall time and memory
        (out / f"{step}-benchmarks").mkdir(exist_ok=True)
        shutil.copy(tsv, out / f"{step}-benchmarks" / tsv.name)
    return record


def write_agreement(out: Path, dry_run: bool) -> dict:
    """agreement.json: the ladder's statistics per backend, level and device (rethink.core.augment.agreement)."""
    import numpy as np
    import torch

    from rethink.core.augment.agreement import agreement
    from rethink.core.augment.ladder import LEVELS, dali_installed
    from rethink.core.data import world as W
    from rethink.core.training.hardware import resolve_device

    device = resolve_device("auto")
    n, levels = (32, ("S1", "S4")) if dry_run else (512, LEVELS)
    data = W.generate_classification(n, W.DOWNSTREAM_CLASSES[:4], W.WorldSpec(image_size=32), seed=0)
    images = torch.from_numpy(np.asarray(data["images"]))
    backends = ("kornia", "dali") if dali_installed() else ("kornia",)
    table = {"device": device, "images": n, "statistics": "per-channel means, per-channel sds, mean per-image sd",
             "levels": agreement(device, images, backends, levels) if len(backends) == 2 else "DALI is not installed"}
    (out / "agreement.json").write_text(json.dumps(table, indent=2) + "\n")
    return table


def main(out: Path, dry_run: bool, time_limit: float, steps=STEPS) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summary = {"dry_run": dry_run, "time_limit_s": time_limit, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "steps": []}
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        for step in steps:
            left = time_limit - (time.perf_counter() - started)
            if left < 5:
                summary["steps"].append({"step": step, "rc": None, "skipped": "the time limit was reached"})
            else:
                print(f"gpu-check: {step} ({left:.0f} s left) ...", flush=True)
                record = run_step(step, out, dry_run, scratch, left)
                print(f"gpu-check: {step} rc={record['rc']} in {record['seconds']} s", flush=True)
                summary["steps"].append(record)
                if step == "setup" and record["rc"] != 0:
                    record["note"] = f"make setup failed; the later steps use {python()}"
            summary["seconds"] = round(time.perf_counter() - started, 1)
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU with tiny sizes")
    parser.add_argument("--time-limit", type=float, default=480, help="seconds for all steps (default 480)")
    parser.add_argument("--out", type=Path, help=f"the output folder (default {OUT.relative_to(ROOT)}, the folder to "
                        f"commit; with --dry-run {DRY_OUT.relative_to(ROOT)})")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=STEPS, help="a subset of the steps, in order")
    parser.add_argument("--agreement-only", action="store_true", help=argparse.SUPPRESS)  # the agreement step
    args = parser.parse_args()
    args.out = args.out or (DRY_OUT if args.dry_run else OUT)
    if args.agreement_only:
        write_agreement(args.out, args.dry_run)
        sys.exit(0)
    result = main(args.out, args.dry_run, args.time_limit, args.steps)
    failed = [s["step"] for s in result["steps"] if s["rc"] != 0]
    print(f"gpu-check: {len(result['steps']) - len(failed)} of {len(result['steps'])} steps passed"
          + (f"; not passed: {', '.join(failed)}" if failed else "") + f"; see {args.out / 'summary.json'}")
    sys.exit(1 if failed else 0)
