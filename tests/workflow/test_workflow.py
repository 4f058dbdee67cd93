"""The study as a user runs it: config validation, and the whole Snakemake DAG under the smoke profile."""
import copy
import json
import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from rethink import config as study_config
from rethink.pipeline.notebooks import run_notebook
from rethink.report.verify import compare

from helpers import CONFIG, ENV, ROOT, VERDICTS, failed_job_logs, snakemake


def test_every_profile_of_the_committed_config_resolves():
    for profile in [*CONFIG["profiles"], *study_config.profile_files(CONFIG["profiles"])]:
        resolved = study_config.resolve(copy.deepcopy(CONFIG), profile)
        assert resolved["name"] == profile and resolved["notebooks"]
        for block in resolved["notebooks"].values():
            assert "uses" not in block and "seeds" in block  # the shared blocks are filled in


def test_a_profile_of_ones_own_runs_by_name(tmp_path, monkeypatch):
    """Any name under `profiles`, or a file config/profiles/<name>.yaml, merged over `defaults` like the shipped
    three; it writes its reports under build/<name>/ unless it says otherwise; an unknown name lists the defined."""
    config = copy.deepcopy(CONFIG)
    config["profiles"]["mine"] = {"classification": {"seeds": [7, 9]}}
    mine = study_config.resolve(config, "mine")
    assert mine["name"] == "mine" and mine["reports_dir"] == "build/mine/reports"
    assert mine["notebooks"]["04_zo1_zo2_augmentation_data"]["seeds"] == [7, 9]
    assert study_config.resolve(copy.deepcopy(CONFIG), "default")["reports_dir"] == "reports"
    monkeypatch.setattr(study_config, "PROFILES", tmp_path)
    (tmp_path / "laptop.yaml").write_text("classification: {seeds: [8, 9]}\nreports_dir: elsewhere\n")
    laptop = study_config.load("laptop")
    assert laptop["notebooks"]["05_zo3_zo5_self_training"]["seeds"] == [8, 9] and laptop["reports_dir"] == "elsewhere"
    with pytest.raises(ValueError, match="'nope' is neither .* defined: default, smoke, full, laptop"):
        study_config.load("nope")
    (tmp_path / "bad.yaml").write_text("classification: {seeds: [-1]}\n")
    with pytest.raises(ValueError, match="profile 'bad' of .*bad.yaml is not valid(.|\n)*seeds"):
        study_config.load("bad")
    (tmp_path / "smoke.yaml").write_text("{}\n")
    with pytest.raises(ValueError, match="smoke.yaml: config/study.yaml's `profiles` already has a profile 'smoke'"):
        study_config.load("laptop")


@pytest.mark.slow
def test_snakemake_runs_a_profile_of_ones_own(tmp_path):
    """`--config profile=<name>` for a profile added by a --configfile (one in a file of its own, digits, runs whole
    in tests/workflow/test_real_data.py)."""
    override = tmp_path / "mine.yaml"
    override.write_text(yaml.safe_dump({"profiles": {"mine": {"notebooks": {"01_he1_he2_schedules": None}}}}))
    plan = snakemake("-n", "--cores", "2", "--configfile", str(override), "--config", "profile=mine", cwd=tmp_path)
    assert plan.returncode == 0 and "build/mine/reports/02_he3_less_data" in plan.stdout, plan.stderr[-2000:]
    assert "01_he1_he2_schedules" not in plan.stdout


def test_a_profile_overrides_only_what_differs():
    default, smoke = (study_config.resolve(copy.deepcopy(CONFIG), p) for p in ("default", "smoke"))
    assert smoke["world"]["downstream_classify_train"] == CONFIG["profiles"]["smoke"]["world"]["downstream_classify_train"]
    assert smoke["world"]["image_size"] == default["world"]["image_size"] == CONFIG["defaults"]["world"]["image_size"]
    assert smoke["notebooks"]["03_he4_normalization"]["norms"] == default["notebooks"]["03_he4_normalization"]["norms"]
    assert smoke["notebooks"]["04_zo1_zo2_augmentation_data"]["seeds"] == smoke["classification"]["seeds"] != \
        default["classification"]["seeds"]
    full = study_config.resolve(copy.deepcopy(CONFIG), "full")
    assert "06_nd1_nd3_utility" not in full["notebooks"]  # null drops a notebook
    # The self-training settings are written once and reach both notebooks that self-train.
    assert default["notebooks"]["05_zo3_zo5_self_training"]["pseudo_threshold"] == \
        default["notebooks"]["08_bl2_iterated_self_training"]["pseudo_threshold"] == \
        CONFIG["defaults"]["self_training"]["pseudo_threshold"]


def test_the_merge_replaces_lists_and_merges_mappings():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert study_config.merge(base, {"a": {"y": [3]}, "c": 3}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 3}
    assert study_config.merge(base, {"a": None}) == {"b": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # not modified


@pytest.mark.parametrize("path,value,named", [
    (("aug_backend",), "opencv", "aug_backend"),
    (("defaults", "notebooks", "02_he3_less_data", "label_fractions"), [1.0, 0.3, 0.1, 2], "label_fractions"),
    (("defaults", "detection", "aug"), "S9", "aug"),
    (("defaults", "notebooks", "03_he4_normalization", "norms"), ["gn", "layer"], "norms"),
    (("defaults", "notebooks", "03_he4_normalization", "bogus"), 1, "bogus"),  # unknown key
    (("defaults", "notebooks", "03_he4_normalization", "uses"), ["detektion"], "detektion"),  # unknown block
    (("criteria", "HE-3", "catchup_fraction"), 0, "catchup_fraction"),
    (("profiles", "smoke", "world", "texture"), 1.5, "texture"),
    (("profiles", "smoke", "world", "colour"), 0.5, "colour"),  # unknown key in an override
    (("profiles", "smoke", "classification", "seedz"), [0], "seedz"),  # unknown key in a shared block
    (("defaults", "notebooks", "04_zo1_zo2_augmentation_data", "inits"), ["scratch", "imagenet"], "inits"),
    (("defaults", "self_training", "pseudo_threshold"), 1.0, "pseudo_threshold"),
    (("defaults", "notebooks", "05_zo3_zo5_self_training", "label_fractions"), [0.2], "label_fractions"),  # one
    (("defaults", "classification", "epochs_1x"), {"S9": 32}, "epochs_1x"),  # a schedule for no level
    (("defaults", "classification", "epochs_1x"), {"S1": 0}, "epochs_1x"),
    (("criteria", "ZO-5", "aug"), "S7", "aug"),
    (("defaults", "selfsup_methods", "simclr", "temperature"), 0, "temperature"),
    (("defaults", "selfsup_methods", "swav", "clusters"), 8, "clusters"),  # unknown option
    (("defaults", "utility", "label_counts"), [100, 4000], "label_counts"),  # fewer than three
    (("defaults", "utility", "finetune_label_counts"), [100], "finetune_label_counts"),  # one: no change of U
    (("defaults", "selfsup_methods", "swav", "freeze_prototypes_steps"), -1, "freeze_prototypes_steps"),
    (("gates", "utility_max_extrapolated"), 1.5, "utility_max_extrapolated"),
    (("defaults", "notebooks", "07_nd4_nd5_bl1_zoo", "freezes"), [0, 2], "freezes"),  # no linear probe
    (("defaults", "notebooks", "07_nd4_nd5_bl1_zoo", "tasks"), ["classify", "depth"], "tasks"),
    (("defaults", "notebooks", "06_nd1_nd3_utility", "nd_method"), "vae", "nd_method"),
    (("criteria", "ND-4", "conditions"), [{"name": "probe_gap", "op": "<", "value": 0.5, "primary": True,
                                            "delta": 1.0, "delta_source": "x"}], "conditions.0.value"),
    (("defaults", "notebooks", "07_nd4_nd5_bl1_zoo", "findings"), ["ND-9"], "ND-9"),
])
def test_a_bad_config_value_is_rejected_naming_the_key(path, value, named):
    config = copy.deepcopy(CONFIG)
    node = config
    for key in path[:-1]:
        if node.get(key) is None:  # an empty override block
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=named):
        study_config.resolve(config, path[1] if path[0] == "profiles" else "default")


@pytest.mark.slow
def test_snakemake_rejects_a_bad_profile_before_running(tmp_path):
    result = snakemake("-n", "--cores", "1", "--config", "profile=huge", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "profile 'huge' is neither" in output and "config/profiles/huge.yaml" in output
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    result = snakemake("--lint", "--config", "profile=smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.slow
def test_smoke_dag_end_to_end(tmp_path, monkeypatch):
    """The whole DAG in a temporary folder: every report renders and every finding parses. Then each notebook
    alone, as a researcher runs it in JupyterLab: only the profile set, every other setting from the config."""
    result = snakemake("--cores", "2", "--config", "profile=smoke", cwd=tmp_path)
    assert result.returncode == 0, failed_job_logs(result, tmp_path)
    reports = tmp_path / "build/smoke/reports"
    assert (reports / "index.html").read_text().count("<tr>") >= 2
    ids = set()
    notebooks = list(study_config.resolve(copy.deepcopy(CONFIG), "smoke")["notebooks"])
    for notebook in notebooks:
        folder = reports / notebook
        findings = json.loads((folder / "findings.json").read_text())
        assert findings, notebook
        for f in findings:
            ids.add(f["id"])
            assert {"id", "claim", "criterion", "effect", "n_seeds", "paper", "profile", "verdict", "gates",
                    "deviations", "because", "phase", "seeds"} <= set(f)
            assert f["verdict"] in VERDICTS and f["profile"] == "smoke"
            # Smoke runs evaluate once or twice (the converged gate needs 6): nothing in them may decide a finding,
            # and no condition is `failed` on arms that failed a gate.
            assert f["verdict"] == "not tested" and f["gates"], (f["id"], f["verdict"])
            assert all(c["status"] == "not tested" and c["because"] for c in f["conditions"])
            assert f["because"]["kind"] in ("gate_failed", "not_replicated", "not_run")
            assert {"estimate", "ci_low", "ci_high", "unit"} <= set(f["effect"])
        results = pd.read_csv(folder / "results.csv")
        assert {"run_id", "arm", "seed", "step", "split", "metric", "value"} <= set(results.columns)
        run = json.loads((folder / "run.json").read_text())
        assert run["parameters"]["profile"] == "smoke" and run["git_commit"]
        # the whole environment: every installed package, Python, CPU, GPUs and torch's build
        assert {"torch", "kornia", "numpy", "snakemake"} <= set(run["packages"]) and len(run["packages"]) > 50
        assert run["python"] and run["cpu"] and "gpus" in run and run["torch_build"]["version"].startswith("2.14.1")
        assert (folder / f"{notebook}.html").stat().st_size > 10_000
        html = (folder / f"{notebook}.html").read_text()
        # A reader's view: the summary first, code hidden, no progress bars (they went to the rule's log).
        assert "Summary" in html and "records.write_findings(" not in html
        assert "it/s]" not in html and "s/it]" not in html
        assert list(folder.glob("*.png"))
        executed = (folder / f"{notebook}.ipynb").read_text()
        assert executed.count('"image/png"') >= 2  # the figures show in the rendered report, not only on disk
    assert {"HE-1", "HE-2", "HE-3", "HE-4", "ZO-1", "ZO-2", "ZO-3", "ZO-4", "ZO-5", "ND-1", "ND-2", "ND-3", "ND-4",
            "ND-5", "BL-1", "BL-2"} <= ids
    # A pre-training per seed: each pre-trained comparison counts as many checkpoints as seeds.
    replicates = {f["id"]: f["pretraining_replicates"] for notebook in notebooks
                  for f in json.loads((reports / notebook / "findings.json").read_text())}
    assert {replicates[i] for i in ("HE-1", "ZO-1", "ZO-3", "ND-1", "ND-4", "BL-1")} == {2}, replicates
    assert replicates["BL-2"] is None  # from scratch: no pre-training behind it
    assert {p.name for p in (tmp_path / "cache/smoke/checkpoints").glob("upstream-seed*.pt")} == \
        {"upstream-seed0.pt", "upstream-seed1.pt"}
    # The hard world and its checkpoints are built where a profile runs ND-3, and only there (the default profile's
    # case: the test of its three parts).
    smoke = study_config.resolve(copy.deepcopy(CONFIG), "smoke")
    runs_nd3 = smoke["notebooks"]["06_nd1_nd3_utility"]["nd3_hard_world"]
    assert (tmp_path / "cache/smoke/world_hard").is_dir() == runs_nd3
    assert bool(list((tmp_path / "cache/smoke/checkpoints").glob("rotation_hard-seed*.pt"))) == runs_nd3
    # ND-4's linear probe trains at its own probe_lr, fine-tuning at lr (each evaluation records its LR).
    zoo = pd.read_csv(reports / "07_nd4_nd5_bl1_zoo/results.csv")
    lrs = zoo[(zoo.experiment == "ND-4") & (zoo.metric == "lr")].groupby("freeze").value.max()
    assert lrs[4] / lrs[0] == pytest.approx(smoke["notebooks"]["07_nd4_nd5_bl1_zoo"]["probe_lr"] / smoke["utility"]["lr"])
    # Nothing is recomputed when nothing changed.
    again = snakemake("-n", "--cores", "2", "--config", "profile=smoke", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    monkeypatch.setenv("RETHINK_STUDY_DIR", str(tmp_path))  # the cache the DAG filled
    by_hand = ["07_nd4_nd5_bl1_zoo"]  # the one with the most checkpoints (the zoo's, per seed)
    for notebook in by_hand:
        out = tmp_path / "build/lab/smoke" / notebook
        run_notebook(str(ROOT / "notebooks" / f"{notebook}.py"), out, {"profile": "smoke"}, cwd=str(tmp_path))
    # make verify's comparison: each report the same, byte for byte, when run again by hand.
    lines, reproduced, total = compare(reports, tmp_path / "build/lab/smoke", by_hand)
    assert reproduced == total == len(by_hand) and lines[-1] == f"{total} of {total} reports reproduced", lines


@pytest.mark.slow
def test_the_default_profile_plans_three_parts_with_a_pretraining_per_seed(tmp_path):
    default = study_config.resolve(copy.deepcopy(CONFIG), "default")
    plan = snakemake("-n", "--cores", "2", "he", "zo", "nd", "--config", "profile=default", cwd=tmp_path)
    text = plan.stdout + plan.stderr
    assert plan.returncode == 0, text[-2000:]
    nd3 = default["notebooks"]["06_nd1_nd3_utility"]["nd3_hard_world"]  # off: no hard world, no checkpoint of it
    assert ("rule world_hard:" in text) == nd3 and ("rotation_hard-seed" in text) == nd3
    for part, first, last in (("he", "01", "03"), ("zo", "04", "05"), ("nd", "06", "08")):
        block = text.split(f"rule {part}:\n")[1].splitlines()[0]  # the part's job: its input line
        notebooks = [nb for nb in default["notebooks"] if first <= nb[:2] <= last]
        assert all(f"reports/{nb}/findings.json" in block for nb in notebooks), (part, block)
        assert not any(f"reports/{nb}/findings.json" in block for nb in default["notebooks"] if nb not in notebooks)
        for nb in notebooks:  # every checkpoint the part needs, once per seed
            for name in study_config.notebook_checkpoints(default, nb):
                assert f"cache/default/checkpoints/{name}" in text, (part, name)


@pytest.mark.slow
def test_the_slurm_profile_names_real_rules_and_training_asks_for_a_gpu(tmp_path):
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    rules = set(snakemake("--list-rules", "--config", "profile=smoke", cwd=tmp_path).stdout.split())
    assert set(profile["set-resources"]) | set(profile["set-threads"]) <= rules
    target = "build/smoke/reports/05_zo3_zo5_self_training/findings.json"
    for device, gpus in (("cuda", 5), ("cpu", 0)):  # pretrain and simclr (its `needs`) per seed, the notebook
        plan = snakemake("-n", "--cores", "2", target, "--config", "profile=smoke", f"device={device}", cwd=tmp_path)
        assert (plan.stdout + plan.stderr).count("gpu=1") == gpus, plan.stdout[-2000:]


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_what_finished(tmp_path):
    """kill -9 mid-run (power loss, the OOM killer, a closed laptop) leaves Snakemake's lock behind. The next run
    (python -m rethink snakemake, as make study/smoke run it) removes it, keeps every finished output and redoes
    the job that was cut off."""
    import signal

    from rethink.core.training.checkpoints import load_checkpoint

    target = "cache/smoke/checkpoints/upstream-seed0.pt"
    command = [sys.executable, "-m", "rethink", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2", target,
               "--config", "profile=smoke"]
    run = subprocess.Popen(command, cwd=tmp_path, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    log = tmp_path / "cache/smoke/logs/pretrain_upstream-seed0.log"
    deadline = time.monotonic() + 300
    while not log.is_file() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    early = run.poll()  # None while it runs
    assert early in (None, 0), "the run failed before the kill"
    if early is None:
        os.killpg(run.pid, signal.SIGKILL)  # the whole process group: Snakemake and the job it runs
        run.wait()
    if early == 0 or (tmp_path / target).is_file():  # a race this test cannot control: nothing was cut off
        pytest.skip("pre-training finished before the kill could cut it off")
    assert log.is_file(), "the kill came while pre-training ran"
    assert any((tmp_path / ".snakemake/locks").iterdir()), "a killed run leaves its lock"
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache/smoke/world").glob("*.npz")}
    assert finished
    again = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "removing the stale Snakemake lock" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "nothing finished is redone"
    assert load_checkpoint(tmp_path / target)["state_dict"], "the job cut off is redone whole"
    assert not list((tmp_path / "cache/smoke/checkpoints").glob("*.tmp"))


def test_a_live_runs_lock_is_kept(tmp_path):
    from rethink.pipeline.snakemake import run_snakemake, snakemake_running

    lock = tmp_path / ".snakemake/locks/0.input.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("held")

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "snakemake"], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30  # until the child has exec'd: before, its command line is pytest's
        while not snakemake_running(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert snakemake_running(tmp_path) and not snakemake_running(tmp_path.parent)
        assert run_snakemake(["--version"], tmp_path) == 0
        assert lock.is_file(), "another Snakemake works here: its lock stays"
    finally:
        live.kill()
        live.wait()
    assert not snakemake_running(tmp_path)


SPLIT = {"profiles": {"split": {"sessions": {"zo": 2, "nd": 3}}}}  # a profile that splits two parts by seeds


@pytest.mark.parametrize("seeds,n,expected", [([0, 1, 2, 3, 4, 5], 2, [[0, 1, 2], [3, 4, 5]]),
                                              ([0, 1, 2, 3, 4], 2, [[0, 1, 2], [3, 4]]),
                                              ([0, 1, 2, 3, 4], 3, [[0, 1], [2, 3], [4]]),
                                              ([7, 9], 1, [[7, 9]])])
def test_sessions_cut_each_notebooks_seeds_in_order(seeds, n, expected):
    """A split part's session k trains the k-th share of every notebook's seeds: together the sessions hold each
    seed once, in order, the first ones one larger where the seeds do not divide evenly."""
    config = copy.deepcopy(CONFIG)
    config["profiles"]["split"] = {"sessions": {"zo": n}, "classification": {"seeds": seeds}}
    profile = study_config.resolve(config, "split")
    assert [study_config.session_seeds(profile, "04_zo1_zo2_augmentation_data", k)
            for k in range(1, n + 1)] == expected
    assert [t for t in study_config.part_names(profile) if t.startswith("zo")] == \
        ["zo"] + [f"zo{k}" for k in range(1, n + 1)] * (n > 1)


def test_more_sessions_than_seeds_is_an_error_naming_the_key():
    config = copy.deepcopy(CONFIG)
    config["profiles"]["split"] = {"sessions": {"zo": 3}, "classification": {"seeds": [0, 1]}}
    profile = study_config.resolve(config, "split")
    with pytest.raises(ValueError, match=r"sessions\.zo is 3, more than the 2 seeds.*allowed: 1 to 2"):
        study_config.session_seeds(profile, "04_zo1_zo2_augmentation_data", 1)


@pytest.mark.slow
def test_a_session_trains_its_seeds_and_the_part_writes_the_reports_after_every_session(tmp_path):
    """make study PART=zo1: the session jobs of the part's notebooks on the first share of the seeds, with those
    seeds' checkpoints only, and no report; PART=zo: every session, then each report, assembled from the sessions'
    results under the reports' sessions/ folder (no notebook job: nothing is trained for a report)."""
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(SPLIT))
    profile = study_config.resolve({**copy.deepcopy(CONFIG), "profiles": {**CONFIG["profiles"], **SPLIT["profiles"]}},
                                   "split")
    plan = snakemake("-n", "--cores", "2", "zo1", "--configfile", str(tmp_path / "split.yaml"),
                     "--config", "profile=split", cwd=tmp_path)
    text = plan.stdout + plan.stderr
    assert plan.returncode == 0, text[-2000:]
    first = study_config.session_seeds(profile, "05_zo3_zo5_self_training", 1)
    assert "rule notebook:" not in text and text.count("rule session:") == 2
    for seed in profile["classification"]["seeds"]:  # this session's seeds' checkpoints, no other's
        assert (f"simclr-seed{seed}.pt" in text) == (seed in first), seed
    whole = snakemake("-n", "--cores", "2", "zo", "--configfile", str(tmp_path / "split.yaml"),
                      "--config", "profile=split", cwd=tmp_path)
    text = whole.stdout + whole.stderr
    assert whole.returncode == 0 and text.count("rule session:") == 4 and text.count("rule assemble:") == 2
    assert "rule notebook:" not in text
    assert f"{profile['reports_dir']}/sessions/05_zo3_zo5_self_training/session2/results.csv" in text
    # Sessions done in an earlier working session stay done when a later one builds the world again (the run cache
    # is not kept between working sessions, the sessions' results are): only the reports are assembled. A seed's
    # checkpoint trained again reruns the sessions that read it, and only those.
    planned = [o.strip() for line in re.findall(r"^\s*output: (.*)$", text, re.MULTILINE) for o in line.split(",")]
    sessions, cache = [p for p in planned if "/sessions/" in p], [p for p in planned if p.startswith("cache/")]
    assert len(sessions) == 4 * 3 and cache
    world = [p for p in cache if "/world/" in p]
    for path in sessions + world:  # the world built after the sessions ran; their checkpoints not there (a new cache)
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    for path in world:
        os.utime(tmp_path / path, ns=(time.time_ns() + 10**11,) * 2)

    def planned_jobs():
        plan = snakemake("-n", "--cores", "2", "zo", "--configfile", str(tmp_path / "split.yaml"),
                         "--config", "profile=split", cwd=tmp_path)
        assert plan.returncode == 0, (plan.stdout + plan.stderr)[-2000:]
        return plan.stdout + plan.stderr

    text = planned_jobs()
    assert "rule session:" not in text and text.count("rule assemble:") == 2, text[-2000:]
    seed = study_config.session_seeds(profile, "05_zo3_zo5_self_training", 2)[0]
    retrained = tmp_path / f"cache/split/checkpoints/simclr-seed{seed}.pt"
    retrained.parent.mkdir(parents=True)
    retrained.write_text("")
    os.utime(retrained, ns=(time.time_ns() + 2 * 10**11,) * 2)
    # Notebook 05's session 2 reads it: it reruns, with the other checkpoints of its seeds (not there), and so does
    # 04's session 2, which reads their upstream checkpoints. Session 1 of both stays done.
    jobs = planned_jobs().split("\nrule ")
    rerun = sorted(re.search(r"sessions/(\S+?)/findings.json", job)[1] for job in jobs if job.startswith("session:"))
    assert rerun == ["04_zo1_zo2_augmentation_data/session2", "05_zo3_zo5_self_training/session2"], rerun
    listed = subprocess.run([sys.executable, "-m", "rethink", "parts", "--check", "zo9"], capture_output=True,
                            text=True, env=ENV, cwd=tmp_path)
    assert listed.returncode != 0 and "PART must be one of: he zo nd" in listed.stderr
