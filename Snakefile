# The whole study as one DAG:  world -> pretrain, pretrain_longer, simclr -> one papermill notebook per
# finding group -> index.
#   make study                                  (default profile, writes reports/)
#   snakemake --cores 2 --config profile=smoke  (any profile; see config/study.yaml)
from pathlib import Path

from snakemake.utils import min_version, validate

from rethink.methods import simclr_pretrain
from rethink.pretrain import pretrain
from rethink.report import write_index
from rethink.study import TRAINING_MODULES
from rethink.workflow import WORLD_FILES as WORLD_SPLITS, build_world, logged, run_notebook

min_version("9.0")

BASE = Path(workflow.basedir)


configfile: str(BASE / "config/study.yaml")


validate(config, str(BASE / "config/study.schema.yaml"))

PROFILE_NAME = config["profile"]
PROFILE = config["profiles"][PROFILE_NAME]
CACHE = f"cache/{PROFILE_NAME}"
REPORTS = PROFILE["reports_dir"]
NOTEBOOKS = list(PROFILE["notebooks"])
WORLD_FILES = [f"{CACHE}/world/{name}.npz" for name in WORLD_SPLITS]
CHECKPOINT = f"{CACHE}/checkpoints/upstream.pt"
# Zoph et al.'s stronger "ImageNet++" init (here: the same pre-training run longer) and SimCLR's.
LONGER_CHECKPOINT = f"{CACHE}/checkpoints/upstream_longer.pt"
SUPERVISED_PRETRAINING = {"upstream": PROFILE["pretrain"],
                          "upstream_longer": {**PROFILE["pretrain"], **PROFILE["pretrain_longer"]}}
SIMCLR_CHECKPOINT = f"{CACHE}/checkpoints/simclr.pt"
LIB_SOURCES = sorted(str(p) for p in (BASE / "lib/rethink").glob("*.py"))
TRAINING_SOURCES = [str(BASE / f"lib/rethink/{name}.py") for name in TRAINING_MODULES]


def notebook_params(notebook):
    """Papermill parameters: the notebook's profile block, its pre-registered criteria, and paths."""
    return {
        **PROFILE["notebooks"][notebook],
        **config["criteria"].get(notebook, {}),
        "profile": PROFILE_NAME,
        "device": config["device"],
        "aug_backend": config["aug_backend"],
        "world_dir": f"{CACHE}/world",
        "upstream_checkpoint": CHECKPOINT,
        "longer_checkpoint": LONGER_CHECKPOINT,
        "simclr_checkpoint": SIMCLR_CHECKPOINT,
        "runs_dir": f"{CACHE}/runs",
        "out_dir": f"{REPORTS}/{notebook}",
    }


rule all:
    input:
        f"{REPORTS}/index.html",


rule world:
    input:
        str(BASE / "lib/rethink/world.py"),
    output:
        WORLD_FILES,
    params:
        spec=PROFILE["world"],
    log:
        f"{CACHE}/logs/world.log",
    benchmark:
        f"{REPORTS}/benchmarks/world.tsv"
    run:
        logged(log[0], build_world, params.spec, out_dir=Path(output[0]).parent)


rule pretrain:
    input:
        WORLD_FILES[:2],
        TRAINING_SOURCES,
    output:
        f"{CACHE}/checkpoints/{{name}}.pt",
    wildcard_constraints:
        name="|".join(SUPERVISED_PRETRAINING),
    params:
        spec=lambda wildcards: SUPERVISED_PRETRAINING[wildcards.name],
        device=config["device"],
        aug_backend=config["aug_backend"],
    threads: 2
    log:
        f"{CACHE}/logs/pretrain_{{name}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/pretrain_{{name}}.tsv"
    run:
        logged(log[0], pretrain, Path(input[0]).parent, output[0], device=params.device,
               aug_backend=params.aug_backend, **params.spec)


rule simclr:
    input:
        WORLD_FILES[:2],
        TRAINING_SOURCES,
    output:
        SIMCLR_CHECKPOINT,
    params:
        spec=PROFILE["simclr"],
        device=config["device"],
    threads: 2
    log:
        f"{CACHE}/logs/simclr.log",
    benchmark:
        f"{REPORTS}/benchmarks/simclr.tsv"
    run:
        logged(log[0], simclr_pretrain, Path(input[0]).parent, output[0], device=params.device, **params.spec)


rule notebook:
    input:
        source=str(BASE / "notebooks/{notebook}.py"),
        world=WORLD_FILES,
        checkpoints=[CHECKPOINT, LONGER_CHECKPOINT, SIMCLR_CHECKPOINT],
        code=LIB_SOURCES,
    output:
        findings=f"{REPORTS}/{{notebook}}/findings.json",
        results=f"{REPORTS}/{{notebook}}/results.csv",
        run=f"{REPORTS}/{{notebook}}/run.json",
        html=f"{REPORTS}/{{notebook}}/{{notebook}}.html",
    params:
        parameters=lambda wildcards: notebook_params(wildcards.notebook),
    threads: 2
    log:
        f"{CACHE}/logs/{{notebook}}.log",
    benchmark:
        f"{REPORTS}/benchmarks/{{notebook}}.tsv"
    run:
        logged(log[0], run_notebook, input.source, Path(output.findings).parent, params.parameters)


rule index:
    input:
        expand(f"{REPORTS}/{{notebook}}/findings.json", notebook=NOTEBOOKS),
    output:
        index=f"{REPORTS}/index.html",
        table=f"{REPORTS}/findings.md",
    log:
        f"{CACHE}/logs/index.log",
    run:
        logged(log[0], write_index, [Path(f).parent for f in input], Path(output.index).parent)
