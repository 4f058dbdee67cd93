"""make verify's comparison of committed and rerun findings.json: byte for byte, naming each number that differs."""
from __future__ import annotations

import json

from rethink.report.verify import compare, leaves

FINDINGS = [{"id": "ZO-1", "verdict": "reproduced", "effect": {"estimate": 1.25, "ci_low": 0.5},
             "gates": [{"gate": "converged", "value": 0.4}]},
            {"id": "ZO-2", "verdict": "inconclusive", "effect": {"estimate": -0.1, "ci_low": -1.0}, "gates": []}]


def _write(root, notebook, findings):
    (root / notebook).mkdir(parents=True, exist_ok=True)
    (root / notebook / "findings.json").write_text(json.dumps(findings, indent=2) + "\n")


def test_each_differing_number_is_named_by_its_place(tmp_path):
    assert leaves(FINDINGS)["ZO-1.gates[0].value"] == 0.4 and leaves(FINDINGS)["ZO-2.verdict"] == "inconclusive"
    committed, rerun = tmp_path / "reports", tmp_path / "verify/reports"
    _write(committed, "04_zo", FINDINGS)
    _write(rerun, "04_zo", FINDINGS)
    changed = json.loads(json.dumps(FINDINGS))
    changed[0]["effect"]["estimate"] = 1.3
    changed[1]["verdict"] = "not reproduced"
    _write(committed, "05_zo", FINDINGS)
    _write(rerun, "05_zo", changed)
    _write(committed, "08_bl", FINDINGS)  # never rerun
    lines, reproduced, total = compare(committed, rerun, ["04_zo", "05_zo", "06_nd", "08_bl"])
    assert (reproduced, total) == (1, 3)  # 06 has no committed report: not counted
    assert lines[0] == "04_zo: reproduced, byte for byte" and lines[1] == "05_zo: differs"
    assert "    ZO-1.effect.estimate: 1.25 -> 1.3" in lines and "    ZO-2.verdict: 'inconclusive' -> 'not reproduced'" in lines
    assert lines[-2].startswith("08_bl: not rerun") and lines[-1] == "1 of 3 reports reproduced"
    # The same numbers written differently (a key order, an indent) are not the same bytes.
    (rerun / "04_zo" / "findings.json").write_text(json.dumps(FINDINGS) + "\n")
    lines, reproduced, _ = compare(committed, rerun, ["04_zo"])
    assert reproduced == 0 and lines[1:] == ["    the same values, written differently", "0 of 1 reports reproduced"]
