"""`make bench`: what a training step costs on this machine, side by side in one run, against the roofline.

    .venv/bin/python benchmarks/bench.py            # writes benchmarks/results/<device>.json and .png,
                                                    # then the table in docs/guide.md (every results/*.json)
    .venv/bin/python benchmarks/bench.py --readme   # only that table, from the JSON files there
    .venv/bin/python benchmarks/bench.py --quick --rounds 1 --out DIR   # the code paths in a minute (gpu_check)

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
from rethink.study.records import cpu_name
from rethink.core.training.batches import AUG_IMAGES
from rethink.core.training.hardware import autocast, resolve_device, resolve_precision
from rethink.core.training.evaluation import evaluate

from bench_report import TODAY, figure, splice_readme

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BATCH = 128
# The sizes of a measurement, and of --quick's walk through the same code (gpu_check.py --dry-run): on a CPU
# without fast bf16 a 2048 bf16 matmul alone takes about a minute.
SIZES = {"matmul": 2048, "batch": BATCH, "aug_images": AUG_IMAGES, "pool": 4096}
QUICK = {"matmul": 256, "batch": 16, "aug_images": 32, "pool": 64}


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


def matmul_gflops(device: str, n: int = SIZES["matmul"]) -> dict[str, float]:
    """The roofline's ceiling: dense matmul GFLOP/s in fp32 and bf16."""
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


def augmenter(backend: str, level: str, device: str, seed: int = 0, max_batch: int = AUG_IMAGES):
    """uint8 NHWC -> float NCHW. 'kornia_modules' is the Kornia path before the speed-up (its containers)."""
    if backend == "kornia_modules":
        return _Uint8ToKornia(KorniaAugment(level, 32, seed=seed, engine="modules"))
    return make_augment(backend, level, 32, max_batch, device, seed)


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




def training_steps(device: str, rounds: int, levels=LEVELS, sizes: dict = SIZES) -> dict:
    """The whole classification step (augment the uint8 batch, forward, backward, SGD), per level, backend and
    precision, as train.fit runs it: the batches of steps_per_call(128) steps augmented in one call. Beside
    it, today's path: Kornia's containers, fp32, one augmentation call and one host read of the loss per step."""
    torch.manual_seed(0)
    batch = sizes["batch"]
    steps = max(1, sizes["aug_images"] // batch)  # steps_per_call(batch) at the study's sizes
    images = torch.randint(0, 256, (batch * steps, 32, 32, 3), dtype=torch.uint8, device=device)
    out = {}
    for level in levels:
        candidates = {}
        for name, backend, precision in [(TODAY, "kornia_modules", "fp32")] + [
                (f"{b} {p}", b, p) for b in ("kornia", "dali") for p in ("fp32", "bf16")]:
            augment = augmenter(backend, level, device, max_batch=sizes["aug_images"])
            model, _, loss_fn, _ = model_step(MODELS["resnet9 classify 32 px"][0], 32, batch, device, precision)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            today = name == TODAY

            def run(augment=augment, model=model, loss_fn=loss_fn, optimizer=optimizer, precision=precision,
                    today=today):
                batches = None if today else augment(images).split(batch)
                for i in range(steps):
                    x = augment(images[i * batch:(i + 1) * batch]) if today else batches[i]
                    with autocast(device, precision):
                        loss = loss_fn(model(x))
                    if today:
                        loss.item()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            candidates[name] = run
        out[level] = {k: round(batch * steps / s, 1) for k, s in measure(candidates, rounds, device).items()}
    return out


def augmentation_alone(device: str, rounds: int, levels=LEVELS, peer: bool = True, sizes: dict = SIZES) -> dict:
    """Augmentation images/s: calls of one batch (128) and of AUG_IMAGES (as training calls it); the
    torchvision per-sample DataLoader peer (CPU)."""
    batch, many = sizes["batch"], sizes["aug_images"]
    images = torch.randint(0, 256, (many, 32, 32, 3), dtype=torch.uint8, device=device)
    out = {}
    for level in levels:
        candidates = {}
        for backend in ("kornia", "kornia_modules", "dali"):
            augment = augmenter(backend, level, device, max_batch=many)
            candidates[f"{backend}, calls of {batch}"] = lambda a=augment: a(images[:batch])
            if backend != "kornia_modules":
                candidates[f"{backend}, calls of {many}"] = lambda a=augment: a(images)
        seconds = measure(candidates, rounds, device)
        result = {k: round(int(k.rsplit(" ", 1)[1]) / s, 1) for k, s in seconds.items()}
        if device == "cpu" and peer:
            peer_batches = 4
            seconds = measure({"peer": torchvision_peer(level, peer_batches)}, rounds=3)["peer"]
            result["torchvision per-sample, 2 workers"] = round(BATCH * peer_batches / seconds, 1)
        out[level] = result
    return out


def inference(device: str, rounds: int, size: int = SIZES["pool"]) -> dict:
    """Pseudo-labelling (a teacher over a uint8 pool) and evaluation (train.evaluate), images/s."""
    torch.manual_seed(0)
    model = build_model(arch="resnet9", width=16, num_classes=10).to(device)
    pool = torch.randint(0, 256, (size, 32, 32, 3), dtype=torch.uint8, device=device)
    half = size // 2
    val = TaskData("classify", pool[:half], tuple("abcdefghij"), labels=torch.randint(0, 10, (half,), device=device))
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
    n, many = result["batch"], result.get("aug_images", AUG_IMAGES)
    new, chunk, batch = f"kornia {result['precision_auto']}", f"kornia, calls of {many}", f"kornia, calls of {n}"
    today_aug = s4[f"kornia_modules, calls of {n}"]
    values = {
        "S1 training step, new / today": (step["S1"][new] / step["S1"][TODAY], 1.4),
        "S4 training step, new / today": (step["S4"][new] / step["S4"][TODAY], 2.0),
        f"S4 augmentation as training calls it ({many} images), new / today's Kornia": (s4[chunk] / today_aug, 3.0),
        f"S4 augmentation in calls of {n}, new / today's Kornia": (s4[batch] / today_aug, 3.0),
        f"S4 augmentation in calls of {n}, images/s": (s4[batch], 5000),
    }
    if "torchvision per-sample, 2 workers" in s4:
        values["S4 augmentation as training calls it, new / torchvision peer"] = (
            s4[chunk] / s4["torchvision per-sample, 2 workers"], 3.0)
    return {k: {"value": round(v, 2), "at_least": t, "met": bool(v >= t)} for k, (v, t) in values.items()}


def main(rounds: int, out: Path = RESULTS, quick: bool = False) -> dict:
    """Every measurement on this machine's device, written to out/<cpu|cuda>.json and .png. `quick`: one model,
    levels S1 and S4, no peer and no parallel sweep (what `gpu_check.py --dry-run` runs: the code paths, not numbers)."""
    device = resolve_device("auto")
    sizes = QUICK if quick else SIZES
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else f"CPU: {cpu_name()}",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "rounds": rounds,
              "precision_auto": resolve_precision("auto", device), "batch": sizes["batch"],
              "aug_images": sizes["aug_images"], "quick": quick}
    peak = matmul_gflops(device, sizes["matmul"])
    result["matmul_gflops"] = peak
    result["models"] = {}
    for name, (kwargs, size, batch) in list(MODELS.items())[:1 if quick else None]:
        batch = min(batch, sizes["batch"])
        flops = flops_per_image(kwargs, size, batch, device)
        steps = {p: model_step(kwargs, size, batch, device, p)[3] for p in ("fp32", "bf16")}
        seconds = measure(steps, rounds, device)
        entry = {"flops_per_image (fwd+bwd)": round(flops), "batch": batch}
        for p, s in seconds.items():
            entry[f"images_per_s {p}"] = round(batch / s, 1)
            entry[f"roofline % {p}"] = round(100 * flops * batch / s / 1e9 / peak[p], 1)
        result["models"][name] = entry
    print("models", json.dumps(result["models"]), file=sys.stderr)
    levels = ("S1", "S4") if quick else LEVELS
    result["training_step_images_per_s"] = training_steps(device, rounds, levels, sizes)
    print("steps", json.dumps(result["training_step_images_per_s"]), file=sys.stderr)
    result["augmentation_images_per_s"] = augmentation_alone(device, rounds, levels, not quick, sizes)
    result["inference_images_per_s"] = inference(device, rounds, sizes["pool"])
    if device == "cpu" and not quick:
        result["parallel_runs"] = parallel_runs()
    result["targets"] = targets(result)
    out.mkdir(parents=True, exist_ok=True)
    stem = "cuda" if device == "cuda" else "cpu"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, out / f"{stem}.png")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per comparison (median kept)")
    parser.add_argument("--readme", action="store_true", help="only splice the table of docs/guide.md from results/*.json")
    parser.add_argument("--quick", action="store_true", help="one model, S1 and S4 only: the code paths, not numbers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and figure go (default: "
                        "benchmarks/results, whose files make the table in docs/guide.md)")
    args = parser.parse_args()
    if not args.readme:
        print(json.dumps(main(args.rounds, args.out, args.quick)["targets"], indent=2))
    if args.out == RESULTS:
        splice_readme(RESULTS)
