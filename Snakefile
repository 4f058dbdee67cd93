# The whole study as one DAG:  world, world_hard -> pretrain (upstream), selfsup (each self-supervised method, and
# variants), one checkpoint per seed -> one papermill notebook per finding group -> index.
#   make study                                  (default profile, writes reports/)
#   make study PART=he                          (the targets he, zo, nd: one part of the study, with what it needs)
#   snakemake --cores 2 --config profile=smoke  (any profile; see config/study.yaml)
import re
from pathlib import Path

from snakemake.utils import min_version, validate

# Snakemake parses this file again for every job: the training code (torch) is imported inside the rules.
from rethink.config import (PARTS, notebook_checkpoints, notebook_config, part_notebooks, resolve, session_seeds,
                            session_targets)
from rethink.pipeline.data import build_data, build_world, world_names
from rethink.pipeline.notebooks import assemble_report, logged, run_notebook
from rethink.study.provenance import results_hash

min_version("9.0")

BASE = Path(workflow.basedir)


configfile: str(BASE / "config/study.yaml")


configfile: str(BASE / "config/protocol.yaml")


report: "workflow/report/workflow.rst"


validate(config, str(BASE / "config/study.schema.yaml"))

# `defaults` merged with the profile's overrides, each notebook's shared blocks filled in, validated.
PROFILE = resolve(config)
PROFILE_NAME = PROFILE["name"]
CACHE = f"cache/{PROFILE_NAME}"
REPORTS = PROFILE["reports_dir"]
NOTEBOOKS = list(PROFILE["notebooks"])
WORLD_FILES = [f"{CACHE}/world/{name}.npz" for name in world_names(PROFILE.get("data"))]
# The supervised recipe (min_accuracy is its gate's floor, read by the notebooks, not by the training).
SUPERVISED_PRETRAINING = {"upstream": {k: v for k, v in PROFILE["pretrain"].items()
                                         if k not in ("min_accuracy", "precision")}}
# The checkpoints' compute dtype: their block's own, else the top-level setting.
PRETRAIN_PRECISION = PROFILE["pretrain"].get("precision", PROFILE["precision"])
SELFSUP_PRECISION = PROFILE["selfsup"].get("precision", PROFILE["precision"])
# Newell & Deng's harder world (ND-3): the upstream and downstream classification files, every variation knob
# of `world_hard` turned up.
HARD_WORLD_SPLITS = ["upstream_classify_train", "upstream_classify_val", "downstream_classify_train",
                     "downstream_classify_val", "downstream_classify_test"]
HARD_WORLD_FILES = [f"{CACHE}/world_hard/{name}.npz" for name in HARD_WORLD_SPLITS]
# What makes each world's files. The rules that read a world take its files as ancient (their date does not count)
# and these settings as params: the world is then a dependency by content, so that a later working session that
# builds it again (the run cache is not kept between them) leaves the sessions committed before it alone, and a
# change to a world's settings still reruns what reads it (as a change to its code does, core/ being their input).
WORLD_SETTINGS = dict(spec=PROFILE["world"], data=PROFILE.get("data", {}))
HARD_WORLD_SETTINGS = {**PROFILE["world"], **PROFILE["world_hard"]}
# Self-supervised checkpoints: <method>.pt on the world with the `selfsup` model; <method>_large.pt with
# ND-2's large model; <method>_hard.pt on the hard world.
SELFSUP_METHODS = list(PROFILE["selfsup_methods"])
# GPUs each training job asks a cluster executor for (the slurm profile turns this into --gpus); none on the CPU.
GPUS = 0 if PROFILE["device"] == "cpu" else 1
# The code that makes the world's files (the procedural world, the readers of real datasets).
WORLD_SOURCES = sorted(str(p) for p in (BASE / "lib/rethink/core/data").rglob("*.py"))
LIB_SOURCES = sorted(str(p) for p in (BASE / "lib/rethink").rglob("*.py"))
# The code that decides a run's numbers (the run cache's code hash is this folder too).
TRAINING_SOURCES = sorted(str(p) for p in (BASE / "lib/rethink/core").rglob("*.py"))


# `snakemake --report report.zip`: the site below (the index, every report, figure, results.csv and findings.json,
# linked as in reports/, so that every link resolves inside the zip), and each notebook's result files under its
# paper.
SITE = f"build/{PROFILE_NAME}/site"
PAPERS = {"01": "He et al. 2019", "02": "He et al. 2019", "03": "He et al. 2019", "04": "Zoph et al. 2020",
          "05": "Zoph et al. 2020", "06": "Newell & Deng 2020", "07": "Newell & Deng 2020 and the overview",
          "08": "The overview article"}


def paper_of(wildcards):
    """The report category of a notebook: its paper."""
    return PAPERS.get(wildcards.notebook[:2], "Other notebooks")


rule all:
    input:
        f"{REPORTS}/index.html",
        SITE,


# The study in three parts (make study PART=he|zo|nd): a part's reports with every world file and checkpoint they
# need; `python -m rethink index` then writes the index from the reports there are. A part the profile splits into
# `sessions` has a target per session (he1, he2, ...): session k trains its share of each notebook's seeds, with
# their checkpoints, and writes the notebooks' result files to <reports>/sessions/<notebook>/session<k>/ (committed);
# the part's target then assembles each report from its sessions' results and renders it, training nothing. The run
# cache need not survive between working sessions.
SESSIONS = session_targets(PROFILE)
SESSION_DIR = f"{REPORTS}/sessions"
# The notebooks of a split part (their reports: rule assemble) and the others (rule notebook).
SPLIT = sorted({notebook for part, k in SESSIONS.values() for notebook in part_notebooks(PROFILE, part)})
UNSPLIT = [notebook for notebook in NOTEBOOKS if notebook not in SPLIT]


def one_of(names):
    """A wildcard constraint matching exactly these names (none: a pattern nothing matches)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


for part in PARTS:

    rule:
        name:
            part
        input:
            [f"{REPORTS}/{notebook}/findings.json" for notebook in part_notebooks(PROFILE, part)],


for target, (part, k) in SESSIONS.items():

    rule:
        name:
            target
        input:
            [f"{SESSION_DIR}/{notebook}/session{k}/findings.json" for notebook in part_notebooks(PROFILE, part)],



rule world:
    input:
        WORLD_SOURCES,
    output:
        WORLD_FILES,
    params:
        spec=WORLD_SETTINGS["spec"],
        data=WORLD_SETTINGS["data"],
        device=PROFILE["device"],
    log:
        f"{CACHE}/logs/world.log",
    benchmark:
        f"{REPORTS}/benchmarks/world.tsv"
    run:
        logged(log[0], build_data, params.spec, Path(output[0]).parent, params.data, params.device)


rule world_hard:
    input:
        WORLD_SOURCES,
    output:
        HARD_WORLD_FILES,
    params:
        spec=HARD_WORLD_SETTINGS,
    log:
        f"{CACHE}/logs/world_hard.log",
    benchmark:
        f"{REPORTS}/benchmarks/world_hard.tsv"
    run:
        logged(log[0], build_world, params.spec, out_dir=Path(output[0]).parent, names=HARD_WORLD_SPLITS)


rule pretrain:
    input:
        ancient(WORLD_FILES[:2]),
        TRAINING_SOURCES,
    output:
        f"{CACHE}/checkpoints/{{name}}-seed{{seed}}.pt",
    wildcard_constraints:
        name="|".join(SUPERVISED_PRETRAINING),
        seed=r"\d+",
    params:
        spec=lambda wildcards: {**SUPERVISED_PRETRAINING[wildcards.name], "seed": int(wildcards.seed)},
        world=WORLD_SETTINGS,
        device=PROFILE["device"],
        precision=PRETRAIN_PRECISION,
        aug_backend=PROFILE["aug_backend"],
    threads: PROFILE["threads"]
    resources:
        gpu=GPUS,
    log:
        f"{CACHE}/logs/pretrain_{{name}}-seed{{seed}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/pretrain_{{name}}-seed{{seed}}.tsv"
    run:
        from rethink.core.training.pretrain import pretrain

        logged(log[0], pretrain, Path(input[0]).parent, output[0], device=params.device,
               precision=params.precision, aug_backend=params.aug_backend, threads=threads, **params.spec)


def selfsup_spec(wildcards):
    """The `selfsup` block, the method's options, for the _large variant ND-2's large model, and the seed."""
    large = PROFILE["large_model"] if wildcards.variant == "_large" else {}
    selfsup = {k: v for k, v in PROFILE["selfsup"].items() if k != "precision"}
    return {**selfsup, **PROFILE["selfsup_methods"][wildcards.method], **large, "seed": int(wildcards.seed)}


rule selfsup:
    input:
        lambda wildcards: ancient(HARD_WORLD_FILES[:2] if wildcards.variant == "_hard" else WORLD_FILES[:2]),
        TRAINING_SOURCES,
    output:
        f"{CACHE}/checkpoints/{{method}}{{variant}}-seed{{seed}}.pt",
    wildcard_constraints:
        method="|".join(SELFSUP_METHODS),
        variant="|_large|_hard",
        seed=r"\d+",
    params:
        spec=selfsup_spec,
        world=lambda wildcards: HARD_WORLD_SETTINGS if wildcards.variant == "_hard" else WORLD_SETTINGS,
        device=PROFILE["device"],
        precision=SELFSUP_PRECISION,
    threads: PROFILE["threads"]
    resources:
        gpu=GPUS,
    log:
        f"{CACHE}/logs/selfsup_{{method}}{{variant}}-seed{{seed}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/selfsup_{{method}}{{variant}}-seed{{seed}}.tsv"
    run:
        from rethink.core.training.pretrain import selfsup_pretrain

        logged(log[0], selfsup_pretrain, wildcards.method, Path(input[0]).parent, output[0], device=params.device,
               precision=params.precision, threads=threads, **params.spec)


def notebook_inputs(wildcards):
    """The checkpoints a notebook reads: each of its block's `needs`, one per seed (rethink.config)."""
    return [f"{CACHE}/checkpoints/{name}" for name in notebook_checkpoints(PROFILE, wildcards.notebook)]


# A notebook's report: findings.json, results.csv (both in Snakemake's report), run.json and the page, which is in
# Snakemake's report through the site, where its links resolve.
REPORT_FILES = dict(
    findings=report(f"{REPORTS}/{{notebook}}/findings.json", category=paper_of, subcategory="{notebook}",
                    labels={"file": "findings.json"}),
    results=report(f"{REPORTS}/{{notebook}}/results.csv", category=paper_of, subcategory="{notebook}",
                   labels={"file": "results.csv"}),
    run=f"{REPORTS}/{{notebook}}/run.json",
    html=f"{REPORTS}/{{notebook}}/{{notebook}}.html",
)


rule notebook:
    input:
        source=str(BASE / "notebooks/{notebook}.py"),
        world=WORLD_FILES,
        checkpoints=notebook_inputs,
        code=LIB_SOURCES,
    output:
        **REPORT_FILES,
    wildcard_constraints:
        notebook=one_of(UNSPLIT),
    params:
        parameters=lambda wildcards: notebook_config(PROFILE, wildcards.notebook, f"{REPORTS}/{wildcards.notebook}", root="."),
    threads: PROFILE["threads"]
    resources:
        gpu=GPUS,
    log:
        f"{CACHE}/logs/{{notebook}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/{{notebook}}.tsv"
    run:
        logged(log[0], run_notebook, input.source, Path(output.findings).parent, params.parameters, threads=threads)


def session_parameters(wildcards) -> dict:
    """A session's notebook settings: the notebook's, with its share of the seeds."""
    return {**notebook_config(PROFILE, wildcards.notebook, f"{SESSION_DIR}/{wildcards.notebook}/session{wildcards.k}",
                              root="."),
            "seeds": session_seeds(PROFILE, wildcards.notebook, int(wildcards.k))}


# A session trains; its results.csv, run.json and the checkpoints' numbers beside them are what the part's report
# is assembled from (its findings.json and pages are by-products). So it reruns only for what would change its
# runs: core/ (by date), its settings and its notebook's sweep half (the results hash, by value). A change to the
# study or report code, or to a notebook's prose, re-assembles the part's reports and leaves the sessions, and the
# minutes their benchmark files recorded, alone. The world counts by its settings, not its date (WORLD_SETTINGS);
# a seed's checkpoints are its session's alone: trained again, they rerun it. A session is also checked when its
# part's reports are assembled: one that core/, the config or the sweep no longer give is refused (study.sessions).
rule session:
    input:
        source=ancient(str(BASE / "notebooks/{notebook}.py")),
        world=ancient(WORLD_FILES),
        checkpoints=lambda wildcards: [f"{CACHE}/checkpoints/{name}" for name in notebook_checkpoints(
            PROFILE, wildcards.notebook, session_seeds(PROFILE, wildcards.notebook, int(wildcards.k)))],
        code=TRAINING_SOURCES,
    output:
        findings=f"{SESSION_DIR}/{{notebook}}/session{{k}}/findings.json",
        results=f"{SESSION_DIR}/{{notebook}}/session{{k}}/results.csv",
        run=f"{SESSION_DIR}/{{notebook}}/session{{k}}/run.json",
    wildcard_constraints:
        notebook=one_of(SPLIT),
        k=r"\d+",
    params:
        parameters=session_parameters,
        shaped_by=lambda wildcards: results_hash(session_parameters(wildcards), wildcards.notebook),
        world=WORLD_SETTINGS,
        hard_world=HARD_WORLD_SETTINGS,
    threads: PROFILE["threads"]
    resources:
        gpu=GPUS,
    log:
        f"{CACHE}/logs/{{notebook}}-session{{k}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/{{notebook}}-session{{k}}.tsv"
    run:
        logged(log[0], run_notebook, input.source, Path(output.findings).parent, params.parameters, threads=threads)


def notebook_sessions(wildcards):
    """The run.json of each session of this notebook's part (results.csv and the rest beside it)."""
    return [f"{SESSION_DIR}/{wildcards.notebook}/session{k}/run.json"
            for part, k in SESSIONS.values() if wildcards.notebook in part_notebooks(PROFILE, part)]


# A split part's report, from its sessions' committed results (study.sessions): gathered, then rendered from them.
rule assemble:
    input:
        source=str(BASE / "notebooks/{notebook}.py"),
        sessions=notebook_sessions,
        code=LIB_SOURCES,
    output:
        **REPORT_FILES,
    wildcard_constraints:
        notebook=one_of(SPLIT),
    log:
        f"{CACHE}/logs/{{notebook}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/{{notebook}}.tsv"
    run:
        logged(log[0], assemble_report, input.source, [str(Path(f).parent) for f in input.sessions],
               str(Path(output.findings).parent), PROFILE_NAME)


rule index:
    input:
        expand(f"{REPORTS}/{{notebook}}/findings.json", notebook=NOTEBOOKS),
    output:
        index=f"{REPORTS}/index.html",
        table=f"{REPORTS}/findings.md",
    log:
        f"{CACHE}/logs/index.log",
    run:
        from rethink.report.index import write_index

        logged(log[0], write_index, [Path(f).parent for f in input], Path(output.index).parent)


rule site:
    input:
        index=f"{REPORTS}/index.html",
        findings=expand(f"{REPORTS}/{{notebook}}/findings.json", notebook=NOTEBOOKS),
    output:
        report(directory(SITE), htmlindex="index.html", category="The study",
               labels={"file": "the index, with every report and figure"}),
    log:
        f"{CACHE}/logs/site.log",
    run:
        from rethink.report.site import write_site

        logged(log[0], write_site, [Path(f).parent for f in input.findings], output[0], BASE / "docs")
