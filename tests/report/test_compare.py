"""The exploration beside the confirmation (rethink.report.compare) and HE-4's other normalizations
(rethink.study.he.norm_gaps, norm_exploration_text), on constructed findings and runs."""
import json

import pandas as pd
import pytest

from rethink.report import compare
from rethink.study import he


def condition(name, label, estimate, status="met", n=3):
    return dict(name=name, label=label, estimate=estimate, ci_low=estimate - 1, ci_high=estimate + 1, n=n,
                status=status)


def finding(verdict, conditions, phase, seeds, **extra):
    return dict(id="HE-1", verdict=verdict, conditions=conditions, phase=phase, seeds=seeds, **extra)


EXPLORED = [finding("reproduced", [condition("gap_longest", "pretrained − scratch AP at 6x", -0.2),
                                   condition("gap_shortest", "pretrained − scratch AP at 1x", 3.5)],
                    "exploration", [0, 1, 2])]


def test_each_condition_sits_beside_its_namesake_and_a_changed_label_shows_both():
    now = [finding("inconclusive", [condition("gap_longest", "pretrained − scratch AP at 8x", 0.4, "undecided", 6),
                                    condition("gap_new", "a condition the exploration had not", 1.0, "met", 6)],
                   "confirmation", list(range(100, 106)))]
    rows = compare.comparison_rows(now, EXPLORED).set_index("condition")
    assert rows.loc["verdict", "exploration"] == "reproduced"
    assert rows.loc["verdict", "confirmation"] == "inconclusive"
    both = "pretrained − scratch AP at 6x / pretrained − scratch AP at 8x"
    assert rows.loc[both, "exploration"] == "-0.20 [-1.20, +0.80] (3 seeds): met"
    assert rows.loc[both, "confirmation"] == "+0.40 [-0.60, +1.40] (6 seeds): undecided"
    assert rows.loc["a condition the exploration had not", "exploration"] == "—"
    assert rows.loc["pretrained − scratch AP at 1x", "confirmation"] == "—"  # dropped since: still shown


def test_a_precondition_is_compared_with_whether_it_held():
    pre = lambda held, estimate: dict(label="scratch at S2 − scratch at S1", estimate=estimate, ci_low=estimate - 1,
                                      ci_high=estimate + 1, n=3, held=held)
    old = [dict(EXPLORED[0], precondition=pre(True, 9.0))]
    now = [finding("not tested", EXPLORED[0]["conditions"], "confirmation", [100, 101, 102],
                   precondition=pre(False, 0.5))]
    rows = compare.comparison_rows(now, old).set_index("condition")
    assert rows.loc["scratch at S2 − scratch at S1", "exploration"].endswith(": held")
    assert rows.loc["scratch at S2 − scratch at S1", "confirmation"].endswith(": did not hold")


def test_the_table_is_for_the_confirmation_only():
    assert compare.comparison_markdown(EXPLORED, EXPLORED) == ""  # the exploration's own reports, re-rendered
    now = [dict(EXPLORED[0], phase="confirmation", seeds=[100, 101, 102])]
    table = compare.comparison_markdown(now, EXPLORED)
    assert "exploration (seeds 0-2)" in table and "confirmation (seeds 100-102)" in table
    assert compare.comparison_markdown(now, []) == ""  # a notebook the exploration did not have


def test_the_archive_holds_every_notebooks_exploration():
    for notebook in ["01_he1_he2_schedules", "03_he4_normalization", "08_bl2_iterated_self_training"]:
        findings = compare.exploration_findings(notebook)
        assert findings and all(f.get("phase", "exploration") == "exploration" for f in findings)
        assert not compare.exploration_results(notebook).empty
    assert compare.exploration_findings("09_of_ones_own") == []
    with pytest.raises(FileNotFoundError, match="09_of_ones_own"):
        compare.exploration_results("09_of_ones_own")


def finals(gaps: dict[str, list[float]]) -> pd.DataFrame:
    """Final AP per arm and seed: GN at 30 + seed, each other arm GN plus its per-seed gap."""
    rows = [dict(arm="gn", seed=s, value=30.0 + s) for s in range(3)]
    rows += [dict(arm=arm, seed=s, value=30.0 + s + g) for arm, gs in gaps.items() for s, g in enumerate(gs)]
    return pd.DataFrame(rows)


def test_norm_gaps_compare_each_other_normalization_with_gn_by_seed():
    shown = he.norm_gaps(finals({"none": [1.0, 2.0, 3.0], "bn": [-5.0, -5.0, -5.0]}))
    assert [g["label"] for g in shown] == ["from scratch, none − GN AP"]  # BN is the judged condition
    assert shown[0]["estimate"] == pytest.approx(2.0) and shown[0]["n"] == 3
    # mean 2, sd 1 over 3 seeds: 2 ± t(0.975, 2) / sqrt(3) = 2 ± 4.303 / 1.732
    assert shown[0]["ci_low"] == pytest.approx(2 - 4.302653 / 3 ** 0.5, abs=1e-4)


@pytest.mark.parametrize("gaps, words", [([2.0, 2.5, 3.0], "better than with GroupNorm"),
                                         ([-3.0, -2.5, -2.0], "worse than with GroupNorm"),
                                         ([-1.0, 0.0, 1.5], "as well as with GroupNorm")])
def test_the_exploration_text_says_what_its_numbers_show(gaps, words):
    text = he.norm_exploration_text(finals({"none": gaps, "bn": [-2.0, -2.0, -2.0]}))
    assert words in text and "seeds 0, 1, 2" in text and "VGG-16" in text


def test_the_archived_he4_runs_give_the_text_the_report_shows():
    from rethink.study.effects import final_metric
    explored = final_metric(compare.exploration_results("03_he4_normalization"), "AP")
    assert set(explored.arm) >= {"gn", "bn", "none"}
    assert "none − GN" in he.norm_exploration_text(explored)


def test_archived_findings_are_the_exploration_as_committed():
    data = json.loads((compare.ARCHIVE / "01_he1_he2_schedules" / "findings.json").read_text())
    assert {f["id"] for f in data} == {"HE-1", "HE-2"} and all(f["seeds"] == [0, 1, 2] for f in data)


def test_the_index_says_whether_one_core_made_every_report(tmp_path):
    from pathlib import Path

    from rethink.report.index import code_line

    run = lambda h: {"core_hash": h} if h else {}
    one = [(Path("01_a"), {}, run("abc")), (Path("01_a"), {}, run("abc")), (Path("04_b"), {}, run("abc"))]
    assert code_line(one) == "Training code: every report was made by the same core/, hash `abc`."
    mixed = [(Path("01_a"), {}, run("abc")), (Path("04_b"), {}, run(None)), (Path("05_c"), {}, run("def"))]
    assert code_line(mixed) == ("Training code: the reports were made by different core/ code (its hash: the "
                                "reports) — `abc`: 01; none recorded: 04; `def`: 05.")
    assert "no report records" in code_line([(Path("01_a"), {}, run(None))])


def test_a_split_notebooks_minutes_add_its_sessions(tmp_path):
    from rethink.report.index import laptop_markdown

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name, seconds in [("04_zo1_zo2_augmentation_data-session1", 600), ("04_zo1_zo2_augmentation_data-session2",
                                                                           300), ("04_zo1_zo2_augmentation_data", 60)]:
        (bench / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    for notebook in ("04_zo1_zo2_augmentation_data", "05_zo3_zo5_self_training", "08_bl2_iterated_self_training"):
        (tmp_path / notebook).mkdir()
        pd.DataFrame(dict(metric=["seconds", "seconds"], value=[10.0, 30.0])).to_csv(tmp_path / notebook / "results.csv")
    run_json = tmp_path / "04_zo1_zo2_augmentation_data/run.json"
    run_json.write_text(json.dumps({"parameters": {"phase": "confirmation"}}))
    rows = laptop_markdown(tmp_path).splitlines()
    assert rows[2] == "| 04_zo1_zo2_augmentation_data | 2 | 20 (10-30) | 16.0 |"  # (600 + 300 + 60) / 60
    assert rows[3].endswith("| — |")  # no benchmark file: no minutes
    # The exploration's report beside the confirmation's first sessions: its own notebook job only.
    run_json.write_text(json.dumps({"parameters": {}}))
    assert laptop_markdown(tmp_path).splitlines()[2].endswith("| 1.0 |")


def test_between_the_parts_the_index_counts_each_phase_apart(tmp_path):
    from rethink.report.index import tally_lines
    from rethink.report.words import phase_text

    confirmed = [dict(verdict="reproduced", phase="confirmation", seeds=[100, 101, 102, 103, 104, 105])] * 2
    explored = [dict(verdict="inconclusive", phase="exploration", seeds=[0, 1, 2])]
    assert phase_text(explored + confirmed) == "confirmation (seeds 100-105); exploration (seeds 0-2)"
    assert tally_lines(explored + confirmed) == [
        "confirmation (seeds 100-105): 2 reproduced · 0 not reproduced · 0 inconclusive · 0 not tested.",
        "exploration (seeds 0-2): 0 reproduced · 0 not reproduced · 1 inconclusive · 0 not tested."]
    assert tally_lines(confirmed) == ["2 reproduced · 0 not reproduced · 0 inconclusive · 0 not tested — "
                                      "confirmation (seeds 100-105)."]


def test_a_parts_minutes_count_each_seeds_checkpoint_and_not_the_explorations_one():
    from rethink import config
    from rethink.report.index import part_minutes

    seconds = {"world": 60, "pretrain_upstream": 600, "pretrain_upstream-seed100": 120,
               "01_he1_he2_schedules-session1": 1200, "01_he1_he2_schedules": 60}
    rows = {line.split(" | ")[0].lstrip("| "): line.rsplit(" | ", 1)[1].rstrip(" |")
            for line in part_minutes(config.load("default"), seconds)}
    assert rows["He et al. (01-03), PART=he1 (session 1 of 2)"] == "23.0"  # its session, seed and the world
    assert rows["He et al. (01-03), PART=he2 (session 2 of 2)"] == "not run yet"
    assert rows["He et al. (01-03), PART=he"] == "not run yet"  # a split part counts once all its sessions ran
    seconds.update({"02_he3_less_data-session2": 300})
    rows = {line.split(" | ")[0].lstrip("| "): line.rsplit(" | ", 1)[1].rstrip(" |")
            for line in part_minutes(config.load("default"), seconds)}
    assert rows["He et al. (01-03), PART=he"] == "29.0"  # 60 + 120 + 1200 + 60 + 300 seconds: not the 600
    assert rows["He et al. (01-03), PART=he2 (session 2 of 2)"] == "5.0"  # a later session counts no world
    assert rows["Zoph et al. (04, 05), PART=zo"] == "not run yet"  # He's sessions are not Zoph's
    # The last row counts every step the rows count, once: not the exploration's checkpoint, nor a part between
    # its sessions' exploration notebook job.
    seconds.update({"04_zo1_zo2_augmentation_data": 900})
    assert part_minutes(config.load("default"), seconds)[-1] == "| **every step once** | **29.0** |"
