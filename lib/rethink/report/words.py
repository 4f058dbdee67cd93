"""The verdicts in words, shared by the reports, the index and the README: what each verdict means, the one-line
reason a finding got its verdict, an effect with its interval, what the results are (exploration or
confirmation)."""
from __future__ import annotations

from ..study.effects import arm_text

VERDICT_COLOURS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e", "not tested": "#6e7781",
                   "inconclusive": "#9a6700"}
# What each verdict means, in one line: the same words on the index, in the README and in docs/protocol.md.
VERDICT_MEANINGS = {
    "reproduced": "the primary condition's whole 95% interval lies on the paper's side of 0 (or inside its margin), "
                  "on arms that passed their validity gates",
    "not reproduced": "the whole interval lies short of δ, the paper's smallest effect (or outside its margin): any "
                      "effect in the claimed direction is smaller than the paper's",
    "inconclusive": "the interval is too wide to tell: the reason gives the seeds that would decide δ",
    "not tested": "an arm failed a validity gate, the seeds are no independent pre-trainings, or the runs were not "
                  "made: the reason says which",
}


def tally(findings: list[dict]) -> str:
    """"3 reproduced · 2 not reproduced · 6 inconclusive · 5 not tested", in that order."""
    counts = {v: sum(f["verdict"] == v for f in findings) for v in VERDICT_MEANINGS}
    return " · ".join(f"{n} {verdict}" for verdict, n in counts.items())


def finding_name(finding: dict) -> str:
    return finding["id"] + (f" ({finding['panel']})" if finding.get("panel") else "")


def interval_text(estimate: float, low: float, high: float, unit: str) -> str:
    """An effect with its 95% CI; "—" for one that was not measured (a finding whose runs a profile cut)."""
    if estimate != estimate:  # NaN
        return f"— (not measured) {unit}"
    return f"{estimate:+.2f} [{low:+.2f}, {high:+.2f}] {unit}"


def effect_text(finding: dict) -> str:
    e = finding["effect"]
    return interval_text(e["estimate"], e["ci_low"], e["ci_high"], e["unit"])


def why_text(finding: dict, most: int = 2) -> str:
    """The verdict's one-line reason: why a finding is not tested (its true reason: a gate that failed, with its
    worst number; seeds that are no replicates; runs the profile did not make), why it is inconclusive (the seeds
    that would decide δ), why it is not reproduced (short of δ, or outside its bound), or that an effect wholly
    inside (0, δ) is present but small."""
    if finding["verdict"] == "not tested":
        reason = finding.get("because") or {}
        if reason.get("kind") == "gate_failed":
            where = f"{reason['arm']['arm']}: " if reason.get("arm") else ""
            number = (f" (worst {reason['value']:.3g} against {reason['threshold']:.3g})"
                      if reason.get("value") is not None and reason.get("threshold") is not None else "")
            return f"{where}the {reason['gate']} gate failed{number}"
        if reason.get("kind") == "not_run":
            cost = f", about {reason['minutes']:.0f} minutes to run" if reason.get("minutes") else ""
            return f"not run: cut for the budget{cost}"
        if reason.get("kind") == "not_replicated":
            return "not replicated: one pre-training for every seed"
        return ""
    if finding["verdict"] == "inconclusive":
        power = next(c for c in finding["conditions"] if c["primary"]).get("power") or {}
        if power.get("seeds_needed"):
            return (f"about {power['seeds_needed']} seeds would decide δ at this spread "
                    f"({power['seeds_needed_upper'] or 'over 10,000'} at its upper bound)")
        return "no number of seeds would decide it at this spread"
    primary = next(c for c in finding["conditions"] if c["primary"])
    if primary.get("delta") is None:
        return "" if finding["verdict"] == "reproduced" else f"the whole interval lies outside its bound, {primary['value']:g}"
    sign = 1 if primary["op"] == ">" else -1
    short = sign * primary["ci_high" if sign > 0 else "ci_low"] < sign * primary["value"] + primary["delta"]
    if finding["verdict"] == "not reproduced":
        return f"the whole interval lies short of δ = {primary['delta']:g}"
    return f"present, but the whole interval lies short of δ = {primary['delta']:g}" if short else ""


def phase_of(finding: dict) -> str:
    """A finding's phase: the exploration's findings.json files predate the field."""
    return finding.get("phase", "exploration")


def phases(findings: list[dict]) -> dict[str, list[dict]]:
    """The findings by phase, the confirmation's first: a study between its parts has both."""
    grouped: dict[str, list[dict]] = {}
    for f in sorted(findings, key=lambda f: phase_of(f) != "confirmation"):
        grouped.setdefault(phase_of(f), []).append(f)
    return grouped


def phase_text(findings: list[dict]) -> str:
    """What the results are: "exploration (seeds 0-2, one pre-training per method)"; each phase in turn where the
    findings have several ("confirmation (seeds 100-105, ...); exploration (seeds 0-4, ...)")."""
    grouped = phases(findings)
    if len(grouped) > 1:
        return "; ".join(phase_text(group) for group in grouped.values())
    seeds = sorted({s for f in findings for s in f.get("seeds", [])})
    consecutive = seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2
    seed_text = (f"seeds {seeds[0]}-{seeds[-1]}" if consecutive else "seeds " + ", ".join(map(str, seeds))) \
        if seeds else "no seeds"
    replicates = [f.get("pretraining_replicates") for f in findings if f.get("pretraining_replicates") is not None]
    pre = ("" if not replicates else ", one pre-training per method" if min(replicates) == 1
           else f", {min(replicates)} pre-trainings per method")
    return f"{phase_of(findings[0]) if findings else 'exploration'} ({seed_text}{pre})"


def deviation_line(d: dict) -> str:
    """One recorded deviation as a Markdown list item (a report's Deviations section, the README table)."""
    before = "none committed" if d["earlier_reports"] == "none" else f"commit `{d['earlier_reports']}`"
    return f"- **{', '.join(d['findings'])}**: {d['change']}. Why: {d['reason']}. Reports before the change: {before}."


def reason_text(reason: dict) -> str:
    """A `because` in words: which gate failed with its worst number, why the seeds are no replicates, or what a
    profile did not run and what it would cost."""
    if reason["kind"] == "gate_failed":
        where = f"{arm_text(reason['arm'])}: " if reason.get("arm") else ""
        runs = f" in {reason['failed_runs']} of {reason['runs']} runs" if reason.get("runs") else ""
        number = (f" (worst {reason['value']:.3g} against {reason['threshold']:.3g})"
                  if reason.get("value") is not None and reason.get("threshold") is not None else "")
        detail = f": {reason['detail']}" if reason.get("detail") else ""
        return f"{where}the {reason['gate']} gate failed{runs}{number}{detail}"
    if reason["kind"] == "not_run":
        cost = f"; it would take about {reason['minutes']:.0f} minutes" if reason.get("minutes") else ""
        return f"not run: {reason['detail']}{cost}"
    return f"not replicated: {reason['detail']}"
