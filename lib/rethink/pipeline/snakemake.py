"""Snakemake after a killed run: the lock it leaves behind, and its incomplete outputs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def snakemake_running(workdir: Path) -> bool:
    """Is a Snakemake process (not this one, nor its parents) working in `workdir`? Linux reads /proc; elsewhere
    any Snakemake process counts as running there, so that a live run's lock is never removed."""
    mine, pid = set(), os.getpid()
    while pid > 1:  # this process and its ancestors (make, a shell) are not "another Snakemake"
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    proc = Path("/proc")
    if not (proc / "self").exists():
        ps = subprocess.run(["ps", "-Ao", "pid=,args="], capture_output=True, text=True).stdout.splitlines()
        return any("snakemake" in line and int(line.split()[0]) not in mine for line in ps)
    workdir = workdir.resolve()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if b"snakemake" in (entry / "cmdline").read_bytes() and (entry / "cwd").resolve() == workdir:
                return True
        except OSError:  # gone, or not ours to read
            continue
    return False


def run_snakemake(args: list[str], workdir: Path | None = None) -> int:
    """`snakemake ARGS --rerun-incomplete`, after removing the lock a killed run left (power loss, the OOM killer,
    a closed laptop) when, and only when, no Snakemake process works in this folder. Jobs that finished are kept;
    a job cut off mid-run is redone from scratch (--rerun-incomplete)."""
    workdir = Path(workdir or Path.cwd())
    snakemake = [sys.executable, "-m", "snakemake"]
    locks = workdir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()) and not snakemake_running(workdir):
        print(f"removing the stale Snakemake lock in {workdir} (no Snakemake process runs there)", flush=True)
        subprocess.run(snakemake + ["--unlock", *args], cwd=workdir, check=True, capture_output=True)
    return subprocess.run(snakemake + ["--rerun-incomplete", *args], cwd=workdir).returncode
