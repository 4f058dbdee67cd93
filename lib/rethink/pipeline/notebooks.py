"""A workflow step with its log, and a notebook executed by papermill into its report (.ipynb and .html)."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


def logged(log: str, step, *args, threads: int | None = None, **kwargs):
    """Run one workflow step with its stdout and stderr (tqdm included) going to the rule's log, on the rule's
    `threads`: torch's intra-op threads here and, through OMP_NUM_THREADS, in a notebook's kernel. (Each
    Snakemake job is a process of its own; Snakemake itself sets no thread count for `run:` rules.)"""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        return step(*args, **kwargs)


def run_notebook(source: str, out_dir: str, parameters: dict, cwd: str = ".") -> Path:
    """jupytext source -> papermill execution with `parameters` -> executed .ipynb and .html in out_dir."""
    import jupytext
    import nbconvert
    import nbformat
    import papermill

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(source).stem
    notebook = jupytext.read(source)
    executed = out / f"{name}.ipynb"
    papermill.execute_notebook(notebook, str(executed), parameters=parameters, kernel_name="python3",
                               cwd=cwd, progress_bar=False, log_output=True)
    html, _ = nbconvert.HTMLExporter(exclude_input=True).from_notebook_node(report_view(
        nbformat.read(executed, as_version=4), name))
    (out / f"{name}.html").write_text(html)
    return executed


def assemble_report(source: str, session_dirs: list[str], out_dir: str, profile: str) -> Path:
    """A split part's report: its sessions' committed results gathered into out_dir (study.sessions), then the
    notebook rendered from them, training nothing."""
    from ..study.sessions import assemble

    assemble(session_dirs, out_dir, Path(source).stem)
    return run_notebook(source, out_dir, dict(profile=profile, from_results=True, out_dir=str(out_dir),
                                              results_dir=str(out_dir)))


def report_view(notebook, name: str):
    """The executed notebook as a reader sees it: code hidden (the HTML exporter drops inputs; a first line links
    the executed notebook with its code and names its source), stderr dropped (progress bars and warnings: papermill
    copied them to the rule's log)."""
    import nbformat

    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    note = (f"*Code hidden: the executed notebook, with its code, is [{name}.ipynb]({name}.ipynb); its source is "
            f"`notebooks/{name}.py` (open it in JupyterLab with `make lab`).*")
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell(note))
    return notebook
