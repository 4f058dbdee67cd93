"""python -m rethink readme | render | index | verify | exploration | plan | snakemake

  readme   splice the generated findings table into README.md (run by `make study`)
  exploration  write docs/exploration.md from config/exploration.yaml (the exploration's record)
  plan     write docs/seed_plan.md: the confirmation's seeds against the exploration's spread (protocol v2),
           from the exploration's findings.json kept in docs/exploration-results/; written before any confirmatory run
  index    write a profile's index and findings table from the reports there are (after make study PART=...)
  verify   compare each committed findings.json with a rerun's (make verify), byte for byte
  render   re-render every report of a profile from its committed results.csv, training nothing: the
           notebooks run with from_results=True (a change of presentation never costs a retrain), then
           the index and the findings table are written again
  snakemake   snakemake with --rerun-incomplete, after removing a stale lock (a killed run's) when no
           Snakemake process works in this folder: what make study, make smoke and make test run

Everything that trains runs through the Snakefile."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config
from .report.index import exploration_markdown, load_findings, splice_readme, write_index


def render(profile: str, notebooks: list[str] | None = None) -> list[Path]:
    """Re-render the reports of `profile` (all of them, or `notebooks`) from their results.csv."""
    from .pipeline.notebooks import logged, run_notebook

    settings = config.load(profile)
    reports = config.study_dir() / settings["reports_dir"]
    names = notebooks or [nb for nb in settings["notebooks"] if (reports / nb / "results.csv").is_file()]
    if not names:
        raise FileNotFoundError(f"no report of profile {profile!r} under {reports} has a results.csv to render from; "
                                f"run `snakemake --config profile={profile}` first")
    folders = []
    for name in names:
        folder = reports / name
        relative = str(folder.relative_to(config.study_dir()))  # as Snakemake passes it: the report shows no home folder
        if not (folder / "results.csv").is_file():
            raise FileNotFoundError(f"{folder / 'results.csv'} does not exist: nothing to render {name} from")
        print(f"rendering {name} from {folder / 'results.csv'}", flush=True)
        log = config.study_dir() / f"cache/{profile}/logs/render_{name}.log"
        logged(log, run_notebook, str(config.ROOT / "notebooks" / f"{name}.py"), folder,
               dict(profile=profile, from_results=True, out_dir=relative, results_dir=relative),
               cwd=str(config.study_dir()))
        folders.append(folder)
    index(profile)
    return folders


def index(profile: str) -> Path:
    """The index and findings table of `profile` from every report of it that has a findings.json."""
    settings = config.load(profile)
    reports = config.study_dir() / settings["reports_dir"]
    write_index([reports / nb for nb in settings["notebooks"] if (reports / nb / "findings.json").is_file()], reports)
    return reports / "index.html"


def parts(profile: str, check: str | None = None) -> int:
    """Print each part (with its notebooks and, for a split part, its sessions' seeds); with `check`, 0 only when it
    is one of them, else the allowed ones on stderr."""
    settings = config.load(profile)
    names = config.part_names(settings)
    if check is not None:
        if check in names:
            return 0
        print(f"PART must be one of: {' '.join(names)}; got {check!r}", file=sys.stderr)
        return 2
    for name in names:
        notebooks = config.part_notebooks(settings, name)
        part, k = config.session_of(settings, name)
        seeds = sorted({s for nb in notebooks for s in (config.session_seeds(settings, nb, k) if k
                                                        else settings["notebooks"][nb]["seeds"])})
        print(f"{name}: notebooks {', '.join(nb[:2] for nb in notebooks)}; seeds {', '.join(map(str, seeds))}"
              + (f" (session {k} of {config.sessions(settings, part)} of {part})" if k else ""))
    return 0


def verify(profile: str, rerun: Path, part: str | None = None) -> int:
    """Print each report's comparison with the rerun under `rerun` (its reports_dir there); 0 when all reproduced."""
    from .report.verify import compare

    settings = config.load(profile)
    if part in config.session_targets(settings):
        raise SystemExit(f"verify takes a part ({', '.join(config.PARTS)}), not one of its sessions ({part!r}): "
                         f"a session writes no report to compare")
    lines, reproduced, total = compare(config.study_dir() / settings["reports_dir"], rerun / settings["reports_dir"],
                                       config.part_notebooks(settings, part))
    print("\n".join(lines))
    return 0 if reproduced == total else 1


def seed_plan(reports: Path) -> str:
    """docs/seed_plan.md: the default profile's seeds for each finding, against the spread of the exploration's
    findings.json under `reports` (which must be the exploration's: the plan is made before the confirmation)."""
    from .study.plan import plan_markdown, seed_plan as plan_rows

    settings = config.load("default")
    found = load_findings(p.parent for p in sorted(reports.glob("*/findings.json")))
    phases = {f.get("phase") for _, f, _ in found}
    if phases != {"exploration"}:
        raise ValueError(f"the seed plan reads the exploration's reports; {reports} holds {sorted(map(str, phases))}")
    seeds = {f["id"]: settings["notebooks"][folder.name]["seeds"] for folder, f, _ in found}
    commits = sorted({run["git_commit"][:7] for _, _, run in found})
    head = ["# The confirmation's seed plan", "",
            "<!-- Written by `python -m rethink plan` before any confirmatory run; the numbers come from the "
            f"exploration's findings.json (reports made at {', '.join(commits)}) and config/study.yaml. -->", "",
            "Protocol v2 (docs/protocol.md) fixes each finding's seeds before the confirmation runs: enough that the "
            "minimum detectable effect (two-sided 5%, power 80%) at the upper 80% bound of the exploration's sd is at "
            "most δ, within each part's budget of 100 minutes on 2 cores, and never fewer than 5. The sd is that of "
            "the primary condition's per-seed values in the exploration (seeds 0-2, one pre-training per method, so "
            "pre-training noise is not in it: the confirmation's may be larger). The half-width is what a 95% "
            "interval over the chosen seeds would be at that sd.", "", ""]
    return "\n".join(head) + plan_markdown(plan_rows([f for _, f, _ in found], seeds))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["snakemake"]:  # every later argument is Snakemake's own, options included
        from .pipeline.snakemake import run_snakemake
        raise SystemExit(run_snakemake(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m rethink")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("readme", help="splice reports/findings.md into README.md")
    p.add_argument("--findings", default="reports/findings.md")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--smoke-benchmarks", help="the smoke profile's benchmarks folder, if it ran")
    p = sub.add_parser("exploration", help="write docs/exploration.md from config/exploration.yaml")
    p.add_argument("--out", default=str(config.ROOT / "docs" / "exploration.md"))
    p = sub.add_parser("plan", help="write the confirmation's seed plan from the exploration's findings.json")
    p.add_argument("--out", default=str(config.ROOT / "docs" / "seed_plan.md"))
    p.add_argument("--reports", default=str(config.EXPLORATION_RESULTS))
    p = sub.add_parser("render", help="re-render committed reports from their results.csv, training nothing")
    p.add_argument("--profile", default="default")
    p.add_argument("notebooks", nargs="*", help="notebook names (default: every report with a results.csv)")
    p = sub.add_parser("index", help="write a profile's index from the reports there are")
    p.add_argument("--profile", default="default")
    p = sub.add_parser("verify", help="compare committed findings.json with a rerun's, byte for byte")
    p.add_argument("--profile", default="default")
    p.add_argument("--rerun", default="build/verify", help="the folder the rerun ran in")
    p.add_argument("--part", help="only this part's notebooks (a part, or a session of one: he1)")
    p = sub.add_parser("parts", help="list the targets `make study PART=` takes (with --check NAME: fail unless NAME "
                                     "is one, naming the allowed)")
    p.add_argument("--profile", default="default")
    p.add_argument("--check", help="a PART to check")
    sub.add_parser("snakemake", help="snakemake --rerun-incomplete, after removing a killed run's stale lock "
                                     "(every later argument is passed to Snakemake)")
    args = parser.parse_args(argv)
    if args.command == "readme":
        splice_readme(args.findings, args.readme, args.smoke_benchmarks)
    elif args.command == "exploration":
        Path(args.out).write_text(exploration_markdown(config.exploration_record()))
    elif args.command == "plan":
        Path(args.out).write_text(seed_plan(Path(args.reports)))
    elif args.command == "index":
        index(args.profile)
    elif args.command == "parts":
        raise SystemExit(parts(args.profile, args.check))
    elif args.command == "verify":
        raise SystemExit(verify(args.profile, Path(args.rerun), args.part))
    else:
        render(args.profile, args.notebooks)


if __name__ == "__main__":
    main()
