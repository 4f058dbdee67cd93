"""The confirmation's seed plan (protocol v2, docs/protocol.md): for each finding's primary condition, the effect
worth detecting (delta, or a bound's margin), the exploration's per-seed sd and its upper 80% bound, the seeds at
which the minimum detectable effect reaches delta at each, the seeds the config gives the finding's notebook, and
the half-width of the 95% interval to expect with them. Written once, before any confirmatory run, from the
exploration's findings.json (python -m rethink plan)."""
from __future__ import annotations

import math

from scipy import stats


def expected_half_width(sd: float | None, seeds: int) -> float | None:
    """The half-width of a 95% Student-t interval of a mean over `seeds` values of sd `sd`."""
    if sd is None or seeds < 2:
        return None
    return float(stats.t.ppf(0.975, seeds - 1) * sd / math.sqrt(seeds))


def seed_plan(findings: list[dict], seeds_of: dict[str, list[int]]) -> list[dict]:
    """One row per finding: its primary condition's target, the exploration's sd, the seeds needed at it and at its
    upper bound, the seeds chosen (`seeds_of`: finding -> the confirmation's seeds) and the half-widths to expect."""
    rows = []
    for f in findings:
        primary = next(c for c in f["conditions"] if c["primary"])
        power, chosen = primary.get("power") or {}, seeds_of[f["id"]]
        fisher = primary.get("scale") == "fisher_z"  # a correlation's sd is on Fisher's z: no half-width in rho
        rows.append(dict(
            id=f["id"], condition=primary["label"], target=power.get("target"),
            kind="δ" if primary.get("delta") is not None else "bound", unit=primary["unit"],
            sd=power.get("sd"), sd_upper=power.get("sd_upper"), needed=power.get("seeds_needed"),
            needed_upper=power.get("seeds_needed_upper"), seeds=chosen,
            half_width=None if fisher else expected_half_width(power.get("sd"), len(chosen)),
            half_width_upper=None if fisher else expected_half_width(power.get("sd_upper"), len(chosen)),
            bought=power.get("seeds_needed_upper") is not None and len(chosen) >= power["seeds_needed_upper"]))
    return rows


def plan_markdown(rows: list[dict]) -> str:
    """The plan as a Markdown table, with a line per finding the budget cannot buy."""
    number = lambda x, fmt="{:.2f}": "—" if x is None else fmt.format(x)
    seeds = lambda s: f"{s[0]}-{s[-1]} ({len(s)})" if s == list(range(s[0], s[-1] + 1)) else ", ".join(map(str, s))
    lines = ["| finding | primary condition | δ or bound | sd (exploration) | sd, upper 80% bound | seeds for δ at sd | "
             "at the upper bound | seeds chosen | expected half-width (at sd / at the upper bound) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['condition']} | {r['kind']} {number(r['target'], '{:g}')} {r['unit']} | "
                     f"{number(r['sd'])} | {number(r['sd_upper'])} | {number(r['needed'], '{}')} | "
                     f"{number(r['needed_upper'], '{}')} | {seeds(r['seeds'])} | "
                     f"{number(r['half_width'])} / {number(r['half_width_upper'])} |")
    short = [r for r in rows if r["sd"] is not None and not r["bought"]]
    if short:
        lines += ["", "The budget does not buy the seeds that the upper bound of the exploration's sd asks for in "
                      f"{', '.join(r['id'] for r in short)}: their confirmation may end `inconclusive`, with the seeds "
                      "that would decide δ."]
    missing = [r["id"] for r in rows if r["sd"] is None]
    if missing:
        lines += ["", f"No exploration spread for {', '.join(missing)} (not run, or no replicated effect): their "
                      "seeds are the part's."]
    return "\n".join(lines) + "\n"
