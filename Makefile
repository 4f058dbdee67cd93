# make study  - set up .venv, run the whole study (default profile), write reports/ and README's table
#              make study PART=he|zo|nd: one part (He 01-03, Zoph 04-05, Newell & Deng 06-08); a part longer
#              than one working session is split by seeds: PART=zo1, zo2, ... each train a share of its seeds, then
#              PART=zo assembles its reports from their committed results (python -m rethink parts lists them;
#              docs/costing.md)
# make verify - rerun the study (or PART=...) from an empty cache into build/verify/ and compare every findings.json
# make test   - set up .venv, run the tests (including the whole DAG under the smoke profile)
# make test-fast - the tests not marked slow (no Snakemake run, notebook or long training): the edit loop
# make smoke  - the whole DAG under the smoke profile, into build/smoke/
# make render - re-render every committed report from its results.csv (trains nothing), and docs/exploration.md
# make lab    - JupyterLab on the notebooks (jupytext opens the .py files as notebooks)
# make lock   - refresh requirements.lock: every package pinned, from a fresh venv of pyproject.toml's pins
# make bench  - benchmarks/bench.py: training-step throughput on this machine -> benchmarks/results/, docs/guide.md table
# make gpu-check - benchmarks/gpu_check.py on a CUDA machine: set-up, CUDA tests, agreement, bench, timed runs
#                  -> benchmarks/results/gpu-check/ (make gpu-check --dry-run: the same steps on the CPU, tiny)
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
export PATH := $(BIN):$(PATH)

.PHONY: setup study verify smoke test test-fast render lab lint bench gpu-check lock clean

setup: $(VENV)/.installed

# The full set-up (Linux): every package at its locked version, then the project itself with the dev and
# dali extras (no resolution left to do). Elsewhere: pip install -e '.[dev]' (README, "Install").
$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "Python 3.11 is required (torch 2.14.1 wheels); set PYTHON=python3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e '.[dev,dali]'
	touch $@

lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q -e '.[dev,dali]'
	echo "# make lock: every package of pip install -e '.[dev,dali]' (Linux x86_64, Python 3.11), pinned" > requirements.lock
	build/lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^setuptools==' >> requirements.lock
	rm -rf build/lock-venv

# python -m rethink snakemake: snakemake --rerun-incomplete, after removing a killed run's stale lock
SNAKEMAKE := python -m rethink snakemake

PART ?=
# A part (he, zo, nd) or a session of a split one (he1, he2, ...: python -m rethink parts lists them)
CHECK_PART = $(if $(PART),python -m rethink parts --profile default --check $(PART))
# A fresh clone has the committed reports and no cache: Snakemake would call the reports up to date (their inputs
# missing, not newer), so with no cache the notebooks are forced to run, and a split part's reports are assembled
# again from its sessions' committed results. The sessions themselves train again for the whole study or for a
# session's own target (PART=nd3), not for a part's (PART=nd: its sessions ran in working sessions of their own).
FORCED_SESSIONS = $(if $(filter he zo nd,$(PART)),,session)
FRESH = $(if $(wildcard cache/default/world),,--forcerun notebook assemble $(FORCED_SESSIONS))

study: setup
	$(CHECK_PART)
	$(SNAKEMAKE) $(PART) --cores $(CORES) $(FRESH) --config profile=default
	$(if $(PART),python -m rethink index --profile default)
	python -m rethink readme --findings reports/findings.md --readme README.md \
		$(if $(wildcard build/smoke/reports/benchmarks),--smoke-benchmarks build/smoke/reports/benchmarks)

# A second run from an empty cache in build/verify (its own cache/ and reports/), then the comparison.
verify: setup
	$(CHECK_PART)
	mkdir -p build/verify
	cd build/verify && $(SNAKEMAKE) -s $(CURDIR)/Snakefile $(or $(PART),all) --cores $(CORES) --config profile=default
	python -m rethink verify --profile default --rerun build/verify $(if $(PART),--part $(PART))

smoke: setup
	$(SNAKEMAKE) --cores $(CORES) --config profile=smoke

test: setup
	python -m pytest -q

test-fast: setup
	python -m pytest -q -m "not slow"

render: setup
	python -m rethink exploration
	python -m rethink render --profile default
	python -m rethink readme --findings reports/findings.md --readme README.md

bench: setup
	python benchmarks/bench.py

# No `setup` prerequisite: the script sets up itself, and goes on with this Python where it cannot (no index).
# `make gpu-check --dry-run` (make's -n) still runs it, with --dry-run: the `+` runs a line under -n.
gpu-check:
	+$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) benchmarks/gpu_check.py \
		$(if $(findstring n,$(firstword -$(MAKEFLAGS))),--dry-run) $(ARGS)

lint: setup
	snakemake --lint --config profile=smoke

# The repository's Lab settings (a double-click opens a notebook .py as a notebook); jupytext.toml keeps saves clean
lab: setup
	JUPYTERLAB_SETTINGS_DIR=$(CURDIR)/.jupyter/lab/user-settings jupyter lab notebooks

clean:
	rm -rf build cache/smoke
