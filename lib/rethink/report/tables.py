"""A report's tables: ours beside the papers' numbers, the gains per cell, the checkpoints' own numbers, the gates
of every compared arm and the settings a notebook names; a number that does not exist shows as a dash with a
footnote (Readable)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..study.effects import arm_text, final_metric
from .figures import mean_ci_text
from .words import finding_name


def paper_comparison(final: pd.DataFrame, paper: dict[str, dict], by: str = "schedule") -> pd.DataFrame:
    """Ours (mean ± 95% CI half-width over seeds) next to the paper's numbers: one row per value of `by`,
    columns (arm, source). `paper` maps arm -> {value of by: number}; a cell one side lacks shows —."""
    ours = final.groupby([by, "arm"]).value.apply(mean_ci_text).unstack("arm")
    columns = {}
    for arm in ours.columns:
        columns[(arm, "ours")] = ours[arm]
        if arm in paper:
            columns[(arm, "paper")] = pd.Series({k: f"{v:.1f}" for k, v in paper[arm].items()})
    return pd.DataFrame(columns).rename_axis(by).fillna("—")


def metric_table(results: pd.DataFrame, schedule: float, paper: dict[str, tuple[float, ...]] | None = None,
                 metrics: tuple[str, ...] = ("AP", "AP50", "AP75"), split: str = "val") -> pd.DataFrame:
    """The paper's Table 2 shape: AP, AP50, AP75 per arm at one schedule (mean ± 95% CI) on `split` ('val', or
    'test': the held-out scenes), with the paper's rows."""
    rows = {}
    scenes = {"val": "validation", "test": "held-out"}.get(split, split)
    for metric in metrics:
        final = final_metric(results, metric, split)
        final = final[final.schedule == schedule]
        for arm, values in final.groupby("arm").value:
            rows.setdefault(f"{arm} (ours, {schedule:g}x, {scenes} scenes)", {})[metric] = mean_ci_text(values)
    for arm, numbers in (paper or {}).items():
        rows[f"{arm} (paper)"] = {m: f"{v:.1f}" for m, v in zip(metrics, numbers)}
    return pd.DataFrame(rows).T


def gain_table(gains: pd.DataFrame) -> pd.DataFrame:
    """zo.cell_gains as the paper prints it: mean ± 95% CI half-width per comparison and augmentation
    level (rows) and label fraction (columns)."""
    table = gains.groupby(["comparison", "aug", "label_fraction"]).value.apply(mean_ci_text).unstack("label_fraction")
    return table.rename(columns=lambda f: f"{f:.0%} labels").fillna("—")  # a comparison that did not run there


CHECKPOINT_COLUMNS = {"accuracy": "upstream accuracy (points)", "nn_accuracy": "1-NN probe accuracy (points)",
                      "loss": "pretext loss", "nt_xent": "pretext loss"}


def checkpoint_table(out_dir: str):
    """Each checkpoint's own final numbers on its upstream validation set, from the report's checkpoints.csv (rows:
    checkpoints, columns: its accuracy and 1-NN probe in points, its pretext loss); empty where the results were
    saved without it. A number a checkpoint does not have (a supervised one has no 1-NN probe) is missing."""
    path = Path(out_dir) / "checkpoints.csv"
    if not path.is_file():  # results saved before checkpoints.csv existed
        print(f"(no {path}: the checkpoints' own numbers were not saved with these results)")
        return pd.DataFrame(index=pd.Index([], name="checkpoint"))
    rows = pd.read_csv(path)
    table = rows.pivot(index="checkpoint", columns="metric", values="value").loc[rows.checkpoint.unique()]
    for column in table.columns:
        table[column] = (table[column] * 100).round(1) if "accuracy" in column else table[column].round(3)
    return table.rename(columns=CHECKPOINT_COLUMNS)


class Readable:
    """A table as a reader sees it: a missing number is a dash, and a footnote under the table says what a dash
    means there (IPython shows its _repr_html_)."""

    def __init__(self, table: pd.DataFrame, dash: str):
        self.table, self.dash = table, dash

    def _repr_html_(self) -> str:
        missing = self.table.isna().to_numpy().any()
        html = self.table.astype(object).where(self.table.notna(), "—").to_html()
        return html + (f"<p><small>— {self.dash}</small></p>" if missing else "")


def gates_table(findings: list[dict]):
    """Every compared arm and its gates, one row per arm (the findings that compare it) and one column per gate:
    ✓ or ✗, the worst run's value against the threshold (and its seed), and how many runs failed. As HTML, so that
    every row shows."""
    from IPython.display import HTML

    cells, used = {}, {}
    for f in findings:
        for g in f.get("gates", []):
            arm = arm_text(g["arm"])
            used.setdefault(arm, []).append(finding_name(f))
            number = "" if g["value"] is None else f" worst {g['value']:.3g}" + \
                ("" if g["threshold"] is None else f" vs {g['threshold']:.3g}") + \
                ("" if g.get("worst_seed") is None else f" (seed {g['worst_seed']})")
            runs = f"; {g['failed_runs']} of {g['runs']} runs failed" if not g["passed"] else f" ({g['runs']} runs)"
            why = f" {g['note']}" if not g["passed"] and g["note"] else ""
            cells.setdefault(arm, {})[g["gate"]] = ("✓" if g["passed"] else "✗") + number + why + runs
    if not cells:
        return HTML("<p>No arm was compared.</p>")
    table = pd.DataFrame.from_dict(cells, orient="index").fillna("")
    table.insert(0, "findings", [", ".join(dict.fromkeys(used[arm])) for arm in table.index])
    return HTML(table.rename_axis("arm").to_html())


NOT_SETTINGS = ("criteria", "deviations", "from_results", "out_dir", "results_dir")  # shown elsewhere, or no setting


def parameters_table(settings) -> pd.DataFrame:
    """The settings the notebook read (config.Settings remembers them), one row each, in words: lists joined,
    mappings as key: value. The criteria are in the summary; run.json records every setting."""
    text = lambda v: (", ".join(map(str, v)) if isinstance(v, list) else
                      "; ".join(f"{k}: {w}" for k, w in v.items()) if isinstance(v, dict) else str(v))
    read = getattr(settings, "read", set(settings))
    rows = {k: text(dict.__getitem__(settings, k)) for k in settings if k in read and k not in NOT_SETTINGS}
    return pd.DataFrame({"value": rows}).rename_axis("setting")
