"""The notebooks as a researcher runs them: their parameters from the config (what the cell sets wins), re-rendering
committed reports from their results.csv, and the jupytext round trip JupyterLab makes."""
import json
from pathlib import Path

import pytest

from rethink import config
from rethink.pipeline.notebooks import run_notebook

from helpers import ROOT



def test_notebook_parameters_come_from_the_config_and_what_is_set_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RETHINK_STUDY_DIR", str(tmp_path))
    profile = config.load("smoke")
    params = config.notebook_parameters("04_zo1_zo2_augmentation_data", {"profile": "smoke", "seeds": None})
    assert params["seeds"] == profile["classification"]["seeds"]  # None: from the config
    assert params["criteria"] == {f: profile["criteria"][f] for f in ("ZO-1", "ZO-2")}  # the notebook's findings
    assert Path(params["out_dir"]).resolve() == tmp_path / "build/lab/smoke/04_zo1_zo2_augmentation_data"
    set_by_hand = config.notebook_parameters("04_zo1_zo2_augmentation_data", {"profile": "smoke", "seeds": [7]})
    assert set_by_hand["seeds"] == [7]
    # Rerun in a live kernel under another profile: the settings object of the first run is no setting by hand.
    namespace = {"profile": "default", "seeds": None}
    namespace["s"] = config.notebook("04_zo1_zo2_augmentation_data", namespace)
    namespace.update(profile="smoke", seeds=None)
    again = config.notebook("04_zo1_zo2_augmentation_data", namespace)
    assert again.epochs_1x == profile["classification"]["epochs_1x"] != config.load("default")["classification"]["epochs_1x"]
    assert again.read == {"epochs_1x"}  # the settings remember what the notebook read
    with pytest.raises(AttributeError, match="no setting 'epoch'; the notebook has: .*epochs_1x"):
        again.epoch
    namespace["lr"] = 0.5  # changed by hand in the live kernel: it wins
    assert config.notebook("04_zo1_zo2_augmentation_data", namespace).lr == 0.5
    with pytest.raises(ValueError, match="unknown parameters \\['sedes'\\]"):
        config.notebook_parameters("04_zo1_zo2_augmentation_data", {"profile": "smoke", "sedes": [7]})
    with pytest.raises(ValueError, match="notebook '09_nope' has no block"):
        config.notebook_parameters("09_nope", {"profile": "smoke"})


def test_from_results_takes_the_settings_that_made_the_results(tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    recorded = {"seeds": [3, 4], "lr": 0.5, "zo1_max_drop": -1.5, "criteria": {"ZO-1": "old"}}
    (folder / "run.json").write_text(json.dumps({"parameters": recorded}))
    params = config.notebook_parameters("04_zo1_zo2_augmentation_data", {
        "profile": "smoke", "from_results": True, "results_dir": str(folder)})
    assert params["seeds"] == [3, 4] and params["lr"] == 0.5 and params["results_dir"] == str(folder)
    # The criteria are always the config's (pre-registered); a setting that no longer exists is dropped; what a
    # run.json from before protocol v2 lacks takes the value those runs were made under.
    assert params["criteria"]["ZO-1"] == config.load("smoke")["criteria"]["ZO-1"] and "zo1_max_drop" not in params
    assert params["phase"] == "exploration" and params["min_evals_after_drop"] == 2
    with pytest.raises(FileNotFoundError, match="run.json does not exist"):
        config.notebook_parameters("04_zo1_zo2_augmentation_data", {
            "profile": "smoke", "from_results": True, "results_dir": str(tmp_path)})


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["04_zo1_zo2_augmentation_data", "07_nd4_nd5_bl1_zoo"])
def test_a_committed_report_renders_from_its_results_with_identical_findings(tmp_path, notebook):
    committed = ROOT / "reports" / notebook
    out = tmp_path / notebook
    run_notebook(str(ROOT / "notebooks" / f"{notebook}.py"), out, dict(
        profile="default", from_results=True, out_dir=str(out), results_dir=str(committed)), cwd=str(ROOT))
    assert (out / "findings.json").read_bytes() == (committed / "findings.json").read_bytes()
    assert (out / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()  # copied, not rewritten
    assert json.loads((out / "run.json").read_text())["rendered_from_results_at"]
    assert (out / f"{notebook}.html").stat().st_size > 10_000
    # The folder holds exactly the figures the notebook saves: no orphan from an earlier version.
    saved = sorted(p.name for p in out.glob("*.png"))
    assert saved and saved == sorted(p.name for p in committed.glob("*.png"))


def test_from_results_without_results_says_how_to_make_them(tmp_path):
    from rethink.study.records import read_results

    with pytest.raises(FileNotFoundError, match="from_results=False, or `snakemake`"):
        read_results(str(tmp_path / "out"), str(tmp_path / "nowhere"))


def test_a_save_from_jupyterlab_round_trips_every_notebook():
    """jupytext.toml's filter: Lab adds metadata on save (widgets, text_representation); none reaches the .py."""
    import jupytext
    from jupytext.config import load_jupytext_configuration_file

    config = load_jupytext_configuration_file(str(ROOT / "jupytext.toml"))
    for path in sorted((ROOT / "notebooks").glob("0*.py")):
        notebook = jupytext.read(path)
        notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        assert jupytext.writes(notebook, fmt="py:percent", config=config) == path.read_text(), path.name


def test_jupyterlab_opens_notebook_sources_as_notebooks():
    import json
    import re

    settings = ROOT / ".jupyter/lab/user-settings/@jupyterlab/docmanager-extension/plugin.jupyterlab-settings"
    text = re.sub(r"^\s*//.*$", "", settings.read_text(), flags=re.M)  # Lab's settings files allow comments
    assert json.loads(text)["defaultViewers"]["python"] == "Jupytext Notebook"
    assert "JUPYTERLAB_SETTINGS_DIR=$(CURDIR)/.jupyter/lab/user-settings" in (ROOT / "Makefile").read_text()
