"""The costing of the confirmation's parts (docs/costing.md) from one-seed probes: a run of each part under the
`probe` profile (config/profiles/probe.yaml: the default profile on seed 900, outside the confirmation's seeds),
whose Snakemake benchmark files give every rule's seconds. A part of n seeds costs its fixed rules (the world
files and each notebook's start-up) once and everything else (each seed's checkpoints and runs) n times:

    python benchmarks/costing.py build/probe/reports/benchmarks --save benchmarks/results/costing

copies the benchmark files it read under --save (so that the table can be rebuilt from the repository) and
prints the tables that docs/costing.md holds between its costing markers (--doc docs/costing.md writes them there).
"""
from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

from rethink import config

BUDGET_MINUTES = 100       # a part, from an empty cache, on 2 cores (DEVELOPERS: one working session)
FIXED_RULES = ("world", "world_hard")
START, END = "<!-- costing:start -->", "<!-- costing:end -->"


def seconds(folder: Path) -> dict[str, float]:
    """Each benchmark file's wall-clock seconds (its `s` column), by rule name with the probe's seed removed."""
    out = {}
    for path in sorted(folder.glob("*.tsv")):
        with path.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        out[path.stem.replace("-seed900", "")] = float(row["s"])
    return out


def part_rules(profile: dict, part: str) -> tuple[list[str], list[str]]:
    """The notebooks of a part and the checkpoints they need (names without seeds)."""
    notebooks = config.part_notebooks(profile, part)
    names = []
    for notebook in notebooks:
        for file in config.notebook_checkpoints(profile, notebook):
            name = file.rsplit("-seed", 1)[0]
            if name not in names:
                names.append(name)
    return notebooks, names


def part_cost(measured: dict[str, float], startup: float, profile: dict, part: str) -> tuple[float, ...]:
    """Seconds of a part: (its world files, its notebooks' start-ups, per seed: its checkpoints, per seed: its runs);
    KeyError naming the rules the probes did not measure."""
    notebooks, names = part_rules(profile, part)
    missing = [r for r in [*notebooks, *map(config.checkpoint_step, names)] if r not in measured]
    if missing:
        raise KeyError(", ".join(missing))
    world = sum(measured[r] for r in FIXED_RULES
                if r in measured and (r == "world" or any(n.endswith("_hard") for n in names)))
    return (world, startup * len(notebooks), sum(measured[config.checkpoint_step(n)] for n in names),
            sum(measured[nb] - startup for nb in notebooks))


def table(measured: dict[str, float], startup: float, seeds: dict[str, int]) -> str:
    profile = config.load("default")
    lines = ["Minutes on 2 cores:", "",
             "| part | notebooks | fixed: world files, notebook start-ups | per seed: checkpoints | per seed: runs "
             "| per seed | seeds planned | at the planned seeds | seeds that fit in 100 minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    costs = {}
    for part in config.PARTS:
        numbers = ", ".join(nb[:2] for nb in config.part_notebooks(profile, part))
        try:
            costs[part] = world, starts, checkpoints, work = part_cost(measured, startup, profile, part)
        except KeyError as missing:
            lines.append(f"| {part} | {numbers} | not probed yet: {missing.args[0]} | | | | {seeds[part]} | | |")
            continue
        fixed, per_seed, n = world + starts, checkpoints + work, seeds[part]
        fit = int((BUDGET_MINUTES * 60 - fixed) // per_seed)
        lines.append(f"| {part} | {numbers} | {fixed / 60:.1f} | {checkpoints / 60:.1f} | {work / 60:.1f} "
                     f"| {per_seed / 60:.1f} | {n} | {(fixed + n * per_seed) / 60:.0f} | {fit} |")
    lines += ["", "The default profile's sessions (`sessions`; the world files counted in a part's first session, each "
                  "session's notebook jobs with a start-up each; the part's report-writing jobs, which train nothing, "
                  "come after its last session):", "",
              "| session (make study PART=) | seeds | minutes |", "|---|---|---|"]
    for name, (part, k) in config.session_targets(profile).items():
        if part in costs:
            world, starts, checkpoints, work = costs[part]
            n = len(config.session_seeds(profile, config.part_notebooks(profile, part)[0], k))
            lines.append(f"| {name} | {n} | {((k == 1) * world + starts + n * (checkpoints + work)) / 60:.0f} |")
    rules = ["| rule (one seed) | seconds |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in measured.items()]
    return "\n".join(lines) + "\n\nEvery rule of the probes (Snakemake's benchmark files):\n\n" + "\n".join(rules)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", type=Path, help="the probe's benchmark folder (its reports_dir/benchmarks)")
    parser.add_argument("--startup", type=float, default=None,
                        help="seconds a notebook takes with every run cached (default: the smallest notebook rule "
                             "that trained nothing, given as --startup-rule)")
    parser.add_argument("--startup-rule", default="04_zo1_zo2_augmentation_data",
                        help="a notebook whose every run came from the cache in the probe: its seconds are a start-up")
    parser.add_argument("--save", type=Path, help="copy the benchmark files read here")
    parser.add_argument("--doc", type=Path, help="write the tables into this file between its costing markers")
    args = parser.parse_args(argv)
    measured = seconds(args.benchmarks)
    startup = args.startup if args.startup is not None else measured[args.startup_rule]
    profile = config.load("default")
    seeds = {part: len(profile["notebooks"][config.part_notebooks(profile, part)[0]]["seeds"]) for part in config.PARTS}
    text = table(measured, startup, seeds) + f"\n\nA notebook's start-up (every run cached): {startup:.0f} s."
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for path in args.benchmarks.glob("*.tsv"):
            shutil.copy2(path, args.save / path.name)
    if args.doc:
        doc = args.doc.read_text()
        head, rest = doc.split(START)
        doc = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
        args.doc.write_text(doc)
    print(text)


if __name__ == "__main__":
    main()
