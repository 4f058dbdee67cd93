import dataclasses

import pandas as pd

from rethink import study
from rethink.train import TrainConfig


def test_runs_are_cached_by_everything_that_decides_them(tiny_world, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs_1x=1, batch_size=64, evals=1, progress=False)
    kwargs = dict(train_file=str(tiny_world / "classify_train.npz"), val_file=str(tiny_world / "classify_val.npz"),
                  task="classify", init="scratch", checkpoint=None, runs_dir=str(tmp_path), arch="resnet9",
                  width=8, norm="gn", label_fraction=1.0, desc="test")
    first = study.run_arm(train=cfg, **kwargs)
    assert first[-1]["metric"] == "seconds" and first[-1]["value"] > 0  # what the run cost travels with it
    calls = []
    fake = [dict(step=1, epoch=1.0, split="val", metric="accuracy", value=0.5)]
    monkeypatch.setattr(study, "fit", lambda *a, **k: calls.append(1) or fake)
    assert study.run_arm(train=cfg, **kwargs) == first and not calls  # read back, not retrained
    assert study.run_arm(train=dataclasses.replace(cfg, lr=0.05), **kwargs)[0] == fake[0] and calls  # a new run
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_he1_verdict_from_constructed_results():
    rows = []
    for seed in range(4):
        for schedule, gap in ((1.0, 40.0), (6.0, 0.2)):
            for arm, value in (("scratch", 50.0 + seed), ("pretrained", 50.0 + seed + gap + 0.1 * (seed % 2))):
                rows.append(dict(run_id=f"{arm}-{schedule}-{seed}", arm=arm, schedule=schedule, seed=seed, step=10,
                                 epoch=1.0, split="val", metric="accuracy", value=value))
    results = pd.DataFrame(rows)
    [finding] = study.he1_findings(results, "accuracy", 0.0, 2.0, "test")
    assert finding["verdict"] == "reproduced"
    assert [c["effect"] for c in finding["conditions"]] == ["gap_1x", "gap_6x"]
    [finding] = study.he1_findings(results, "accuracy", 0.0, 0.1, "test")  # 0.2-point gap > 0.1 tolerance
    assert finding["verdict"] == "not reproduced"
