"""`make verify`: the study rerun into build/verify/, each findings.json compared with the committed one byte for
byte; where they differ, every number that differs, by its place in the file."""
from __future__ import annotations

import json
from pathlib import Path


def leaves(value, where: str = "") -> dict[str, object]:
    """Every number, string and flag of a JSON value by its path: 'ZO-1.effect.estimate', 'HE-1.gates[2].value'."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in leaves(item, f"{where}.{key}" if where else key).items()}
    if isinstance(value, list):
        if all(isinstance(item, dict) and "id" in item for item in value):  # the findings, by their IDs
            return {k: v for item in value for k, v in leaves(item, f"{where}.{item['id']}" if where else item["id"]).items()}
        return {k: v for i, item in enumerate(value) for k, v in leaves(item, f"{where}[{i}]").items()}
    return {where: value}


def differences(committed: Path, rerun: Path, limit: int = 12) -> list[str]:
    """The values that differ between two findings.json, 'path: committed -> rerun', at most `limit` of them."""
    old, new = leaves(json.loads(committed.read_text())), leaves(json.loads(rerun.read_text()))
    lines = [f"{path}: {old.get(path, '(absent)')!r} -> {new.get(path, '(absent)')!r}"
             for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def compare(committed_dir: Path, rerun_dir: Path, notebooks: list[str]) -> tuple[list[str], int, int]:
    """Each notebook's committed findings.json against the rerun's: the report's lines, and how many of how many
    committed reports were reproduced byte for byte."""
    lines, reproduced, total = [], 0, 0
    for notebook in notebooks:
        committed, rerun = committed_dir / notebook / "findings.json", rerun_dir / notebook / "findings.json"
        if not committed.is_file():
            continue
        total += 1
        if not rerun.is_file():
            lines.append(f"{notebook}: not rerun ({rerun} does not exist)")
        elif committed.read_bytes() == rerun.read_bytes():
            reproduced += 1
            lines.append(f"{notebook}: reproduced, byte for byte")
        else:
            lines += [f"{notebook}: differs"] + [f"    {d}" for d in differences(committed, rerun)
                                                 or ["the same values, written differently"]]
    lines.append(f"{reproduced} of {total} reports reproduced")
    return lines, reproduced, total
