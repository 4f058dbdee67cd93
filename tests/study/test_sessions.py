"""rethink.study.sessions: a split part's report gathered from its sessions' committed results."""
import json

import pandas as pd
import pytest
from rethink import config
from rethink.study.provenance import code_hash, current_hash, results_hash
from rethink.study.sessions import assemble

NOTEBOOK = "06_nd1_nd3_utility"  # a notebook of the default profile's split part (Newell & Deng)


def settings(seeds, **changed):
    """A session's settings as its notebook records them: the default profile's, with its seeds."""
    given = config.notebook_config(config.load("default"), NOTEBOOK, root=".")
    return json.loads(json.dumps({**given, "seeds": list(seeds), **changed}))


def write_session(folder, seeds, *, core=None, checkpoints=(), **changed):
    """A session's record as its notebook writes it: one result row per seed, run.json with its settings, the
    core/ that trained it (default: the checkout's) and the results hash they give."""
    folder.mkdir(parents=True)
    pd.DataFrame([dict(arm="scratch", seed=s, metric="accuracy", value=0.5 + s / 1000) for s in seeds]).to_csv(
        folder / "results.csv", index=False)
    parameters = settings(seeds, **changed)
    core = core or code_hash()
    run = dict(parameters=parameters, git_commit=f"commit-of-{folder.name}", core_hash=core,
               results_hash=results_hash(parameters, NOTEBOOK, core), python="3.11", cpu="a CPU")
    (folder / "run.json").write_text(json.dumps(run))
    if checkpoints:
        pd.DataFrame([dict(checkpoint=name, metric="loss", value=v) for name, v in checkpoints]).to_csv(
            folder / "checkpoints.csv", index=False)
    return folder


def test_the_sessions_rows_are_gathered_in_order_with_every_seed_in_the_settings(tmp_path):
    one = write_session(tmp_path / "session1", [100, 101], checkpoints=[("upstream", 0.3), ("rotation (seed 100)", 1.0),
                                                                          ("rotation (seed 101)", 1.1)])
    two = write_session(tmp_path / "session2", [102], checkpoints=[("upstream", 0.3), ("rotation (seed 102)", 0.9)])
    out = tmp_path / "report"
    run = assemble([one, two], out, NOTEBOOK)
    rows = pd.read_csv(out / "results.csv")
    assert rows.seed.tolist() == [100, 101, 102] and rows.value.tolist() == [0.6, 0.601, 0.602]
    checkpoints = pd.read_csv(out / "checkpoints.csv")
    assert checkpoints.checkpoint.tolist() == ["upstream", "rotation (seed 100)", "rotation (seed 101)",
                                               "rotation (seed 102)"]  # the seed-free checkpoint once
    assert not (out / "pretraining.csv").exists()
    written = json.loads((out / "run.json").read_text())
    assert written == run and written["parameters"]["seeds"] == [100, 101, 102]
    assert written["parameters"]["out_dir"] == written["parameters"]["results_dir"] == str(out)
    # The hash a run of the whole part would record: the config's settings with every seed.
    assert written["results_hash"] == results_hash(settings([100, 101, 102]), NOTEBOOK)
    assert written["core_hash"] == code_hash() and written["python"] == "3.11"
    assert [(s["seeds"], s["git_commit"]) for s in written["sessions"]] == [([100, 101], "commit-of-session1"),
                                                                            ([102], "commit-of-session2")]


def test_the_configured_seeds_in_sessions_give_the_reports_current_hash(tmp_path):
    seeds = config.load("default")["notebooks"][NOTEBOOK]["seeds"]
    folders = [write_session(tmp_path / f"session{k}", [seed]) for k, seed in enumerate(seeds, 1)]
    assert assemble(folders, tmp_path / "report", NOTEBOOK)["results_hash"] == current_hash("default", NOTEBOOK)


def test_a_missing_session_names_its_file_and_the_target_that_makes_it(tmp_path):
    one = write_session(tmp_path / "session1", [100])
    with pytest.raises(FileNotFoundError, match=r"session2/results.csv does not exist.*make study PART="):
        assemble([one, tmp_path / "session2"], tmp_path / "report", NOTEBOOK)
    assert not (tmp_path / "report").exists(), "nothing is written before every session is there"


@pytest.mark.parametrize("change,message", [
    (dict(seeds=[101, 102]), "a seed appears in two sessions"),
    (dict(seeds=[102], core="beef"), r"session2: the session's results were shaped by other code \(core/ beef\)"),
    (dict(seeds=[102], precision="bf16"), "session2: the session's results were shaped by other"),  # a setting
])
def test_sessions_that_do_not_make_one_report_are_refused(tmp_path, change, message):
    one = write_session(tmp_path / "session1", [100, 101])
    two = write_session(tmp_path / "session2", **change)
    with pytest.raises(ValueError, match=message):
        assemble([one, two], tmp_path / "report", NOTEBOOK)
    assert not (tmp_path / "report").exists()
