"""The matrix's HTML report: one self-contained page, opened from a CI artifact as a file.

Why: JUnit and JSON are for machines and the step summary is a table of counts; a kernel
developer looking at last night's run wants the grid (kernel x pahole x btfids down,
arch across) coloured by each cell's status, and one click from a red cell to its
programs, the failing program's verifier log and console tail, and the BTF facts of
that cell's vmlinux. No server, no fetched asset, no script needed to read it (a small
inline one only counts the cells into `body[data-cells]`, which the test checks in a
real browser). Everything shown is escaped: verifier logs carry `<`, `&` and escapes.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from harness.matrix.report import (
    EXPECT,
    FAIL,
    INFRA,
    PASS,
    CellOutcome,
    expected_failure,
    fact_text,
    failed,
    xml_text,
)
from harness.matrix.spec import AXES

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #c8c8c8; padding: .25em .6em; text-align: left; }
td.cell a { color: inherit; text-decoration: none; display: block; }
.pass { background: #d7f5d2; } .fail { background: #f8c9c4; }
.expect { background: #fbe7a9; } .infra { background: #d9dcef; } .none { background: #f3f3f3; }
.verdict-fail, .verdict-error { color: #a40000; font-weight: 600; }
.verdict-skip { color: #6b6b6b; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; max-height: 40em; }
section { border-top: 2px solid #888; margin-top: 1.5em; }
"""
COUNT_SCRIPT = ("document.body.dataset.cells = "
                "document.querySelectorAll('td.cell').length;")
_STATUSES = (PASS, FAIL, EXPECT, INFRA)


def _e(text: object) -> str:
    return html.escape(xml_text(str(text)), quote=True)


def anchor(cell_id: str) -> str:
    return f"cell-{cell_id}"


def _grid(outcomes: list[CellOutcome]) -> list[str]:
    """Rows: kernel x pahole x btfids in matrix order; columns: arches in matrix order."""
    arches = list(dict.fromkeys(o.cell.arch for o in outcomes))
    rows: dict[tuple[str, ...], dict[str, CellOutcome]] = {}
    for outcome in outcomes:
        key = tuple(outcome.cell.axis(k) for k in AXES if k != "arch")
        rows.setdefault(key, {})[outcome.cell.arch] = outcome
    head = "".join(f"<th>{_e(k)}</th>" for k in AXES if k != "arch")
    head += "".join(f"<th>{_e(a)}</th>" for a in arches)
    out = ['<table id="grid">', f"<tr>{head}</tr>"]
    for key, by_arch in rows.items():
        tds = "".join(f"<td>{_e(v)}</td>" for v in key)
        for arch in arches:
            outcome = by_arch.get(arch)
            if outcome is None:
                tds += '<td class="none"></td>'
                continue
            counts = outcome.counts()
            label = (f"{outcome.status}: {counts['pass']} pass, "
                     f"{counts['fail'] + counts['error']} fail")
            tds += (f'<td class="cell {outcome.status}" data-cell="{_e(outcome.cell.id)}">'
                    f'<a href="#{_e(anchor(outcome.cell.id))}">{_e(label)}</a></td>')
        out.append(f"<tr>{tds}</tr>")
    out.append("</table>")
    return out


def _facts(outcome: CellOutcome) -> list[str]:
    if not outcome.btf_facts:
        return []
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(fact_text(v))}</td></tr>"
                   for k, v in outcome.btf_facts.items())
    return ["<h3>BTF facts of the cell's vmlinux</h3>", f'<table class="facts">{rows}</table>']


def _lines(title: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    if not items:
        return []
    return [f"<h3>{_e(title)}</h3>", "<ul>"] + [f"<li>{_e(i)}</li>" for i in items] + ["</ul>"]


def _programs(outcome: CellOutcome) -> list[str]:
    if not outcome.results:
        return []
    out = ["<h3>Programs</h3>", '<table class="programs">',
           "<tr><th>program</th><th>verdict</th><th>expected</th><th>ms</th>"
           "<th>reason</th></tr>"]
    flaky = set(outcome.flaky)
    for result in outcome.results:
        expect = expected_failure(outcome.cell, result)
        verdict = result.verdict + (" (expected)" if expect is not None else "")
        verdict += " (flaky)" if result.test_id in flaky else ""
        ms = "" if result.time_ms is None else f"{result.time_ms:.1f}"
        reason = result.reason.splitlines()[0] if result.reason.strip() else ""
        out.append(f'<tr><td>{_e(result.object)}/{_e(result.program)}</td>'
                   f'<td class="verdict-{_e(result.verdict)}">{_e(verdict)}</td>'
                   f"<td>{_e(result.expected)}</td><td>{ms}</td><td>{_e(reason)}</td></tr>")
    out.append("</table>")
    for result in outcome.results:
        if failed(result):
            out += [f"<details><summary>{_e(result.test_id)}: {_e(result.verdict)}"
                    "</summary>", f'<pre class="log">{_e(result.failure_text())}</pre>',
                    "</details>"]
    return out


def _cell_section(outcome: CellOutcome) -> list[str]:
    cell, run = outcome.cell, outcome.run
    out = [f'<section id="{_e(anchor(cell.id))}">',
           f'<h2 class="{outcome.status}">{_e(cell.id)}: {_e(outcome.status)} '
           f"({outcome.seconds:.0f} s)</h2>"]
    if run is not None:
        out.append(f"<p>{_e(run.header())}</p>")
    out += _lines("Infra error", [outcome.infra_error] if outcome.infra_error else [])
    if run is not None and run.error:
        out += _lines("Run error", [run.error])
    out += _lines("Expectations that did not hold", outcome.expect_errors)
    out += _lines("Changes against the baseline", outcome.changes)
    out += _lines("Notes", outcome.notes)
    out += _lines("Flaky (failed once, passed on retry)", outcome.flaky)
    out += _facts(outcome)
    out += _programs(outcome)
    if run is not None and run.console:
        out += ["<details><summary>console (last lines)</summary>",
                f'<pre class="console">{_e(run.console_excerpt())}</pre>', "</details>"]
    out.append("</section>")
    return out


def report_html(outcomes: list[CellOutcome], *, title: str) -> str:
    """The page: title, counts, the grid, then one section per cell."""
    statuses = [o.status for o in outcomes]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in _STATUSES)
    body = [f"<h1>{_e(title)}</h1>", f"<p>{len(outcomes)} cells: {_e(counts)}</p>"]
    body += _grid(outcomes)
    for outcome in outcomes:
        body += _cell_section(outcome)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{COUNT_SCRIPT}</script>\n</body></html>\n")
