"""Provenance by content: run.json's core_hash and results_hash, and the index's flag for a report whose results
the checkout would no longer make."""
from __future__ import annotations

import copy
import json
import shutil

import pandas as pd

from rethink import config
from rethink.report.index import stale_reason
from rethink.study import provenance
from rethink.study.records import write_results

CONFIG = config.raw()


def test_the_code_hash_is_every_file_under_core(tmp_path, monkeypatch):
    core = tmp_path / "core"
    shutil.copytree(provenance.CORE, core, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "CORE", core)
    before = provenance.code_hash()
    (core / "new_module.py").write_text("X = 1\n")  # a module nobody listed still counts
    added = provenance.code_hash()
    (core / "new_module.py").write_text("X = 2\n")
    assert len({before, added, provenance.code_hash()}) == 3
    (core / "new_module.py").unlink()
    assert provenance.code_hash() == before


def _parameters(notebook: str = "04_zo1_zo2_augmentation_data", **changes) -> dict:
    profile = config.resolve(copy.deepcopy(CONFIG), "smoke")
    return {**config.notebook_config(profile, notebook, root="."), **changes}


def test_the_results_hash_follows_what_trains_and_ignores_what_does_not(tmp_path, monkeypatch):
    base = provenance.results_hash(_parameters(), "04_zo1_zo2_augmentation_data")
    same = [dict(out_dir="elsewhere"), dict(results_dir="x"), dict(phase="exploration"), dict(criteria={}),
            dict(converged_tolerance=9.0), dict(from_results=True)]
    assert {provenance.results_hash(_parameters(**c), "04_zo1_zo2_augmentation_data") for c in same} == {base}
    changed = [dict(seeds=[7, 8]), dict(lr=0.2), dict(aug_levels=["S4"]), dict(device="cuda")]
    assert len({provenance.results_hash(_parameters(**c), "04_zo1_zo2_augmentation_data") for c in changed}
               | {base}) == len(changed) + 1
    assert provenance.results_hash(_parameters(), "04_zo1_zo2_augmentation_data", core="another") != base
    # The notebook's sweep half counts; what follows it (figures, captions) does not.
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    source = (provenance.NOTEBOOKS / "04_zo1_zo2_augmentation_data.py").read_text()
    monkeypatch.setattr(provenance, "NOTEBOOKS", notebooks)
    (notebooks / "04_zo1_zo2_augmentation_data.py").write_text(source + "\n# a caption edited\n")
    assert provenance.results_hash(_parameters(), "04_zo1_zo2_augmentation_data") == base
    (notebooks / "04_zo1_zo2_augmentation_data.py").write_text(source.replace("s = config.notebook(", "x = 1\ns = config.notebook(", 1))
    assert provenance.results_hash(_parameters(), "04_zo1_zo2_augmentation_data") != base


def test_run_json_records_both_hashes_and_the_index_flags_by_content(tmp_path):
    parameters = _parameters()
    results = pd.DataFrame([dict(run_id="a", arm="scratch", seed=0, step=1, split="val", metric="accuracy", value=1.0)])
    run = write_results(str(tmp_path), results, parameters)
    assert json.loads((tmp_path / "run.json").read_text())["core_hash"] == run["core_hash"] == provenance.code_hash()
    assert run["results_hash"] == provenance.current_hash("smoke", "04_zo1_zo2_augmentation_data")
    assert stale_reason(run, "smoke", "04_zo1_zo2_augmentation_data") == ""  # current: no flag
    other = {**run, "results_hash": "0" * 16}
    assert "would train differently" in stale_reason(other, "smoke", "04_zo1_zo2_augmentation_data")
    old = {k: v for k, v in run.items() if k != "results_hash"}  # a report from before the hash existed
    assert "no results hash" in stale_reason(old, "smoke", "04_zo1_zo2_augmentation_data")
