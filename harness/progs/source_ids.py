"""The sub-test names a program source will give, read from its C text, before any build.

pytest collects the guest suite's test ids before a kernel exists (collection must never
build), so they come from the sources: each ``SEC("...")`` function, its test_loader
mode (privileged, ``@unpriv`` when a ``__*_unpriv`` annotation asks for it, nothing for
``__auxiliary``) and the ``@rnd_hi32`` twin of an object that calls a ``KF_IMPLICIT_ARGS``
kfunc, as harness.progs.runner.plan names them from the compiled object. The plan stays
the authority (it reads the implicit-arg kfuncs from the built kernel's .BTF_ids; here
they are read from the tree's BTF_ID_FLAGS declarations): the suite checks that both
agree once the objects are compiled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

# bpf_misc.h annotations that select the privileged run (test_loader's PRIV mode bit).
_PRIV_MACROS = frozenset({
    "__success", "__failure", "__msg", "__not_msg", "__xlated", "__jited", "__retval",
    "__auxiliary", "__stderr", "__stdout",
})
_AUX_MACROS = frozenset({"__auxiliary", "__auxiliary_unpriv"})

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_SEC = re.compile(r'\bSEC\(\s*"((?:\\.|[^"\\])*)"\s*\)')
# a function definition: name, parameter list (one level of nesting), then its body
_DEFINITION = re.compile(r"\b([A-Za-z_]\w*)\s*\(((?:[^()]|\([^()]*\))*)\)\s*\{")
_MACRO = re.compile(r"\b(__\w+)")
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")
# libbpf's definition macros name the program first: int BPF_PROG(name, args...) { }
_WRAPPER = re.compile(r"BPF_[A-Z0-9_]+")
_FIRST_ARG = re.compile(r"\s*([A-Za-z_]\w*)\s*[,)]")


def strip_comments(text: str) -> str:
    """C source without its comments (each a space): commented-out code must not count."""
    return _COMMENT.sub(" ", text)


def _blank_strings(text: str) -> str:
    """String literals emptied (a __msg("{{...}}") must not look like a body)."""
    return _STRING.sub('""', text)


def program_runs(source: Path) -> list[str]:
    """Run names in source order: ``prog`` and/or ``prog @unpriv`` per test program."""
    text = strip_comments(source.read_text(errors="replace"))
    runs: list[str] = []
    for sec in _SEC.finditer(text):
        section = sec.group(1)
        if section == "license" or section.startswith("."):
            continue  # maps, struct_ops maps, data: not programs
        rest = _blank_strings(text[sec.end():])
        definition = _DEFINITION.search(rest)
        if definition is None:
            continue
        macros = set(_MACRO.findall(rest[:definition.start()]))
        if macros & _AUX_MACROS:
            continue
        name = definition.group(1)
        if _WRAPPER.fullmatch(name):
            first = _FIRST_ARG.match(definition.group(2) + ")")
            name = first.group(1) if first else name
        unpriv = any(m.endswith("_unpriv") for m in macros)
        if macros & _PRIV_MACROS or not unpriv:
            runs.append(name)
        if unpriv:
            runs.append(f"{name} @unpriv")
    return runs


_IMPLICIT_DECL = re.compile(r"BTF_ID_FLAGS\(\s*func\s*,\s*(\w+)\s*,[^)]*KF_IMPLICIT_ARGS")


def _kfunc_source_files(tree: Path) -> Iterator[Path]:
    from harness.kbuild.build import TESTMOD_DIRS  # noqa: PLC0415 - kbuild is heavy

    for sub in ("kernel", "net", "drivers/hid", "fs", "mm", *TESTMOD_DIRS):
        base = tree / sub
        if base.is_dir():
            yield from base.rglob("*.c")


@functools.cache
def declared_implicit_kfuncs(tree: Path) -> frozenset[str]:
    """Kfuncs the tree's sources declare ``KF_IMPLICIT_ARGS`` (and their ``_impl`` twins):
    the prediction before a build (a superset: kfuncs of options not built are in it)."""
    names: set[str] = set()
    for path in _kfunc_source_files(tree):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if "KF_IMPLICIT_ARGS" not in text:
            continue
        for m in _IMPLICIT_DECL.finditer(text):
            names.update((m.group(1), m.group(1) + "_impl"))
    return frozenset(names)


def calls_any(source: Path, kfuncs: frozenset[str]) -> bool:
    """Whether the source's own code names one of `kfuncs` (comments and strings aside)."""
    text = _blank_strings(strip_comments(source.read_text(errors="replace")))
    return not kfuncs.isdisjoint(_IDENT.findall(text))


def source_job_ids(source: Path, implicit_kfuncs: frozenset[str]) -> list[str]:
    """``stem/run`` ids, with the ``@rnd_hi32`` twin plan() adds to implicit-arg callers."""
    stem = source.name.removesuffix(".c").removesuffix(".bpf")
    twin = calls_any(source, implicit_kfuncs)
    out = []
    for run in program_runs(source):
        out.append(f"{stem}/{run}")
        if twin:
            out.append(f"{stem}/{run}@rnd_hi32")
    return out
