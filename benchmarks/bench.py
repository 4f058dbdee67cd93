"""`make bench`: what a training step costs on this machine, side by side in one run, against the roofline.

    .venv/bin/python benchmarks/bench.py            # writes benchmarks/results/<device>.json and .png,
                                                    # then the table in docs/guide.md (every results/*.json)
    .venv/bin/python benchmarks/bench.py --readme   # only that table, from the JSON files there

Every comparison is measured in rounds: each candidate runs once per round, in turn, and its median over the
rounds is kept, so that a noisy neighbour on a shared machine slows every candidate alike.

"Today's path" is the training step before its speed-up, kept selectable: Kornia's containers (engine="modules"),
fp32, and a host read of the loss at every step. The new default is the grouped Kornia engine, precision
`auto` (bf16 here when the CPU has AMX or AVX512-BF16) and no per-step host read.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from rethink.core.augment.ladder import LEVELS
from rethink.core.augment.kornia import KorniaAugment
from rethink.core.augment.backends import _Uint8ToKornia, make_augment
from rethink.core.data.tasks import TaskData
from rethink.core.models.detection import detection_loss
from rethink.core.models.nets import build_model
from rethink.core.training.pseudo import teacher_outputs
from rethink.study.outputs import cpu_name
from rethink.core.training.batches import AUG_IMAGES, steps_per_call
from rethink.core.training.hardware import autocast, resolve_device, resolve_precision
from rethink.core.training.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 128
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def measure(candidates: dict, rounds: int = 7, device: str = "cpu") -> dict[str, float]:
    """Median seconds per call of each candidate, the candidates interleaved round by round."""
    times = {name: [] for name in candidates}
    for fn in candidates.values():  # warm-up: first calls build kernels and pipelines
        fn()
    for _ in range(rounds):
        for name, fn in candidates.items():
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_gflops(device: str) -> dict[str, float]:
    """The roofline's ceiling: dense matmul GFLOP/s in fp32 and bf16."""
    n = 2048
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        seconds = measure({name: lambda: a @ b}, rounds=5, device=device)[name]
        out[name] = round(2 * n ** 3 / seconds / 1e9, 1)
    return out


MODELS = {  # name: (build_model kwargs, image size, batch): the study's three networks
    "resnet9 classify 32 px": (dict(arch="resnet9", width=16, num_classes=10), 32, BATCH),
    "detector 48 px": (dict(arch="resnet9", width=16, task="detect", num_classes=10), 48, 32),
    "resnet18 classify 32 px": (dict(arch="resnet18", width=16, num_classes=10), 32, BATCH),
}


def model_step(kwargs: dict, size: int, batch: int, device: str, precision: str):
    """One forward + backward + SGD step of a model on fixed random data (no augmentation)."""
    torch.manual_seed(0)
    model = build_model(**kwargs).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 3, size, size, device=device)
    if kwargs.get("task") == "detect":
        boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0], [24.0, 20.0, 40.0, 44.0]], device=device).expand(batch, 2, 4)
        labels = torch.tensor([1, 3], device=device).expand(batch, 2)
        loss_fn = lambda out: detection_loss(out, boxes, labels, stride=model.head.stride)
    else:
        y = torch.randint(0, 10, (batch,), device=device)
        loss_fn = lambda out: F.cross_entropy(out.float(), y)

    def step():
        with autocast(device, precision):
            loss = loss_fn(model(x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, x, loss_fn, step


def flops_per_image(kwargs: dict, size: int, batch: int, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model, x, loss_fn, _ = model_step(kwargs, size, batch, device, "fp32")
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x)).backward()
    return counter.get_total_flops() / batch


def augmenter(backend: str, level: str, device: str, seed: int = 0):
    """uint8 NHWC -> float NCHW. 'kornia_modules' is the Kornia path before the speed-up (its containers)."""
    if backend == "kornia_modules":
        return _Uint8ToKornia(KorniaAugment(level, 32, seed=seed, engine="modules"))
    return make_augment(backend, level, 32, AUG_IMAGES, device, seed)


def torchvision_peer(level: str, batches: int):
    """The peer: torchvision v2 per-sample transforms in a DataLoader with 2 workers, as a PyTorch user writes it."""
    from torchvision.transforms import v2

    ops = [] if level == "S0" else [v2.RandomHorizontalFlip(), v2.RandomResizedCrop(32, antialias=True)]
    ops += {"S2": [v2.AutoAugment()], "S3": [v2.AutoAugment()], "S4": [v2.RandAugment(num_ops=2, magnitude=9)]}.get(level, [])
    transform = v2.Compose(ops + [v2.ToDtype(torch.float32, scale=True)])
    images = torch.randint(0, 256, (BATCH * batches, 3, 32, 32), dtype=torch.uint8)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(images[i])
    loader = torch.utils.data.DataLoader(Images(), batch_size=BATCH, num_workers=2, persistent_workers=True)

    def epoch():
        for _ in loader:
            pass
    return epoch


TODAY = "today: Kornia containers, fp32, per batch"


def training_steps(device: str, rounds: int) -> dict:
    """The whole classification step (augment the uint8 batch, forward, backward, SGD), per level, backend and
    precision, as train.fit runs it: the batches of steps_per_call(128) steps augmented in one call. Beside
    it, today's path: Kornia's containers, fp32, one augmentation call and one host read of the loss per step."""
    torch.manual_seed(0)
    steps = steps_per_call(BATCH)
    images = torch.randint(0, 256, (BATCH * steps, 32, 32, 3), dtype=torch.uint8, device=device)
    out = {}
    for level in LEVELS:
        candidates = {}
        for name, backend, precision in [(TODAY, "kornia_modules", "fp32")] + [
                (f"{b} {p}", b, p) for b in ("kornia", "dali") for p in ("fp32", "bf16")]:
            augment = augmenter(backend, level, device)
            model, _, loss_fn, _ = model_step(MODELS["resnet9 classify 32 px"][0], 32, BATCH, device, precision)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            today = name == TODAY

            def run(augment=augment, model=model, loss_fn=loss_fn, optimizer=optimizer, precision=precision,
                    today=today):
                batches = None if today else augment(images).split(BATCH)
                for i in range(steps):
                    x = augment(images[i * BATCH:(i + 1) * BATCH]) if today else batches[i]
                    with autocast(device, precision):
                        loss = loss_fn(model(x))
                    if today:
                        loss.item()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            candidates[name] = run
        out[level] = {k: round(BATCH * steps / s, 1) for k, s in measure(candidates, rounds, device).items()}
    return out


def augmentation_alone(device: str, rounds: int) -> dict:
    """Augmentation images/s: calls of one batch (128) and of AUG_IMAGES (as training calls it); the
    torchvision per-sample DataLoader peer (CPU)."""
    images = torch.randint(0, 256, (AUG_IMAGES, 32, 32, 3), dtype=torch.uint8, device=device)
    out = {}
    for level in LEVELS:
        candidates = {}
        for backend in ("kornia", "kornia_modules", "dali"):
            augment = augmenter(backend, level, device)
            candidates[f"{backend}, calls of {BATCH}"] = lambda a=augment: a(images[:BATCH])
            if backend != "kornia_modules":
                candidates[f"{backend}, calls of {AUG_IMAGES}"] = lambda a=augment: a(images)
        seconds = measure(candidates, rounds, device)
        result = {k: round(int(k.rsplit(" ", 1)[1]) / s, 1) for k, s in seconds.items()}
        if device == "cpu":
            peer_batches = 4
            seconds = measure({"peer": torchvision_peer(level, peer_batches)}, rounds=3)["peer"]
            result["torchvision per-sample, 2 workers"] = round(BATCH * peer_batches / seconds, 1)
        out[level] = result
    return out


def inference(device: str, rounds: int) -> dict:
    """Pseudo-labelling (a teacher over a uint8 pool) and evaluation (train.evaluate), images/s."""
    torch.manual_seed(0)
    model = build_model(arch="resnet9", width=16, num_classes=10).to(device)
    pool = torch.randint(0, 256, (4096, 32, 32, 3), dtype=torch.uint8, device=device)
    val = TaskData("classify", pool[:2048], tuple("abcdefghij"), labels=torch.randint(0, 10, (2048,), device=device))
    candidates = {}
    for precision in ("fp32", "bf16"):
        candidates[f"pseudo-labelling {precision}"] = lambda p=precision: teacher_outputs(model, pool, p)
        candidates[f"evaluation {precision}"] = lambda p=precision: evaluate(model, val, precision=p)
    seconds = measure(candidates, max(3, rounds // 2), device)
    return {k: round((len(pool) if k.startswith("pseudo") else len(val)) / s, 1) for k, s in seconds.items()}


def _sweep_run(seed: int, threads: int) -> tuple[list[dict], float]:
    """One short S4 training run (the study's classification step), at `threads` intra-op threads."""
    from rethink.core.training.config import TrainConfig
    from rethink.core.training.loop import fit
    from rethink.core.training.checkpoints import new_model

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(100)
    images = torch.randint(0, 256, (1024, 32, 32, 3), dtype=torch.uint8, generator=g)
    data = TaskData("classify", images, tuple("abcdefghij"), labels=torch.randint(0, 10, (1024,), generator=g))
    cfg = TrainConfig(epochs_1x=4, batch_size=128, aug="S4", evals=2, seed=seed, progress=False)
    started = time.perf_counter()
    history = fit(new_model(data, "resnet9", 16, "gn", seed), data, data, cfg)
    return history, time.perf_counter() - started


def parallel_runs(runs: int = 4) -> dict:
    """A sweep of `runs` independent runs: one process at 2 threads (today) against two processes at 1 thread
    each. Adopted only if >= 1.2x faster with identical numbers (the speed-up's rule)."""
    import multiprocessing as mp

    threads = torch.get_num_threads()
    started = time.perf_counter()
    sequential = [_sweep_run(seed, 2) for seed in range(runs)]
    sequential_s = time.perf_counter() - started
    one_thread = [_sweep_run(seed, 1)[0] for seed in range(runs)]
    with mp.get_context("spawn").Pool(2) as pool:
        pool.starmap(_sweep_run, [(0, 1), (1, 1)])  # warm-up: the workers import torch and Kornia first
        started = time.perf_counter()
        parallel = pool.starmap(_sweep_run, [(seed, 1) for seed in range(runs)], chunksize=1)
        parallel_s = time.perf_counter() - started
    torch.set_num_threads(threads)
    same = [h for h, _ in sequential] == [h for h, _ in parallel]
    speedup = sequential_s / parallel_s
    return {"runs": runs, "one process, 2 threads (s)": round(sequential_s, 1),
            "two processes, 1 thread each (s)": round(parallel_s, 1), "speed-up": round(speedup, 2),
            "numbers identical to the sequential sweep": same,
            "numbers identical at 1 thread in one process": [h for h, _ in parallel] == one_thread,
            "adopted": bool(speedup >= 1.2 and same)}


def targets(result: dict) -> dict:
    """The speed-up's targets, as ratios within this one run: {target: {value, at_least, met}}."""
    step, s4 = result["training_step_images_per_s"], result["augmentation_images_per_s"]["S4"]
    new, chunk, batch = f"kornia {result['precision_auto']}", f"kornia, calls of {AUG_IMAGES}", f"kornia, calls of {BATCH}"
    today_aug = s4[f"kornia_modules, calls of {BATCH}"]
    values = {
        "S1 training step, new / today": (step["S1"][new] / step["S1"][TODAY], 1.4),
        "S4 training step, new / today": (step["S4"][new] / step["S4"][TODAY], 2.0),
        f"S4 augmentation as training calls it ({AUG_IMAGES} images), new / today's Kornia": (s4[chunk] / today_aug, 3.0),
        f"S4 augmentation in calls of {BATCH}, new / today's Kornia": (s4[batch] / today_aug, 3.0),
        f"S4 augmentation in calls of {BATCH}, images/s": (s4[batch], 5000),
    }
    if "torchvision per-sample, 2 workers" in s4:
        values["S4 augmentation as training calls it, new / torchvision peer"] = (
            s4[chunk] / s4["torchvision per-sample, 2 workers"], 3.0)
    return {k: {"value": round(v, 2), "at_least": t, "met": bool(v >= t)} for k, (v, t) in values.items()}


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
    for ax, key, title in ((axes[1], "training_step_images_per_s", "(b) whole training step, batch 128"),
                           (axes[2], "augmentation_images_per_s", "(c) augmentation alone, batch 128")):
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
    for name in MODELS:
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


def splice_readme(readme: Path = ROOT / "docs" / "guide.md") -> None:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block for the benchmark table")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{readme_table(results)}\n{README_END}{tail}")


def main(rounds: int) -> dict:
    device = resolve_device("auto")
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else f"CPU: {cpu_name()}",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "rounds": rounds,
              "precision_auto": resolve_precision("auto", device), "batch": BATCH}
    peak = matmul_gflops(device)
    result["matmul_gflops"] = peak
    result["models"] = {}
    for name, (kwargs, size, batch) in MODELS.items():
        flops = flops_per_image(kwargs, size, batch, device)
        steps = {p: model_step(kwargs, size, batch, device, p)[3] for p in ("fp32", "bf16")}
        seconds = measure(steps, rounds, device)
        entry = {"flops_per_image (fwd+bwd)": round(flops), "batch": batch}
        for p, s in seconds.items():
            entry[f"images_per_s {p}"] = round(batch / s, 1)
            entry[f"roofline % {p}"] = round(100 * flops * batch / s / 1e9 / peak[p], 1)
        result["models"][name] = entry
    print("models", json.dumps(result["models"]), file=sys.stderr)
    result["training_step_images_per_s"] = training_steps(device, rounds)
    print("steps", json.dumps(result["training_step_images_per_s"]), file=sys.stderr)
    result["augmentation_images_per_s"] = augmentation_alone(device, rounds)
    result["inference_images_per_s"] = inference(device, rounds)
    if device == "cpu":
        result["parallel_runs"] = parallel_runs()
    result["targets"] = targets(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "cuda" if device == "cuda" else "cpu"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, RESULTS / f"{stem}.png")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per comparison (median kept)")
    parser.add_argument("--readme", action="store_true", help="only splice the table of docs/guide.md from results/*.json")
    args = parser.parse_args()
    if not args.readme:
        print(json.dumps(main(args.rounds)["targets"], indent=2))
    splice_readme()
