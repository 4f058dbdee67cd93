"""Installs: environment.yml and requirements.lock in step with pyproject.toml, where the pins live; CUDA
majors that agree; the core tests without the optional DALI."""
import os
import re
import subprocess
import sys
import tomllib

import pytest
import torch
import yaml

from helpers import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(p) == 2 for p in pins), "every line of the lock is name==version"
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_environment_installs_the_lock_then_the_project_with_the_same_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r requirements.lock", "-e .[dev,dali]"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python.split("=")[1] in PROJECT["requires-python"]


def test_the_lock_pins_every_dependency_at_pyprojects_version():
    lock = locked()
    pins = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"] + PROJECT["optional-dependencies"]["dali"]
    for pin in pins:
        name, version = re.match(r"([A-Za-z0-9_.-]+)(?:==(.+))?", pin).groups()
        name = name.lower()
        assert name in lock, f"{name} is not in requirements.lock: run make lock"
        if version:
            assert lock[name] == version, f"{name}: pyproject pins {version}, the lock has {lock[name]}: run make lock"
    assert len(lock) > 3 * len(pins), "the lock holds the transitive packages too"


def test_torch_pins():
    deps = PROJECT["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    assert all("==" in d or d.startswith("pyyaml") for d in deps)
    assert not any("dali" in d for d in deps), "DALI is an extra ([dali]): laptops install without it"


def test_cuda_majors_agree():
    """DALI's wheel, every CUDA library in the lock and torch's own build share one CUDA major."""
    (dali,) = PROJECT["optional-dependencies"]["dali"]
    major = re.fullmatch(r"nvidia-dali-cuda(\d+)0==.*", dali).group(1)
    suffixes = {m.group(1) for name in locked() if (m := re.search(r"-cu(\d+)$", name))}
    assert suffixes == {major}, f"CUDA packages in the lock: cu{suffixes}; DALI: cuda{major}0"
    if torch.version.cuda:  # a CUDA build of torch (PyPI's Linux wheel)
        assert torch.version.cuda.split(".")[0] == major


@pytest.mark.slow
def test_core_tests_pass_without_dali():
    """What a laptop without the [dali] extra runs: DALI cannot be imported, its tests skip, the rest pass."""
    files = ["tests/core/test_augment.py", "tests/core/test_policy.py", "tests/core/test_datasets.py"]  # the ones that use DALI
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files], cwd=ROOT,
                            env={**os.environ, "RETHINK_WITHOUT_DALI": "1"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert re.search(r"\d+ passed, \d+ skipped", result.stdout), result.stdout[-500:]
