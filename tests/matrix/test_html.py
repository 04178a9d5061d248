"""The HTML report, opened in a real headless Chromium: the grid's cells counted in the
DOM after the page's own script ran, each cell's link landing on its section, escaped
logs, and a screenshot that is a real PNG of the page."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.matrix.html import anchor, report_html
from harness.matrix.outputs import write_reports
from harness.matrix.report import CellOutcome
from tests.matrix.samples import BROKEN, REGRESSED

BROWSER = shutil.which("chromium-headless-shell") or shutil.which("chromium")
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium (scripts/setup.sh installs "
    "chromium-headless-shell)")


def browse(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    return subprocess.run([BROWSER, "--no-sandbox", "--disable-gpu", "--headless",
                           *args, page.as_uri()], capture_output=True, text=True,
                          timeout=120)


class Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "a" and found.get("href", "").startswith("#"):  # type: ignore[union-attr]
            self.hrefs.append(str(found["href"])[1:])


def test_every_grid_link_lands_on_its_cell(outcomes: list[CellOutcome]) -> None:
    page = report_html(outcomes, title="nightly <kfunc> & co")
    parser = Ids()
    parser.feed(page)
    assert parser.hrefs == [anchor(o.cell.id) for o in outcomes]
    assert set(parser.hrefs) <= parser.ids
    assert "nightly &lt;kfunc&gt; &amp; co" in page and "<kfunc>" not in page
    # A verifier log is shown whole and escaped, inside its program's details.
    assert "R1 type=scalar expected=fp" in page
    assert "\x1b" not in page


@needs_browser
def test_headless_chromium_renders_the_grid(tmp_path: Path,
                                            outcomes: list[CellOutcome]) -> None:
    page = write_reports(outcomes, tmp_path, title="nightly")["html"]
    dom = browse(page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-500:]
    # The page's script counted the grid's cells: the browser parsed and ran the page.
    counted = re.search(r'<body data-cells="(\d+)"', dom.stdout)
    assert counted is not None and int(counted.group(1)) == len(outcomes) == 4
    cells = re.findall(r'<td class="cell (\w+)" data-cell="([^"]+)"', dom.stdout)
    assert dict((cell, status) for status, cell in cells) == {
        o.cell.id: o.status for o in outcomes}
    assert dict(cells)["fail"] == REGRESSED and dict(cells)["pass"] == BROKEN

    shot = tmp_path / "grid.png"
    proc = browse(page, f"--screenshot={shot}", "--window-size=1200,900")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-500:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 900) and len(data) > 5000
