"""A decided verdict through every notebook, training nothing: constructed results rendered by its from_results path.

Each case copies a committed report's tables (results.csv beside run.json, checkpoints.csv, pretraining.csv), writes
into results.csv a per-seed gap of known size between two arms a finding compares, re-renders the notebook from
those tables, and checks the finding's effect, 95% interval, verdict and (where undecided) minimum detectable effect
against values computed here from the gaps alone. The arms and metric of each case are named here from the paper's
claim (docs/protocol.md), not read from the report: a notebook that wires another arm, metric or cell into a verdict
moves its effect away from the constructed one, and the test fails.

An arm is made by copying the other arm's evaluations (same seed, step and split) and adding the seed's gap, so its
training curve, and every gate that reads it, is the other arm's shifted by a constant; where a model is selected on
validation, its test score moves to the step the other arm's was taken at. Every checkpoint's numbers are set to
ones any pre-training gate passes (that gate has tests of its own), so a seed whose real pre-training failed does not
decide a case. Notebook 06's case is ND-2 (ND-1 and ND-3 are utilities, not differences of two arms).
"""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import ENV, ROOT

EVALUATED = ("val", "test")  # the splits a verdict reads; the training and pseudo-label rows are left as they are


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t interval of per-seed values, by hand."""
    values = np.asarray(values, float)
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return values.mean(), values.mean() - half, values.mean() + half


def minimum_detectable(values) -> float:
    """Two-sided 5%, power 80%: (t_0.975 + t_0.8) with n − 1 degrees of freedom, times the per-seed sd over √n."""
    n = len(values)
    return (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * np.std(values, ddof=1) / math.sqrt(n)


def rows_of(results: pd.DataFrame, where: dict) -> pd.Series:
    mask = pd.Series(True, index=results.index)
    for column, value in where.items():
        mask &= results[column].eq(value)
    return mask


def selected(results: pd.DataFrame, metric: str, where: dict) -> pd.Series:
    return rows_of(results, where) & results.metric.eq(metric) & results.split.isin(EVALUATED)


def align_test_steps(results: pd.DataFrame, a: dict, b: dict) -> None:
    """Arm a's held-out test evaluation (every metric) moved, per seed, to the step of arm b's (in place). Where a
    model is selected on validation and scored on test (Newell & Deng), a's validation curve made from b's picks b's
    step, so a's test score has to sit there too; where the two already agree, nothing changes."""
    a_rows, b_rows = rows_of(results, a) & results.split.eq("test"), rows_of(results, b) & results.split.eq("test")
    for seed in results.loc[a_rows, "seed"].unique():
        steps = results.loc[b_rows & results.seed.eq(seed), ["step", "epoch"]].drop_duplicates()
        assert len(steps) == 1, f"{b} has {len(steps)} test steps for seed {seed}"
        results.loc[a_rows & results.seed.eq(seed), ["step", "epoch"]] = steps.iloc[0].to_numpy()


def set_gap(results: pd.DataFrame, metric: str, a: dict, b: dict, gaps: dict[int, float]) -> None:
    """Arm a's `metric` := arm b's at the same seed, step and split, plus the seed's gap (in place)."""
    key = ["seed", "step", "split"]
    align_test_steps(results, a, b)
    a_mask, b_rows = selected(results, metric, a), results[selected(results, metric, b)]
    assert a_mask.any() and len(b_rows), (a, b)
    source = b_rows.set_index(key).value
    assert source.index.is_unique, f"{b} holds more than one run per seed"
    target = pd.MultiIndex.from_frame(results.loc[a_mask, key])
    assert set(target) == set(source.index), f"{a} and {b} were not evaluated at the same steps"
    results.loc[a_mask, "value"] = source.reindex(target).to_numpy() + results.loc[a_mask, "seed"].map(gaps).to_numpy()


def gaps_around(center: float, spread: float, seeds) -> dict[int, float]:
    """Per-seed gaps: center plus spread times a fixed pattern (not symmetric: the mean is not the center)."""
    pattern = (-1.0, 0.5, 1.0, -0.5, 0.25, 0.0, -0.25, 0.75)
    return {int(seed): center + spread * pattern[i] for i, seed in enumerate(sorted(seeds))}


def longest(r):
    return r.schedule.max()


def strongest(r):
    return max(r.aug.unique())


def large_finetuned(r) -> str:
    """ND-2's large model fine-tuned (its other arm is scratch): '<method> (<arch>-<width>)'."""
    arm, = [a for a in r[r.experiment.eq("ND-2")].arm.unique() if not a.startswith("scratch")]
    return arm


def fewest_large(r) -> int:
    return r[r.experiment.eq("ND-2")].label_count.min()


def cell_of(r, arm: str) -> dict:
    """The one (aug, label_fraction) cell in which `arm` was trained."""
    (aug, fraction), = r[r.arm.eq(arm)][["aug", "label_fraction"]].drop_duplicates().itertuples(index=False)
    return {"aug": aug, "label_fraction": fraction}


def pair(a: dict, b: dict, share: float = 1.0) -> tuple[dict, dict, float]:
    """Arm a made from arm b plus `share` times each seed's gap."""
    return a, b, share


# Per notebook, each finding decided: (finding, condition, metric, the pairs as a function of the results, center,
# spread, expected status). Every case's per-seed effect is the constructed gap: ZO-2's change (the gain with all
# labels minus the gain with the fewest) gets +half of it in the first cell and -half in the second. The centers
# sit far from each condition's boundaries (its value and delta in config/protocol.yaml), so the status reads off
# the construction: 0.4 +- 0.2 lies inside |gap| <= 2; -6 +- 0.5 wholly below HE-2's non-inferiority margin of -1;
# ZO-5's 0.5 +- 4 straddles both 0 and its delta of 1. No constructed arm falls under a learned gate's floor.
CASES = {
    "01_he1_he2_schedules": [
        ("HE-1", "gap_longest", "AP", lambda r: [pair({"arm": "pretrained", "schedule": longest(r)},
                                                       {"arm": "scratch", "schedule": longest(r)})], 0.4, 0.2, "met"),
        ("HE-2", "ap75_gap", "AP75", lambda r: [pair({"arm": "scratch", "schedule": longest(r)},
                                                      {"arm": "pretrained", "schedule": longest(r)})], -6.0, 0.5,
         "failed"),
    ],
    "02_he3_less_data": [
        # Every schedule of the smallest fraction moves alike: pre-trained's best schedule is scratch's.
        ("HE-3", "gap_smallest", "AP", lambda r: [pair({"arm": "pretrained", "label_fraction": r.label_fraction.min(),
                                                         "schedule": s},
                                                        {"arm": "scratch", "label_fraction": r.label_fraction.min(),
                                                         "schedule": s}) for s in sorted(r.schedule.unique())],
         12.0, 1.0, "met"),
    ],
    "03_he4_normalization": [
        ("HE-4", "gn_minus_bn", "AP", lambda r: [pair({"arm": "gn"}, {"arm": "bn"})], 4.0, 0.5, "met"),
    ],
    "04_zo1_zo2_augmentation_data": [
        ("ZO-2", "change_strongest", "accuracy", lambda r: [
            pair({"arm": "pretrained", "aug": strongest(r), "label_fraction": r.label_fraction.max()},
                 {"arm": "scratch", "aug": strongest(r), "label_fraction": r.label_fraction.max()}, 0.5),
            pair({"arm": "pretrained", "aug": strongest(r), "label_fraction": r.label_fraction.min()},
                 {"arm": "scratch", "aug": strongest(r), "label_fraction": r.label_fraction.min()}, -0.5)],
         2.5, 0.3, "failed"),
    ],
    "05_zo3_zo5_self_training": [
        # ZO-4: SimCLR's init minus scratch, in the one cell SimCLR was trained in.
        ("ZO-4", "simclr_gain", "accuracy", lambda r: [pair({"arm": "simclr", **cell_of(r, "simclr")},
                                                            {"arm": "scratch", **cell_of(r, "simclr")})],
         -3.0, 0.5, "met"),
        ("ZO-5", "joint_gain", "accuracy", lambda r: [pair({"arm": "pretrained+joint", **cell_of(r, "pretrained+joint")},
                                                           {"arm": "pretrained", **cell_of(r, "pretrained+joint")})],
         0.5, 4.0, "undecided"),
    ],
    "06_nd1_nd3_utility": [
        # ND-2: with the fewest labels, the large model fine-tuned minus the small one fine-tuned the same way (ND-1's
        # runs). ND-1 and ND-3 are utilities read off the scratch curve, not differences of two arms: no case.
        ("ND-2", "finetuned_gap", "accuracy", lambda r: [
            pair({"arm": large_finetuned(r), "label_count": fewest_large(r)},
                 {"arm": large_finetuned(r).split(" (")[0], "experiment": "ND-1", "label_count": fewest_large(r)})],
         3.0, 0.5, "met"),
    ],
    "07_nd4_nd5_bl1_zoo": [
        # ND-4: the linear probe (all four stages frozen) minus fine-tuning, per method, averaged over the methods.
        ("ND-4", "probe_gap", "accuracy", lambda r: [
            pair({"arm": m, "experiment": "ND-4", "freeze": 4}, {"arm": m, "experiment": "ND-4", "freeze": 0})
            for m in sorted(r[r.experiment.eq("ND-4") & r.freeze.eq(4)].arm.unique())], -8.0, 1.0, "met"),
    ],
    "08_bl2_iterated_self_training": [
        ("BL-2", "last_minus_teacher", "accuracy", lambda r: [pair({"arm": "round 2"}, {"arm": "teacher (round 0)"})],
         -3.0, 0.4, "failed"),
    ],
}
VERDICT = {"met": "reproduced", "failed": "not reproduced", "undecided": "inconclusive"}


# A render in a process of its own (papermill starts a kernel per notebook): two at a time on two cores.
RENDER = ("import json, sys; from rethink.pipeline.notebooks import run_notebook; "
          "run_notebook(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), cwd=sys.argv[4])")


def render_all(jobs: list[tuple[str, Path, Path]], workers: int = 2) -> dict[str, str]:
    """Each (notebook, results folder, out folder) rendered from results, `workers` at a time; returns the end of
    the output of each render that failed."""
    pending, running, failed = list(jobs), [], {}
    while pending or running:
        while pending and len(running) < workers:
            notebook, given, out = pending.pop(0)
            out.mkdir(parents=True)
            parameters = dict(profile="default", from_results=True, out_dir=str(out), results_dir=str(given))
            log = open(out.parent / f"{notebook}.log", "w")
            command = [sys.executable, "-c", RENDER, str(ROOT / "notebooks" / f"{notebook}.py"), str(out),
                       json.dumps(parameters), str(ROOT)]
            running.append((notebook, log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                            env={**ENV, "OMP_NUM_THREADS": "1"})))
        notebook, log, process = running.pop(0)
        process.wait()
        log.close()
        if process.returncode:
            failed[notebook] = Path(log.name).read_text()[-3000:]
    return failed


def construct(notebook: str, committed: Path, given: Path) -> dict:
    """The committed report's tables in `given`, with each case's gaps written into results.csv and every
    checkpoint's pretext loss and probe set to values any pre-training gate passes; returns, per finding,
    (condition, the gap per seed, the expected status)."""
    given.mkdir(parents=True)
    for table in ("results.csv", "run.json", "checkpoints.csv", "pretraining.csv"):
        if (committed / table).is_file():
            shutil.copy(committed / table, given / table)
    if (given / "checkpoints.csv").is_file():  # every pre-training made to have worked (its gate is tested apart)
        checkpoints = pd.read_csv(given / "checkpoints.csv")
        checkpoints.loc[checkpoints.metric.eq("loss"), "value"] = 0.0
        checkpoints.loc[checkpoints.metric.str.contains("accuracy"), "value"] = 1.0
        checkpoints.to_csv(given / "checkpoints.csv", index=False)
    results = pd.read_csv(given / "results.csv", low_memory=False)
    expected = {}
    for finding, condition, metric, pairs, center, spread, status in CASES[notebook]:
        pairs = pairs(results)
        seeds = sorted(results[selected(results, metric, pairs[0][1])].seed.unique())
        gaps = gaps_around(center, spread, seeds)
        for a, b, share in pairs:
            set_gap(results, metric, a, b, {seed: share * gap for seed, gap in gaps.items()})
        expected[finding] = (condition, gaps, status)
    results.to_csv(given / "results.csv", index=False)
    return expected


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every case constructed, then rendered: notebook -> (findings by id, expected, the failed render's output)."""
    root = tmp_path_factory.mktemp("verdict_paths")
    expected = {nb: construct(nb, ROOT / "reports" / nb, root / nb / "given") for nb in CASES}
    failed = render_all([(nb, root / nb / "given", root / nb / "out") for nb in CASES])
    return {nb: ({f["id"]: f for f in json.loads((root / nb / "out" / "findings.json").read_text())}
                 if nb not in failed else {}, expected[nb], failed.get(nb)) for nb in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(CASES))
def test_constructed_gaps_decide_each_notebooks_verdict(rendered, notebook):
    findings, expected, failure = rendered[notebook]
    assert failure is None, failure
    for finding, (condition, gaps, status) in expected.items():
        judged = next(c for c in findings[finding]["conditions"] if c["name"] == condition)
        per_seed = list(gaps.values())
        mean, low, high = t_interval(per_seed)
        assert judged["n"] == len(per_seed) and judged["tested"], (finding, judged.get("because"))
        assert dict(judged["per_seed"]) == pytest.approx(gaps, abs=1e-6), finding
        assert (judged["estimate"], judged["ci_low"], judged["ci_high"]) == pytest.approx((mean, low, high), abs=1e-6)
        assert judged["status"] == status, (finding, judged["status"], low, high)
        assert judged["primary"] and findings[finding]["verdict"] == VERDICT[status], finding
        if status == "undecided":
            assert judged["power"]["mde"] == pytest.approx(minimum_detectable(per_seed), rel=1e-6), finding
