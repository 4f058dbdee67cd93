"""A split part's report from its sessions' committed results. A part longer than one working session is split by
seeds (make study PART=nd1, PART=nd2, ...); each session writes its notebooks' result files to
reports/sessions/<notebook>/session<k>/, and they are committed. The part's report (make study PART=nd) gathers
them into one results.csv and renders the notebook from it, training nothing: the run cache, which holds the
sessions' runs and weights, need not survive from one working session to the next."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import config
from .provenance import results_hash
from .records import git_commit

# results.csv and run.json are a session's record; a checkpoint's own numbers are there when its notebook has any.
CHECKPOINT_FILES = ("checkpoints.csv", "pretraining.csv")


def read_session(folder: Path) -> dict:
    """A session's run.json, once its results are there."""
    for name in ("results.csv", "run.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} does not exist: the session has not run here; run it with "
                                    f"`make study PART=<its session>` (python -m rethink parts lists them)")
    return json.loads((folder / "run.json").read_text())


def check_current(folder: Path, run: dict, notebook: str, settings: dict) -> None:
    """A session is still what the checkout would train when core/, the config's `settings` of the notebook for its
    seeds and the notebook's sweep half give the results hash it recorded."""
    now = results_hash({**settings, "seeds": run["parameters"]["seeds"]}, notebook)
    if run.get("results_hash") != now:
        raise ValueError(f"{folder}: the session's results were shaped by other code (core/ {run.get('core_hash')}), "
                         f"settings or sweep than the checkout's (results hash {run.get('results_hash')}, now {now}); "
                         f"run the session again (make study PART=<its session>)")


def assemble(session_dirs, out_dir, notebook: str) -> dict:
    """The sessions' result files of `notebook` gathered into `out_dir` (results.csv in session order; each
    checkpoint's numbers once), with a run.json whose settings are the sessions' with every seed, as a run of the
    whole part would record them, and each session's seeds and commit. Every session must be current (check_current)
    and hold seeds no other one holds."""
    folders = [Path(f) for f in session_dirs]
    if not folders:
        raise ValueError(f"{notebook}: no session to assemble a report from")
    runs = [read_session(folder) for folder in folders]
    profiles = {run["parameters"]["profile"] for run in runs}  # each loaded once: the config is read and checked
    settings = {name: config.notebook_config(config.load(name), notebook, root=".") for name in profiles}
    for folder, run in zip(folders, runs):
        check_current(folder, run, notebook, settings[run["parameters"]["profile"]])
    seeds = [int(s) for run in runs for s in run["parameters"]["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{notebook}: a seed appears in two sessions ({', '.join(map(str, folders))}: "
                         f"{[run['parameters']['seeds'] for run in runs]}); each session trains its own share")
    parameters = {**runs[0]["parameters"], "seeds": sorted(seeds)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pd.concat([pd.read_csv(f / "results.csv") for f in folders], ignore_index=True).to_csv(
        out / "results.csv", index=False)
    for name in CHECKPOINT_FILES:
        frames = [pd.read_csv(f / name) for f in folders if (f / name).is_file()]
        if frames:  # a checkpoint that does not depend on the seed is in every session: once
            pd.concat(frames, ignore_index=True).drop_duplicates().to_csv(out / name, index=False)
        else:
            (out / name).unlink(missing_ok=True)
    run = {k: v for k, v in runs[0].items() if k != "rendered_from_results_at"}
    run.update(parameters={**parameters, "out_dir": str(out), "results_dir": str(out)}, git_commit=git_commit(),
               results_hash=results_hash(parameters, notebook, run["core_hash"]),
               sessions=[dict(folder=str(folder), seeds=session["parameters"]["seeds"], cpu=session.get("cpu"),
                              git_commit=session["git_commit"]) for folder, session in zip(folders, runs)])
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run
