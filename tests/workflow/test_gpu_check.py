"""benchmarks/gpu_check.py (`make gpu-check`): its dry run walks every step on the CPU, and its time limit keeps
what is finished."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


@pytest.mark.slow
def test_the_dry_run_walks_every_step_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
                             str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry_run"] and [s["step"] for s in summary["steps"]] == list(gpu_check.STEPS)
    assert all(s["rc"] == 0 and not s["timed_out"] for s in summary["steps"])
    assert summary["steps"][0]["env"]["device_auto"] == "cpu"
    tests = ET.parse(tmp_path / "cuda_tests.xml").getroot().find("testsuite")
    assert int(tests.get("tests")) >= 8 and tests.get("skipped") == tests.get("failures") == tests.get("errors") == "0"
    agreement = json.loads((tmp_path / "agreement.json").read_text())
    assert set(agreement["levels"]) == {"S1", "S4"}
    assert all(set(row) >= {"kornia cpu", "dali cpu", "gap between backends"} for row in agreement["levels"].values())
    bench = json.loads((tmp_path / "bench" / "cpu.json").read_text())
    assert bench["quick"] and set(bench["training_step_images_per_s"]) == {"S1", "S4"} and bench["targets"]
    assert (tmp_path / "bench" / "cpu.png").stat().st_size > 10_000
    for step in summary["steps"][-2:]:  # notebook 04 and the smoke DAG are planned, not run, on the CPU
        assert "-n" in step["commands"][0].split() and "profile=smoke" in step["commands"][0], step
        assert "rule notebook:" in (tmp_path / f"{step['step']}.log").read_text(), step


def test_a_steps_snakemake_benchmarks_come_back(tmp_path, monkeypatch):
    """A Snakemake step runs in its scratch folder; each rule's benchmark file is copied into the output."""
    writes = ("import pathlib; p = pathlib.Path('build/x/benchmarks'); p.mkdir(parents=True); "
              "(p / 'world.tsv').write_text('s')")
    monkeypatch.setattr(gpu_check, "commands", lambda step, out, dry_run, scratch: [[sys.executable, "-c", writes]])
    scratch = tmp_path / "scratch"
    record = gpu_check.run_step("notebook", tmp_path, True, scratch, 60)
    assert record["rc"] == 0 and (tmp_path / "notebook-benchmarks" / "world.tsv").read_text() == "s"
    assert (scratch / "notebook" / "build/x/benchmarks/world.tsv").is_file()  # it ran in the scratch folder


@pytest.mark.slow  # waits out its 8-second limit
def test_the_time_limit_keeps_what_is_finished(tmp_path):
    summary = gpu_check.main(tmp_path, dry_run=True, time_limit=8, steps=("cuda_tests", "bench"))
    first, second = summary["steps"]
    assert first["timed_out"] and first["rc"] is None and (tmp_path / "cuda_tests.log").is_file()
    assert second == {"step": "bench", "rc": None, "skipped": "the time limit was reached"}
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
