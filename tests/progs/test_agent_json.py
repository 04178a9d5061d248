"""The agent's JSON codec (json's C half only, for a fast start on a TCG guest) against
the json module, and the agent starting without the modules it avoids."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.progs import agent
from harness.progs.runner import AGENT

VALUES: list[object] = [
    None, True, False, 0, -1, 2**64 + 1, 1.5, -0.0, 1e300, 3.141592653589793, "",
    "plain", "quote \" backslash \\ newline \n tab \t nul \0 del \x7f", "é ü ∑ 😀",
    [], {}, [1, [2, [3, []]]], (1, "two"),
    {"id": "wq/test", "verifier_log": "R1 type=ctx\n" * 50, "retval": 42,
     "libbpf_log": [[0, "libbpf: extern (func ksym) 'x': not found\n"]],
     "nested": {"a": [None, True, 0.25]}},
    {7: "int key", 2.5: "float key", True: "bool key", None: "none key"},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_reads_back_as_json_dumps_does(value: object) -> None:
    ours = agent.json_dumps(value)
    assert json.loads(ours) == json.loads(json.dumps(value))
    assert ours.isascii()


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_loads_reads_what_json_writes(value: object) -> None:
    text = json.dumps(value, indent=1, ensure_ascii=False)
    assert agent.json_loads(text) == json.loads(text)
    assert agent.json_loads(text.encode()) == json.loads(text)


def test_non_finite_floats_as_json_writes_them() -> None:
    text = agent.json_dumps([math.nan, math.inf, -math.inf])
    assert text == json.dumps([math.nan, math.inf, -math.inf])
    back = agent.json_loads(text)
    assert math.isnan(back[0]) and back[1:] == [math.inf, -math.inf]


@pytest.mark.parametrize("text", ["", "   ", "{", "[1,]", '{"a" 1}', "[1] [2]", "nul",
                                  '"unterminated', "{'single': 1}"])
def test_malformed_input_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        agent.json_loads(text)


def test_what_json_cannot_write_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        agent.json_dumps({"x": object()})
    with pytest.raises(TypeError):
        agent.json_dumps({(1, 2): "tuple key"})


def test_the_agent_starts_without_json_re_enum_or_signal(tmp_path: Path) -> None:
    """What the guest pays for on every round: none of the modules the codec avoids."""
    code = (f"import sys; sys.argv = ['agent.py']; exec(compile(open({str(AGENT)!r}).read(), "
            "'agent.py', 'exec'), {'__name__': 'agent'}); "
            "print(sorted(m for m in ('json', 're', 'enum', 'signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip() == "[]"
