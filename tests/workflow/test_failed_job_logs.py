"""tests/helpers.failed_job_logs: what a failed DAG test shows, so that CI's log says why a notebook failed."""
import json
import subprocess

from helpers import failed_job_logs

OK_JOB = """rule notebook:
    input: notebooks/04.py
    output: reports/04/findings.json
    log: logs/04.log
    jobid: 3
"""
FAILED_JOB = """Error in rule notebook:
    message: None
    jobid: 4
    input: notebooks/05.py
    output: reports/05/findings.json, reports/05/results.csv
    log: logs/05.log (check log file(s) for error details)
Shutting down, this might take some time.
"""


def test_only_the_failed_jobs_log_and_its_notebooks_traceback_are_shown(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/04.log").write_text("the log of a job that finished")
    (tmp_path / "logs/05.log").write_text("papermill: executing cell 7")
    (tmp_path / "reports/05").mkdir(parents=True)
    cells = [{"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout", "text": "fine"}]},
             {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "RuntimeError", "evalue": "bad",
                                                "traceback": ["\x1b[0;31mRuntimeError\x1b[0m: file read failed"]}]}]
    (tmp_path / "reports/05/05.ipynb").write_text(json.dumps({"cells": cells}))
    result = subprocess.CompletedProcess([], 1, stdout=OK_JOB, stderr=FAILED_JOB)
    shown = failed_job_logs(result, tmp_path)
    assert "--- logs/05.log\npapermill: executing cell 7" in shown
    assert "--- reports/05/05.ipynb\nRuntimeError: file read failed" in shown  # colour codes dropped
    assert "a job that finished" not in shown and "logs/04.log" not in shown


def test_a_notebook_without_an_error_says_so(tmp_path):
    (tmp_path / "reports/05").mkdir(parents=True)
    (tmp_path / "reports/05/05.ipynb").write_text(json.dumps({"cells": []}))
    result = subprocess.CompletedProcess([], 1, stdout="", stderr=FAILED_JOB)
    assert "--- reports/05/05.ipynb\n(no error output in this notebook)" in failed_job_logs(result, tmp_path)
