"""The tables and figure of `make bench` (benchmarks/bench.py): a figure per device's results, and the table of
docs/guide.md with one column per device measured (every benchmarks/results/*.json), never a typed number."""
from __future__ import annotations

import json
from pathlib import Path

from rethink.core.training.batches import AUG_IMAGES

ROOT = Path(__file__).resolve().parents[1]
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
TODAY = "today: Kornia containers, fp32, per batch"


def figure(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    names = list(result["models"])
    for i, precision in enumerate(("fp32", "bf16")):
        values = [result["models"][n][f"images_per_s {precision}"] for n in names]
        bars = ax.bar([j + 0.4 * i for j in range(len(names))], values, width=0.4, label=precision)
        for bar, n in zip(bars, names):
            ax.annotate(f"{result['models'][n][f'roofline % {precision}']:.0f}%", (bar.get_x() + 0.2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + 0.2 for j in range(len(names))], names, fontsize=8)
    ax.set(title="(a) model forward + backward (label: % of matmul peak)", ylabel="images/s")
    ax.legend()
    batch = result["batch"]
    for ax, key, title in ((axes[1], "training_step_images_per_s", f"(b) whole training step, batch {batch}"),
                           (axes[2], "augmentation_images_per_s", f"(c) augmentation alone, batch {batch}")):
        table = result[key]
        series = list(next(iter(table.values())))
        for name in series:
            ax.plot(list(table), [table[level].get(name, float("nan")) for level in table], marker="o", label=name)
        ax.set(title=title, xlabel="augmentation level", ylabel="images/s", yscale="log")
        ax.legend(fontsize=7)
    fig.suptitle(f"{result['device']} ({result['threads']} threads, torch {result['torch']}): median of "
                 f"{result['rounds']} interleaved rounds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def readme_table(results: list[dict]) -> str:
    """The README's table: one column per device measured (results/*.json), never a typed number."""
    BATCH = results[0]["batch"]
    head = "| images/s | " + " | ".join(r["device"] for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]

    def row(label, get):
        cells = []
        for r in results:
            try:
                value = get(r)
                cells.append(f"{value:,.0f}" if isinstance(value, (int, float)) else str(value))
            except (KeyError, TypeError):
                cells.append("not measured")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for level in ("S1", "S4"):
        row(f"training step {level}, today's path (Kornia containers, fp32, per batch)",
            lambda r, level=level: r["training_step_images_per_s"][level][TODAY])
        row(f"training step {level}, new default (grouped Kornia, precision auto)",
            lambda r, level=level: r["training_step_images_per_s"][level][f"kornia {r['precision_auto']}"])
    for name in (f"kornia_modules, calls of {BATCH}", f"kornia, calls of {BATCH}", f"kornia, calls of {AUG_IMAGES}",
                 f"dali, calls of {AUG_IMAGES}", "torchvision per-sample, 2 workers"):
        row(f"S4 augmentation, {name.replace('kornia_modules', 'Kornia containers').replace('kornia', 'grouped Kornia')}",
            lambda r, name=name: r["augmentation_images_per_s"]["S4"][name])
    for name in results[0]["models"]:
        row(f"{name}, forward + backward, bf16 (% of bf16 matmul peak)",
            lambda r, name=name: f"{r['models'][name]['images_per_s bf16']:,.0f} "
                                 f"({r['models'][name]['roofline % bf16']:.0f}%)")
    row("pseudo-labelling, precision auto", lambda r: r["inference_images_per_s"][f"pseudo-labelling {r['precision_auto']}"])
    row("evaluation, precision auto", lambda r: r["inference_images_per_s"][f"evaluation {r['precision_auto']}"])
    goals = ["", "| target (the speed-up), within one run | " + " | ".join(r["device"] for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for name in results[0]["targets"]:
        cells = [r["targets"].get(name) for r in results]
        goals.append(f"| {name} >= {cells[0]['at_least']:g} | " + " | ".join(
            "not measured" if c is None else f"{c['value']:,.2f} ({'met' if c['met'] else 'missed'})" for c in cells) + " |")
    for r in results:
        p = r.get("parallel_runs")
        if p:
            goals += ["", f"Parallel runs ({r['device']}): {p['runs']} short S4 runs took {p['one process, 2 threads (s)']} s "
                      f"in one process at 2 threads and {p['two processes, 1 thread each (s)']} s as two processes at 1 "
                      f"thread ({p['speed-up']}x); the numbers were {'' if p['numbers identical to the sequential sweep'] else 'not '}"
                      f"identical to the sequential sweep's, so this is {'' if p['adopted'] else 'not '}adopted "
                      f"(it needs >= 1.2x and identical numbers)."]
    return "\n".join(lines + goals)


def splice_readme(results_dir: Path, readme: Path = ROOT / "docs" / "guide.md") -> None:
    results = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block for the benchmark table")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{readme_table(results)}\n{README_END}{tail}")
