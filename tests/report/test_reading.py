"""What a reader meets: the README, the index and every committed report read as text (their HTML parsed), and the
Snakemake report's zip, in which every link must resolve."""
import html
import posixpath
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, VERDICTS  # the four verdicts, as a reader must find them defined

REPORTS = sorted(p.parent for p in (ROOT / "reports").glob("*/findings.json"))


def text_of(page: Path | str) -> str:
    """A page's (or an HTML string's) visible text: no styles, scripts or tags, entities decoded."""
    raw = page.read_text() if isinstance(page, Path) else page
    raw = re.sub(r"(?s)<style.*?</style>|<script.*?</script>", " ", raw)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))


def condition_names() -> set[str]:
    """The names the config gives the criteria's conditions: internal names a reader should not have to read."""
    criteria = yaml.safe_load((ROOT / "config" / "protocol.yaml").read_text())["criteria"]
    return {c["name"] for finding in criteria.values() for c in finding["conditions"] if "_" in c["name"]}


def test_the_index_opens_with_the_tally_and_the_verdict_words():
    page = (ROOT / "reports" / "index.html").read_text()
    text = text_of(ROOT / "reports" / "index.html")
    # One tally, or one per phase between the confirmation's parts: together they count every row.
    tallies = re.findall(r"(\d+) reproduced · (\d+) not reproduced · (\d+) inconclusive · (\d+) not tested", text)
    assert tallies and sum(int(n) for t in tallies for n in t) == len(re.findall(r"<tr><td><b>", page))
    assert text.index(" not tested") < text.index("ID finding")  # before the table
    for verdict in VERDICTS:
        assert re.search(rf"<dt>.*?>{verdict}</span></dt><dd>\w", page), verdict
    assert "NaN" not in text and " nan " not in text
    for report in REPORTS:  # each row links its report
        assert f'href="{report.name}/{report.name}.html"' in page.replace("'", '"')


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.name)
def test_each_report_answers_first_in_words_with_its_values(report):
    page = (report / f"{report.name}.html").read_text()
    text = text_of(report / f"{report.name}.html")
    assert 'href="../index.html"' in page  # a way back
    summary = text_of(page.split('id="How-it-was-tested"', 1)[0].split('id="Summary"', 1)[1])
    for verdict_line in re.findall(r"(?:HE|ZO|ND|BL)-\d: (?:not reproduced|reproduced|inconclusive|not tested)", summary):
        assert verdict_line
    assert re.search(r"criterion [^|]*?(?:[<>] -?\d|≤ \d)", summary), "a criterion written with its values"
    assert "gates " in summary and "ours " in summary and "paper " in summary
    assert "NaN" not in text and " nan " not in text
    # Words, not names: the summary and the verdicts (the settings table names the settings it lists).
    prose = summary + text_of(page.split('id="Verdicts"', 1)[1].split('id="Settings-of-this-run"', 1)[0])
    leaked = sorted(name for name in condition_names() if re.search(rf"\b{name}\b", prose))
    assert not leaked, f"internal names in {report.name}: {leaked}"
    assert not re.search(r"\b(?:he|zo|nd|bl)[1-5]_[a-z_]+", prose), "a parameter name of the exploration's criteria"
    assert not re.search(r"Out\[\d+\]", text), "a value printed under a cell"


def test_the_readme_is_short_and_defines_its_verdict_words_under_the_table():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    assert re.search(r"\n\*\*[^*\n]*\d+ reproduced · \d+ not reproduced · \d+ inconclusive · \d+ not tested[^*\n]*\*\*",
                     readme), "the tally, in bold, on a line of its own"
    table_end = readme.index("\n\n", readme.index("| ID | finding"))
    definitions = readme[table_end:table_end + 1200]
    assert all(f"- **{verdict}**:" in definitions for verdict in VERDICTS)
    for doc in ("docs/protocol.md", "docs/exploration.md", "docs/guide.md"):
        assert f"]({doc})" in readme and (ROOT / doc).is_file()


def test_the_readme_lists_each_deviation_once_with_every_finding_it_applies_to():
    """One change recorded for several notebooks (config/protocol.yaml) is one line naming all their findings."""
    recorded = yaml.safe_load((ROOT / "config" / "protocol.yaml").read_text())["deviations"] or {}
    applies = {}
    for entries in recorded.values():
        for d in entries:
            applies.setdefault(d["change"], set()).update(d["findings"])
    readme = (ROOT / "README.md").read_text()
    listed = readme[readme.index("Deviations from protocol v2:"):readme.index("The exploration's changes of design")]
    lines = [line for line in listed.splitlines() if line.startswith("- **")]
    assert len(lines) == len(applies)
    for change, findings in applies.items():
        line, = [line for line in lines if change in line]
        assert set(re.match(r"- \*\*([^*]+)\*\*", line).group(1).split(", ")) == findings, change


@pytest.mark.slow
def test_the_snakemake_report_zip_resolves_every_link(tmp_path):
    """Built from the committed reports: the site (index, reports, figures, data, docs) packed whole."""
    from rethink.report.site import write_site

    shutil.copytree(ROOT / "reports", tmp_path / "reports")
    write_site([tmp_path / "reports" / r.name for r in REPORTS], tmp_path / "build/default/site", ROOT / "docs")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "--report", str(tmp_path / "report.zip"), "--config", "profile=default"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    archive = zipfile.ZipFile(tmp_path / "report.zip")
    names = set(archive.namelist())
    pages = [n for n in names if n.endswith(".html")]
    assert sum(n.endswith("/index.html") for n in pages) >= 1
    assert {f"{r.name}.html" for r in REPORTS} <= {posixpath.basename(n) for n in pages}
    assert any(n.endswith(".png") for n in names) and any(n.endswith("results.csv") for n in names)
    broken = []
    for name in pages:
        for link in re.findall(r"""(?:href|src)=["']([^"'#]+)""", archive.read(name).decode("utf-8", "replace")):
            if re.match(r"[a-z]+:", link) or link.startswith("//"):
                continue  # a web address or an embedded image
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
            if target not in names and not any(n.startswith(target + "/") for n in names):
                broken.append((name, link))
    assert not broken, broken[:5]


def test_the_readme_keeps_its_smoke_line_when_no_smoke_ran(tmp_path):
    """`make render` splices the findings without the smoke profile's benchmarks: the measured line must stay."""
    from rethink.report.index import README_END, README_START, splice_readme

    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "world.tsv").write_text("s\th:m:s\n90.0\t0:01:30\n")
    findings = tmp_path / "findings.md"
    findings.write_text("| finding |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\nrest\n")
    splice_readme(findings, readme, str(bench))
    measured = readme.read_text()
    assert "took 1.5 minutes" in measured and "old table" not in measured
    findings.write_text("| finding | new |\n")
    splice_readme(findings, readme)
    assert readme.read_text() == measured.replace("| finding |\n", "| finding | new |\n")


def test_the_committed_index_is_what_the_committed_reports_make(tmp_path):
    """index.html, findings.md and timings.md, written again from a copy of the committed reports, come out byte
    for byte as committed: nothing on the front page was edited by hand or left behind by a report's change."""
    from rethink import config
    from rethink.report.index import write_index

    copy = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", copy, ignore=shutil.ignore_patterns("*.ipynb"))
    names = [nb for nb in config.load("default")["notebooks"] if (copy / nb / "findings.json").is_file()]
    for name in ("index.html", "findings.md", "timings.md"):
        (copy / name).unlink()  # written again below
    write_index([copy / nb for nb in names], str(copy), docs=tmp_path / "docs")
    for name in ("index.html", "findings.md", "timings.md"):
        assert (copy / name).read_bytes() == (ROOT / "reports" / name).read_bytes(), name
