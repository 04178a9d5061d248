"""Writing a matrix run's reports into --out: each file whole or not at all.

Why one writer: a nightly job killed mid-report must not publish half an XML file, and a
rendering error in one format must not leave the directory with a new JUnit next to last
night's summary. Every file is rendered first (report.py: JUnit, test_progs JSON,
Markdown; html.py: the page; breadth.py: the baseline), then each goes through a temp
file and a rename.
"""

from __future__ import annotations

from pathlib import Path

from harness.cache import atomic_write
from harness.matrix.breadth import baseline_json
from harness.matrix.html import report_html
from harness.matrix.report import (
    CellOutcome,
    baseline_records,
    json_bytes,
    junit_xml,
    summary_markdown,
)


def write_reports(outcomes: list[CellOutcome], out_dir: Path, *,
                  title: str) -> dict[str, Path]:
    """Write junit.xml, summary.json, summary.md, report.html and baseline.json (what a
    later run's --baseline reads) into `out_dir` (created if missing)."""
    out_dir = Path(out_dir)
    rendered = {
        "junit": ("junit.xml", junit_xml(outcomes, title=title)),
        "json": ("summary.json", json_bytes(outcomes)),
        "markdown": ("summary.md", summary_markdown(outcomes, title=title).encode(
            "utf-8", "backslashreplace")),
        "html": ("report.html", report_html(outcomes, title=title).encode(
            "utf-8", "backslashreplace")),
        "baseline": ("baseline.json", baseline_json(baseline_records(outcomes))),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key, (name, data) in rendered.items():
        paths[key] = out_dir / name
        atomic_write(paths[key], data)
    return paths
