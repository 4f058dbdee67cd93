"""What to tell a user whose cache file is missing or corrupted: the command that rebuilds it."""
from __future__ import annotations

import re
from pathlib import Path


def rebuild_command(path: str | Path) -> str:
    """The Snakemake call (from the repository root) that remakes `path`, a file of cache/<profile>/; `--force`
    because a corrupted file looks up to date to Snakemake."""
    match = re.search(r"(cache/([A-Za-z0-9_-]+)/.+)$", Path(path).resolve().as_posix())
    if not match:
        return "rerun the rule that makes it: `make study`, or `snakemake --cores 2 --config profile=<profile>`"
    target, profile = match.groups()
    return f"from the repository root, run: snakemake --cores 2 --config profile={profile} --force {target}"
