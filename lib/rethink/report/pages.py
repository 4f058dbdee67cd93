"""A report's prose: the answer that opens it (summary_markdown, show_summary), each finding's verdict in words with
its conditions, power and reasons (verdict_markdown), and the deviations from protocol v2."""
from __future__ import annotations

from pathlib import Path

from ..study.effects import arm_text
from .words import (VERDICT_COLOURS, deviation_line, effect_text, finding_name, interval_text, phase_text,
                    reason_text, why_text)


def verdict_badge(verdict: str) -> str:
    """A verdict in its own colour, never wrapped (inline HTML: the reports render Markdown with it)."""
    return f'<span style="color:{VERDICT_COLOURS[verdict]};white-space:nowrap"><b>{verdict}</b></span>'


def gates_summary(finding: dict) -> str:
    """A finding's gates in a few words: all passed, or which arms failed which gate (at the worst run)."""
    failed = [g for g in finding.get("gates", []) if not g["passed"]]
    if not failed:
        return f"all {len(finding.get('gates', []))} passed"
    named = list(dict.fromkeys(f"{arm_text(g['arm'])}: {g['gate']} ({g['failed_runs']} of {g['runs']} runs)"
                               for g in failed))
    return f"{len(failed)} failed ({'; '.join(named[:2])}{f'; {len(named) - 2} more' if len(named) > 2 else ''})"


def summary_markdown(finding: dict, deviations: list[dict] = ()) -> str:
    """A report's answer for one finding, on its first screen: the verdict with its one-line reason, our primary
    effect beside the paper's, the criterion with its values, the power where undecided, how well the checkpoints
    behind its pre-trained arms learned, the gates in one line, the deviations from protocol v2."""
    cell = lambda text: str(text).replace("|", "\\|").replace("\n", " ")
    primary = next(c for c in finding["conditions"] if c["primary"])
    why = why_text(finding, most=1)
    changes = [d["change"] for d in deviations if finding["id"] in d["findings"]]
    rows = [("ours", f"{effect_text(finding)}: {primary['label']} ({finding['n_seeds']} seeds)"),
            ("paper", finding.get("paper_effect") or finding["paper"]),
            ("criterion", finding["criterion"]["text"])]
    if primary["status"] == "undecided":
        rows.append(("to decide it", power_text(primary)))
    checkpoints = list(dict.fromkeys(g["note"] for g in finding.get("gates", []) if g["gate"] == "pretraining"))
    if checkpoints:  # what the pre-trained arms start from: how well each checkpoint learned (its worst seed)
        rows.append(("pre-training", "; ".join(checkpoints)))
    rows += [("gates", gates_summary(finding)), ("deviations from protocol v2", "; ".join(changes) or "none")]
    lines = [f"### {finding_name(finding)}: {verdict_badge(finding['verdict'])}" + (f" — {why}" if why else ""), "",
             f"*{finding['claim']}*", "", "| | |", "|---|---|"] + [f"| **{k}** | {cell(v)} |" for k, v in rows]
    return "\n".join(lines)


def show_summary(findings: list[dict], settings) -> None:
    """The report's first screen: a link back to the index, what the results are, then each finding's answer
    (summary_markdown) with its effect plot, and for the confirmation the exploration's numbers beside its own."""
    from IPython.display import Markdown, display

    from ..report.effect_plots import effect_plot, effect_file, CAPTION
    from ..report import figures
    from .compare import comparison_markdown, exploration_findings

    display(Markdown(f"[← every finding (the index)](../index.html) · These results are the "
                     f"**{phase_text(findings)}**."))
    for finding in findings:
        display(Markdown(summary_markdown(finding, settings["deviations"])))
        figures.save(effect_plot(finding), Path(settings.out_dir) / effect_file(finding),
                     caption=CAPTION.format(**finding))
    comparison = comparison_markdown(findings, exploration_findings(settings.notebook_name))
    if comparison:
        display(Markdown(comparison))


def condition_line(c: dict) -> str:
    """One condition in words: its effect with its interval, what it must be, its status and why."""
    need = f"|·| ≤ {c['value']:g}" if c["op"] == "abs<=" else f"{c['op']} {c['value']:g}"
    need += f", δ {c['delta']:g} ({c['delta_source']})" if c.get("delta") is not None else " (a bound)"
    role = "primary" if c["primary"] else "secondary, Holm-adjusted"
    line = (f"- {c['label']} ({role}): {interval_text(c['estimate'], c['ci_low'], c['ci_high'], c['unit'])}, "
            f"needs {need}: **{c['status']}**")
    if c["status"] == "not tested":
        line += " — " + "; ".join(reason_text(r) for r in c["because"][:3]) + \
                (f"; {len(c['because']) - 3} more" if len(c["because"]) > 3 else "")
    elif c["status"] == "undecided":
        line += f" ({power_text(c)})"
    if c.get("interval") == "pooled cell variances":
        line += " (the interval from the cells' pooled variances: wider than the per-seed means')"
    return line


def verdict_markdown(findings: list[dict]) -> str:
    """A paragraph per finding, written from the computed verdict, its conditions, their gates and power."""
    blocks = []
    for f in findings:
        lines = [f"**{finding_name(f)}: {f['verdict']}** at this scale ({phase_text([f])}, profile `{f['profile']}`). "
                 f"Criterion: {f['criterion']['text']}.", ""]
        lines += [condition_line(c) for c in f["conditions"]]
        if f.get("precondition"):
            p = f["precondition"]
            lines.append(f"- Precondition: {p['label']}: {interval_text(p['estimate'], p['ci_low'], p['ci_high'], '')}"
                         f" needs {p['op']} {p['value']:g}: **{'held' if p['held'] else 'did not hold'}**")
        lines += ["", verdict_sentence(f)]
        if f.get("pretraining_replicates") == 1:
            lines += ["", "One pre-training replicate: every seed fine-tunes the same checkpoint, so pre-training "
                          "noise is not in the interval."]
        for g in f.get("schedule_gains", []):
            where = f" at {g['label_fraction']:.0%} of the data" if "label_fraction" in g else ""
            lines.append(f"{'' if g is not f['schedule_gains'][0] else chr(10)}- {g['arm']}{where}: {g['longest']:g}x − "
                         f"{g['before']:g}x {interval_text(g['estimate'], g['ci_low'], g['ci_high'], 'points')}: "
                         f"{'still gains' if g['still_gains'] else 'no gain shown'} (shown, not judged)")
        for g in f.get("shown", []):
            effect = interval_text(g["estimate"], g["ci_low"], g["ci_high"], g["unit"])
            lines.append(f"{'' if g is not f['shown'][0] else chr(10)}- {g['label']} ({g['n']} seeds): {effect} "
                         f"(shown, not judged)")
        for g in f.get("cell_gains", []):
            lines.append(f"- cell {g['init']} init at {g['aug']} with {g['label_fraction']:.0%} of the labels: "
                         f"{interval_text(g['estimate'], g['ci_low'], g['ci_high'], 'points')} (shown, not judged)")
        lines += ["", f"Paper: {f['paper']}"]
        if f.get("paper_effect"):
            lines += ["", f"The paper's effect against ours: {f['paper_effect']} (paper); {effect_text(f)} (ours)."]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def power_text(condition: dict) -> str:
    """An undecided condition's minimum detectable effect and the seeds that would decide its delta (or bound), at
    the observed spread and at its upper 80% bound."""
    p = condition.get("power") or {}
    if p.get("mde") is None:
        return "one seed: no spread to plan with"
    seeds = lambda n: f"{n} seeds" if n else "more than 10,000 seeds"
    return (f"minimum detectable effect {p['mde']:.2f} {condition['unit']} at {condition['n']} seeds; "
            f"{p['target']:g} would be decided by {seeds(p['seeds_needed'])} at the observed sd ({p['sd']:.2f}), "
            f"{seeds(p['seeds_needed_upper'])} at its upper 80% bound ({p['sd_upper']:.2f})")


def verdict_sentence(finding: dict) -> str:
    """Whether the finding held at this scale, in words, from the computed verdict and its true reason."""
    primary = next(c for c in finding["conditions"] if c["primary"])
    if finding["verdict"] == "reproduced":
        small = (primary.get("delta") is not None and
                 (primary["ci_high"] < primary["value"] + primary["delta"] if primary["op"] == ">"
                  else primary["ci_low"] > primary["value"] - primary["delta"]))
        return ("The finding held at this scale: the primary condition's whole interval meets the criterion, on arms "
                "that passed their validity gates" + (", though the whole interval is smaller than δ, the paper's "
                                                      "smallest effect." if small else "."))
    if finding["verdict"] == "not reproduced":
        return ("The finding did not hold at this scale: the primary condition's whole interval lies short of δ "
                "(any effect in the claimed direction is smaller than the paper's smallest) or beyond its bound, on "
                "arms that passed their validity gates.")
    if finding["verdict"] == "not tested":
        return f"Not tested at this scale: {reason_text(finding['because'])}."
    return f"Undecided at this scale: the primary condition's interval is too wide ({power_text(primary)})."


def deviations_markdown(deviations: list[dict]) -> str:
    """The notebook's recorded deviations from protocol v2, or a line saying there are none. The exploration's own
    changes are in its record (docs/exploration.md)."""
    if not deviations:
        return ("No deviation from protocol v2 is recorded for this notebook. The exploration's changes of design are "
                "in its record, docs/exploration.md.")
    return "\n".join(deviation_line(d) for d in deviations)


GATES_INTRO = ("Every arm a condition compares, and its gates (`rethink.study.gates`, thresholds in the `gates` block "
               "of config/protocol.yaml): ✓ or ✗, the worst run's value against the threshold (and its seed), and how "
               "many of its runs failed. A condition whose arms failed a gate is `not tested`: its numbers say nothing "
               "about the paper.")


def show_closing(findings: list[dict], settings) -> None:
    """How every report ends: the gates of every compared arm, the deviations from protocol v2, the verdicts in
    words, and the settings the notebook read; then the report folder keeps only the figures it shows."""
    from IPython.display import Markdown, display

    from . import figures
    from .tables import gates_table, parameters_table

    display(Markdown("## Validity gates\n\n" + GATES_INTRO))
    display(gates_table(findings))
    display(Markdown("## Deviations from protocol v2\n\n" + deviations_markdown(settings["deviations"])))
    display(Markdown("## Verdicts\n\n" + verdict_markdown(findings)))
    display(Markdown("## Settings of this run\n\nThe settings the notebook read, from config/study.yaml under the "
                     "profile, the parameters cell and papermill; run.json beside this report records every one, "
                     "with the commit and the environment."))
    display(parameters_table(settings))
    figures.prune(settings.out_dir)
