"""config/study.yaml, resolved: the `defaults` block with one profile's overrides merged in, each
notebook's parameters assembled from the shared blocks it `uses`, and the whole validated against
config/study.schema.yaml before anything runs. The Snakefile and the notebooks both read the config
through here, so a notebook run by hand gets exactly what Snakemake would pass it.

Merging: mappings merge key by key, recursively; a list or a scalar in a profile replaces the default,
and null removes the key (a profile that leaves a notebook out).
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository (the package lives in lib/rethink)
CONFIG = ROOT / "config" / "study.yaml"      # the settings
PROTOCOL = ROOT / "config" / "protocol.yaml"  # what decides a verdict: criteria, gates, deviations
SCHEMA = ROOT / "config" / "study.schema.yaml"
PROFILES = ROOT / "config" / "profiles"       # profiles of one's own: <name>.yaml, merged over `defaults`
EXPLORATION = ROOT / "config" / "exploration.yaml"  # the exploration's record (docs/exploration.md)
EXPLORATION_RESULTS = ROOT / "docs" / "exploration-results"  # its reports' files, <notebook>/ as committed


def merge(base: dict, override: dict) -> dict:
    """`base` with `override` merged in: mappings key by key, None deletes, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check(instance, schema: dict, where: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if any(e.validator != "unevaluatedProperties" for e in errors):  # those follow from the others: noise
        errors = [e for e in errors if e.validator != "unevaluatedProperties"]
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '(top level)'}: {_message(e)}" for e in errors[:10]]
        raise ValueError(f"{where} is not valid against {SCHEMA.relative_to(ROOT)}:\n" + "\n".join(lines))


def _message(error) -> str:
    """A schema error in words; a criterion's conditions need exactly one primary, said so plainly."""
    if error.validator in ("contains", "minContains", "maxContains") and list(error.absolute_path)[-1:] == ["conditions"]:
        count = sum(bool(c.get("primary")) for c in error.instance if isinstance(c, dict))
        return f"exactly one condition must be `primary: true`; {count} are ({error.message.split(' (')[0][:80]})"
    return error.message


def resolve(config: dict, profile: str | None = None) -> dict:
    """The profile `profile` (default: the config's `profile` key) of a loaded config/study.yaml, merged and
    validated: its settings, each notebook's block with its shared blocks filled in, and the top-level
    device, aug_backend, precision and criteria."""
    schema = yaml.safe_load(SCHEMA.read_text())
    _check(config, schema, str(CONFIG.relative_to(ROOT)))
    name = profile or config["profile"]
    profiles = {**config["profiles"], **profile_files(config["profiles"])}
    if name not in profiles:
        raise ValueError(f"profile {name!r} is neither in config/study.yaml's `profiles` nor a file "
                         f"{_shown(PROFILES / f'{name}.yaml')}; defined: {', '.join(profiles)}")
    overrides = profiles[name] or {}
    settings = merge(config["defaults"], overrides)
    if name != "default" and "reports_dir" not in overrides:  # only the default profile writes reports/
        settings["reports_dir"] = f"build/{name}/reports"
    for notebook, block in settings["notebooks"].items():
        block = dict(block)
        shared = {}
        for part in block.pop("uses", []):
            if part not in settings:
                raise ValueError(f"profile {name!r}: notebook {notebook} uses {part!r}, which is not a block of the profile")
            shared.update(settings[part])
        settings["notebooks"][notebook] = {**shared, **block}
    source = CONFIG if name in config["profiles"] else PROFILES / f"{name}.yaml"
    _check(settings, {"$ref": "#/$defs/profile", "$defs": schema["$defs"]}, f"profile {name!r} of {_shown(source)}")
    for notebook, block in settings["notebooks"].items():
        unknown = [f for f in block["findings"] if f not in config["criteria"]]
        if unknown:
            raise ValueError(f"profile {name!r}: notebook {notebook} names findings {unknown} that `criteria` does not "
                             f"define; defined: {', '.join(config['criteria'])}")
        checkpoints_needed(settings, notebook)  # each need known, and the ones ND-2 and ND-3 read named
    return {"name": name, **settings, "device": config["device"], "aug_backend": config["aug_backend"],
            "precision": config.get("precision", "auto"),
            "criteria": config["criteria"], "gates": config["gates"], "deviations": config.get("deviations") or {}}


def profile_files(shipped: dict) -> dict:
    """The profiles of one's own: config/profiles/<name>.yaml, each a mapping of overrides of `defaults`, named
    by its file. A name that config/study.yaml's `profiles` already has is an error (which one would win?)."""
    found = {}
    for path in sorted(PROFILES.glob("*.yaml")):
        where = _shown(path)
        if path.stem in shipped:
            raise ValueError(f"{where}: config/study.yaml's `profiles` already has a profile {path.stem!r}; "
                             f"rename the file")
        overrides = yaml.safe_load(path.read_text())
        if overrides is not None and not isinstance(overrides, dict):
            raise ValueError(f"{where} must hold a mapping of overrides of `defaults` (like a block of `profiles`), "
                             f"not a {type(overrides).__name__}")
        _check(path.stem, {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, f"the file name of {where}")
        found[path.stem] = overrides
    return found


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def raw() -> dict:
    """config/study.yaml and config/protocol.yaml as one mapping, as Snakemake's two configfiles give it."""
    return {**yaml.safe_load(CONFIG.read_text()), **yaml.safe_load(PROTOCOL.read_text())}


def load(profile: str | None = None, overrides: dict | None = None) -> dict:
    """The config resolved for `profile`; `overrides` are top-level keys as `--config` gives them."""
    return resolve({**raw(), **(overrides or {})}, profile)


def study_dir() -> Path:
    """Where the study's cache/ and build/ live for a notebook run by hand: the repository, or the folder
    that RETHINK_STUDY_DIR names (a Snakemake working directory elsewhere)."""
    return Path(os.environ.get("RETHINK_STUDY_DIR", ROOT))


def notebook_config(profile: dict, notebook: str, out_dir: str | None = None, root: str | Path | None = None) -> dict:
    """A notebook's papermill parameters under a resolved profile: its block, its pre-registered criteria,
    the device and the paths of the files it reads, relative to the working directory (Snakemake's is the
    `root` it passes, ".": JupyterLab's is notebooks/; run.json records no home folder). `out_dir` defaults
    to build/lab/<profile>/<notebook>: a notebook run by hand never writes over the committed reports."""
    base = Path(root) if root is not None else study_dir()
    rel = lambda path: os.path.relpath(base / path)
    if notebook not in profile["notebooks"]:
        raise ValueError(f"notebook {notebook!r} has no block in profile {profile['name']!r}; "
                         f"allowed: {', '.join(profile['notebooks'])}")
    cache = f"cache/{profile['name']}"
    block = profile["notebooks"][notebook]
    return {
        **block,
        "notebook_name": notebook,  # not `notebook`: papermill would shadow the notebooks' `notebook` module
        "criteria": {finding: profile["criteria"][finding] for finding in block["findings"]},
        "profile": profile["name"],
        "phase": profile["phase"],
        "device": profile["device"],
        "aug_backend": profile["aug_backend"],
        "precision": block.get("precision", profile["precision"]),  # a block's own wins (config/study.yaml)
        "selfsup_methods": list(profile["selfsup_methods"]),
        "large_arch": profile["large_model"]["arch"],
        "large_width": profile["large_model"]["width"],
        "world_dir": rel(f"{cache}/world"),
        "hard_world_dir": rel(f"{cache}/world_hard"),
        "checkpoints_dir": rel(f"{cache}/checkpoints"),
        "upstream_checkpoint": rel(f"{cache}/checkpoints/{checkpoint_file('upstream')}"),
        "simclr_checkpoint": rel(f"{cache}/checkpoints/{checkpoint_file('simclr')}"),
        "runs_dir": rel(f"{cache}/runs"),
        "results_dir": rel(f"{profile['reports_dir']}/{notebook}"),
        "out_dir": out_dir or rel(f"build/lab/{profile['name']}/{notebook}"),
        "from_results": False,
        # What the validity gates need: their thresholds, the class counts (chance), the pretext tasks' sizes.
        **profile["gates"],
        "pretrain_min_accuracy": profile["pretrain"]["min_accuracy"],
        "n_classes": n_classes(profile, "downstream"),
        "n_upstream_classes": n_classes(profile, "upstream"),
        "selfsup_batch_size": profile["selfsup"]["batch_size"],
        "selfsup_options": {m: {k: v for k, v in options.items() if k not in ("epochs", "lr_drops")}
                            for m, options in profile["selfsup_methods"].items()},
    }


# The study's three parts (the Snakefile's targets he, zo, nd; make study PART=...): the notebooks whose names start
# with these numbers. A part longer than one working session is split by seeds into the profile's `sessions`
# (targets he1, he2, ...: each trains its share of every notebook's seeds, with their checkpoints; the part's
# target then writes the reports from the run cache).
PARTS = {"he": ("01", "02", "03"), "zo": ("04", "05"), "nd": ("06", "07", "08")}


def sessions(profile: dict, part: str) -> int:
    """How many working sessions (seed groups) the profile splits a part into (1: the part's target trains it)."""
    return int(profile.get("sessions", {}).get(part, 1))


def session_targets(profile: dict) -> dict[str, tuple[str, int]]:
    """Every session target of a split part: name (he1, he2, ...) -> (part, its number from 1)."""
    return {f"{part}{k}": (part, k) for part in PARTS if sessions(profile, part) > 1
            for k in range(1, sessions(profile, part) + 1)}


def session_seeds(profile: dict, notebook: str, k: int) -> list[int]:
    """Session k's share of a notebook's seeds: its seeds cut into the part's sessions in order, the first ones
    one seed larger where they do not divide evenly (6 seeds in 2: 3 + 3; 5 in 2: 3 + 2)."""
    part = next(p for p, numbers in PARTS.items() if notebook[:2] in numbers)
    seeds, n = profile["notebooks"][notebook]["seeds"], sessions(profile, part)
    if not 1 <= k <= n:
        raise ValueError(f"part {part!r} has {n} session(s) in profile {profile['name']!r}; got session {k}")
    size, extra = divmod(len(seeds), n)
    if size == 0:
        raise ValueError(f"profile {profile['name']!r}: sessions.{part} is {n}, more than the {len(seeds)} seeds of "
                         f"{notebook}; allowed: 1 to {len(seeds)}")
    start = (k - 1) * size + min(k - 1, extra)
    return list(seeds[start:start + size + (k <= extra)])


def session_of(profile: dict, name: str | None) -> tuple[str | None, int | None]:
    """(part, session number) of a target name: he1 -> ("he", 1); a part (or None) -> (it, None)."""
    return session_targets(profile).get(name, (name, None))


def checkpoint_step(stem: str) -> str:
    """The workflow step (its benchmark file's name) that pre-trains a checkpoint: upstream-seed3 -> its
    pretrain job, rotation_large-seed3 -> its selfsup job (the Snakefile's rules; a stem without a seed too)."""
    return f"{'pretrain' if stem.split('-seed')[0] == 'upstream' else 'selfsup'}_{stem}"


def part_names(profile: dict) -> list[str]:
    """The targets `make study PART=` takes: each part, and each session of a split one."""
    return [*PARTS, *session_targets(profile)]


def part_notebooks(profile: dict, part: str | None) -> list[str]:
    """The notebooks of a part of the study (or of a session of it: he1 is he's) in a resolved profile (every
    notebook for None)."""
    part = session_of(profile, part)[0]
    if part is not None and part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(part_names(profile))}; got {part!r}")
    return [nb for nb in profile["notebooks"] if part is None or nb[:2] in PARTS[part]]


def checkpoint_file(name: str, seed: int | None = None) -> str:
    """A pre-training's file under cache/<profile>/checkpoints: one per seed (protocol v2), `<name>-seed<k>.pt`.
    Without a seed, the template `<name>-seed{seed}.pt` that a run fills with its own seed (runs.sweep)."""
    return f"{name}-seed{{seed}}.pt" if seed is None else f"{name}-seed{int(seed)}.pt"


def notebook_checkpoints(profile: dict, notebook: str, seeds: list[int] | None = None) -> list[str]:
    """The checkpoint files a notebook reads: each checkpoint it needs, pre-trained once per seed of its block
    (or of `seeds`, a session's share)."""
    seeds = profile["notebooks"][notebook]["seeds"] if seeds is None else seeds
    return [checkpoint_file(name, seed) for name in checkpoints_needed(profile, notebook) for seed in seeds]


def checkpoints_needed(profile: dict, notebook: str) -> list[str]:
    """The checkpoints (file stems under cache/<profile>/checkpoints) a notebook's block `needs`, `zoo` expanded
    to every self-supervised method; a notebook that runs ND-2 must need <nd_method>_large, one that runs ND-3
    <nd_method>_hard."""
    block, methods = profile["notebooks"][notebook], list(profile["selfsup_methods"])
    names = [n for need in block.get("needs", []) for n in (methods if need == "zoo" else [need])]
    known = {"upstream", *methods, *(f"{m}{v}" for m in methods for v in ("_large", "_hard"))}
    wanted = [f"{block.get('nd_method')}_large"] * bool(block.get("nd2_label_counts")) + \
             [f"{block.get('nd_method')}_hard"] * bool(block.get("nd3_hard_world"))
    problems = [f"{n!r} is no checkpoint (allowed: upstream, zoo, {', '.join(sorted(known - {'upstream'}))})"
                for n in names if n not in known] + \
               [f"it runs a finding that reads {w!r}: add it to its needs" for w in wanted if w not in names]
    if problems:
        raise ValueError(f"profile {profile['name']!r}, notebook {notebook}'s needs: {'; '.join(problems)}")
    return list(dict.fromkeys(names))


def n_classes(profile: dict, part: str) -> int:
    """The classes of the upstream or downstream set: the real dataset's subset, or the world's."""
    from .core.data.shapes import DOWNSTREAM_CLASSES, UPSTREAM_CLASSES

    classes = profile.get("data", {}).get(part, {}).get("classes")
    return len(classes) if classes else len(UPSTREAM_CLASSES if part == "upstream" else DOWNSTREAM_CLASSES)


# What a run.json from before protocol v2 lacks: the values those runs were made under (the exploration's).
BEFORE_PROTOCOL_V2 = {"phase": "exploration", "min_evals_after_drop": 2, "pretrain_min_accuracy": 0}
RECORDED_EXCLUDED = ("out_dir", "results_dir", "from_results", "criteria")

class Settings(dict):
    """A notebook's settings, read by name: `s.seeds`, `s["seeds"]`. It remembers the names read (`read`), so that a
    report's settings table shows what the notebook used; an unknown name is an error naming the allowed ones."""

    def __init__(self, values: dict):
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "read":
            raise AttributeError(name)
        if name not in self:
            raise AttributeError(f"no setting {name!r}; the notebook has: {', '.join(sorted(self))}")
        return self[name]


def notebook(name: str, namespace: dict) -> Settings:
    """The settings of notebook `name`, once: notebook_parameters as a Settings object."""
    return Settings(notebook_parameters(name, namespace))


# The names every notebook's parameters cell sets (None: from the config).
CELL = ("profile", "from_results", "device", "seeds", "out_dir", "results_dir")


def notebook_parameters(notebook: str, namespace: dict) -> dict:
    """Every parameter of `notebook`, as run: what its parameters cell and papermill set in `namespace`
    (a value of None there means "from the config"), the rest from config/study.yaml under the namespace's
    `profile`. With `from_results`, the settings come from the run.json beside the results (the settings
    that made them), so that a re-rendered report states what was trained."""
    # Rerun in a live kernel, the names a previous call set are still there: they are not "set by hand"
    # unless the parameters cell sets them or their value changed since. Constants (UPPER_CASE) are no parameters.
    previous = next((dict(v) for v in namespace.values() if isinstance(v, Settings)), {})
    given = {k: v for k, v in namespace.items() if not k.startswith("_") and not k.isupper() and v is not None
             and isinstance(v, (str, int, float, bool, list))
             and (k in CELL or k not in previous or previous[k] != v)}
    profile = load(given.get("profile"))
    params = notebook_config(profile, notebook)  # paths under study_dir()
    if given.get("from_results"):
        run_json = Path(given.get("results_dir", params["results_dir"])) / "run.json"
        if not run_json.is_file():
            raise FileNotFoundError(f"from_results: {run_json} does not exist; it is written with results.csv by a "
                                    f"run of the notebook that trains (snakemake, or from_results=False)")
        # The settings that made the results, as recorded; the criteria are always the config's (pre-registered),
        # and a setting the run.json predates (or that no longer exists) keeps the config's value.
        recorded = {**BEFORE_PROTOCOL_V2, **json.loads(run_json.read_text())["parameters"]}
        params.update({k: v for k, v in recorded.items() if k in params and k not in RECORDED_EXCLUDED})
    unknown = sorted(k for k in given if k not in params and k not in ("In", "Out"))
    if unknown:
        raise ValueError(f"{notebook}: unknown parameters {unknown}; allowed: {', '.join(sorted(params))}")
    # Deviations are recorded after the fact: always the config's current list, never an injected one. Protocol
    # v2's deviations concern its confirmation; an exploration report keeps its own (config/exploration.yaml).
    deviations = profile["deviations"].get(notebook, []) if params.get("phase") != "exploration" else []
    return {**params, **{k: given[k] for k in params if k in given}, "deviations": deviations}


def exploration_record() -> dict:
    """config/exploration.yaml: the exploration's deviations and the findings its default profile cut."""
    return yaml.safe_load(EXPLORATION.read_text())


def cut_minutes(finding: str) -> float | None:
    """What running a finding the exploration cut for its budget costs on 2 cores (measured or estimated there),
    for the `not run` reason of a report whose profile does not run it; None when it was never cut."""
    return exploration_record()["cuts"].get(finding, {}).get("minutes")
