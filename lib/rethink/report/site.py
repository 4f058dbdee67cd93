"""The study as one folder that opens anywhere (`snakemake --report report.zip` packs it whole): the index, each
report with its figures, results.csv and findings.json, and the docs the pages link to, at the same relative
places as in the repository, so that every link resolves inside it."""
from __future__ import annotations

import shutil
from pathlib import Path

from .index import write_index

REPORT_FILES = ("*.html", "*.ipynb", "*.png", "results.csv", "findings.json", "run.json", "checkpoints.csv",
                "pretraining.csv")


def write_site(report_dirs, out: str | Path, docs: str | Path) -> None:
    """Copy each report folder and the docs into `out`, then write its index there."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    folders = []
    for folder in map(Path, report_dirs):
        target = out / folder.name
        target.mkdir(parents=True)
        for pattern in REPORT_FILES:
            for path in folder.glob(pattern):
                shutil.copyfile(path, target / path.name)
        folders.append(target)
    shutil.copytree(docs, out / "docs", ignore=shutil.ignore_patterns("*.pyc"))
    write_index(folders, out, docs=out / "docs")
