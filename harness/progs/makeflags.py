"""The selftests' BPF compile flags, asked of the tree's own Makefile rather than copied.

tools/testing/selftests/bpf/Makefile builds each program as
``$(CLANG) $(TRUNNER_BPF_CFLAGS) $(<src>-CFLAGS) $(<src>-<flavor>-CFLAGS) -O2
$(BPF_TARGET_ENDIAN) -c src -mcpu=vN``, with TRUNNER_BPF_CFLAGS and the build rule set per
test_progs flavor (default: v3 and -DENABLE_ATOMICS_TESTS; no_alu32: v2; cpuv4: v4). Those
differ between releases (6.12 has no libarena, 7.x adds -fms-extensions), so make itself
expands them: a throw-away makefile read after the tree's prints every value with
``$(info)``, for this clang and arch (its feature checks and get_sys_includes run once per
tree, arch and clang, ~2 s, and the answer is cached). The only text read from the
Makefile is which rule and which TRUNNER_BPF_CFLAGS each ``DEFINE_TEST_RUNNER,test_progs``
flavor is defined with; make expands both.

The tree's scratch include dir (vmlinux.h, libbpf's headers) becomes the harness's own:
vmlinux.h from the built kernel, libbpf's headers from its tools build.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.arch import lookup
from harness.cache import atomic_write, cache_dir, locked, touch_used
from harness.errors import HarnessError
from harness.kbuild.kconfig import SELFTESTS_DIR as SELFTESTS  # declared once, in kbuild

DEFAULT_FLAVOR = "default"  # test_progs itself; the others are test_progs-<flavor>
_PRINT = "HARNESS-MAKEFLAGS "
_RULE = re.compile(r"^TRUNNER_BPF_BUILD_RULE\s*:=\s*(\S+)\s*$")
_CFLAGS = re.compile(r"^TRUNNER_BPF_CFLAGS\s*:=(.*)$")
_RUNNER = re.compile(r"^\$\(eval \$\(call DEFINE_TEST_RUNNER,test_progs(?:,(\w+))?\)\)")
_MCPU = re.compile(r"-mcpu=(v\d)")
_SRC, _OUT, _FLAGS = "HARNESS-SRC.c", "HARNESS-OUT.o", "HARNESS-CFLAGS"  # $1 $2 $3 of a rule


class MakeflagsError(HarnessError):
    """The tree's selftests Makefile could not be asked for its flags."""


@dataclass(frozen=True)
class Flavor:
    """One test_progs flavor's compile: what goes before and after the source."""

    name: str  # default, no_alu32, cpuv4
    cflags: tuple[str, ...]  # TRUNNER_BPF_CFLAGS, expanded
    rule_flags: tuple[str, ...]  # the build rule's own: -O2 --target=bpfel -mcpu=v3


@dataclass(frozen=True)
class SelftestsFlags:
    """Every flavor of one tree, arch and clang, plus per-source extras."""

    flavors: dict[str, Flavor]
    per_source: dict[str, tuple[str, ...]]  # "progs/x.c" or "progs/x.c-no_alu32" -> flags
    include_dir: str  # the Makefile's $(INCLUDE_DIR) in `cflags`, to substitute

    def command_flags(self, flavor: str, source: Path, tree: Path,
                      include_dirs: tuple[Path, ...]) -> list[str]:
        """The flags `clang ... -c source` gets for `flavor`, with the tree's scratch
        include dir replaced by `include_dirs` (vmlinux.h, libbpf's headers)."""
        try:
            chosen = self.flavors[flavor]
        except KeyError:
            raise MakeflagsError(f"no test_progs flavor {flavor!r} in this tree's Makefile "
                                 f"(it has {', '.join(self.flavors)})") from None
        flags: list[str] = []
        for flag in chosen.cflags:
            if flag == f"-I{self.include_dir}":
                flags += [f"-I{d}" for d in include_dirs]
            else:
                flags.append(flag)
        try:
            rel = str(source.resolve().relative_to(tree.resolve() / SELFTESTS))
        except ValueError:
            rel = ""
        suffix = "" if flavor == DEFAULT_FLAVOR else f"-{flavor}"
        flags += self.per_source.get(rel, ()) + self.per_source.get(rel + suffix, ())
        return flags + list(chosen.rule_flags)


def runner_flavors(makefile_text: str) -> list[tuple[str, str, str]]:
    """(flavor, build rule variable, TRUNNER_BPF_CFLAGS text) of each test_progs runner,
    as the Makefile assigns them right before its DEFINE_TEST_RUNNER call."""
    rule = cflags = ""
    found = []
    for line in makefile_text.splitlines():
        if match := _RULE.match(line):
            rule = match.group(1)
        elif match := _CFLAGS.match(line):
            cflags = match.group(1).strip()
        elif (match := _RUNNER.match(line)) and rule.startswith("CLANG_"):
            found.append((match.group(1) or DEFAULT_FLAVOR, rule, cflags))  # not bpf_gcc
    return found


def _print_makefile(flavors: list[tuple[str, str, str]]) -> str:
    lines = ["define harness_newline", "", "", "endef",  # a rule is a multi-line define
             f"$(info {_PRINT}INCLUDE_DIR $(INCLUDE_DIR))",
             f"$(foreach v,$(filter %.c-CFLAGS,$(.VARIABLES)),"
             f"$(info {_PRINT}SOURCE $(v:%-CFLAGS=%) $($(v))))",
             f"$(foreach f,{' '.join(f for f, _, _ in flavors)},"
             f"$(foreach v,$(filter %.c-$(f)-CFLAGS,$(.VARIABLES)),"
             f"$(info {_PRINT}SOURCE $(v:%-CFLAGS=%) $($(v)))))"]
    for flavor, rule, cflags in flavors:
        lines.append(f"$(info {_PRINT}CFLAGS {flavor} {cflags})")
        lines.append(f"$(info {_PRINT}RULE {flavor} $(subst $(harness_newline), ,"
                     f"$(call {rule},{_SRC},{_OUT},{_FLAGS},test_progs)))")
    lines.append("harness-makeflags: ; @:")
    return "\n".join(lines) + "\n"


def _rule_flags(recipe: str) -> tuple[str, ...]:
    """The flags a build rule adds around the source (`-O2 --target=bpfel -mcpu=v3`): the
    words of its clang command after the CFLAGS argument, but for `-c SRC -o OUT`."""
    words = recipe.split()
    if _FLAGS not in words or _SRC not in words:
        raise MakeflagsError(f"cannot read the build rule: {recipe[:160]}")
    words = words[words.index(_FLAGS) + 1:]
    words = words[:words.index("||")] if "||" in words else words  # PERMISSIVE's fallback
    out = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "-o":
            skip = True
        elif word not in ("-c", _SRC):
            out.append(word)
    if not any(_MCPU.fullmatch(word) for word in out):
        raise MakeflagsError(f"the build rule names no -mcpu: {recipe[:160]}")
    return tuple(out)


def _parse(output: str) -> SelftestsFlags:
    flavors: dict[str, Flavor] = {}
    cflags: dict[str, tuple[str, ...]] = {}
    per_source: dict[str, tuple[str, ...]] = {}
    include_dir = ""
    for line in output.splitlines():
        if not line.startswith(_PRINT):
            continue
        kind, _, rest = line[len(_PRINT):].partition(" ")
        if kind == "INCLUDE_DIR":
            include_dir = rest.strip()
        elif kind == "SOURCE":
            name, _, value = rest.partition(" ")
            per_source[name] = tuple(shlex.split(value))
        elif kind == "CFLAGS":
            flavor, _, value = rest.partition(" ")
            cflags[flavor] = tuple(shlex.split(value))
        elif kind == "RULE":
            flavor, _, recipe = rest.partition(" ")
            flavors[flavor] = Flavor(flavor, cflags.get(flavor, ()), _rule_flags(recipe))
    if DEFAULT_FLAVOR not in flavors or not include_dir:
        raise MakeflagsError("the selftests Makefile printed no test_progs flags")
    return SelftestsFlags(flavors, per_source, include_dir)


def selftests_flags(tree: Path, arch: str, clang: str, clang_version: str) -> SelftestsFlags:
    """The tree's flags for `arch` and `clang` (cached on disk per Makefile, arch, clang)."""
    makefile = tree / SELFTESTS / "Makefile"
    try:
        text = makefile.read_text(errors="replace")
    except OSError as exc:
        raise MakeflagsError(f"cannot read {makefile}: {exc.strerror}") from None
    flavors = runner_flavors(text)
    if not flavors:
        raise MakeflagsError(f"{makefile} defines no test_progs runner")
    key = hashlib.sha256("\0".join(["makeflags-v1", str(tree.resolve()), text, arch, clang,
                                    clang_version]).encode()).hexdigest()[:24]
    entry = cache_dir("progs", "makeflags") / key
    answer = entry / "flags.json"
    with locked(entry):
        if answer.is_file():
            touch_used(entry)
            return _from_json(answer.read_text())
        out = entry / "out"
        out.mkdir(parents=True, exist_ok=True)
        printer = entry / "print.mk"
        printer.write_text(_print_makefile(flavors))
        record = lookup(arch)
        cmd = ["make", "-s", "--no-print-directory", "-C", str(makefile.parent),
               "-f", "Makefile", "-f", str(printer), f"OUTPUT={out}", f"CLANG={clang}",
               f"ARCH={record.kernel_arch}", f"SRCARCH={record.kernel_arch}",
               *([f"CROSS_COMPILE={record.cross_prefix}"] if record.cross_prefix else []),
               "harness-makeflags"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MakeflagsError(f"asking {makefile} for its flags: {exc}") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise MakeflagsError(f"asking {makefile} for its flags: {last}")
        flags = _parse(proc.stdout)
        atomic_write(answer, _to_json(flags))
    return flags


def _to_json(flags: SelftestsFlags) -> str:
    return json.dumps({
        "include_dir": flags.include_dir,
        "per_source": {k: list(v) for k, v in flags.per_source.items()},
        "flavors": {n: {"cflags": list(f.cflags), "rule_flags": list(f.rule_flags)}
                    for n, f in flags.flavors.items()}}, indent=1)


def _from_json(text: str) -> SelftestsFlags:
    data = json.loads(text)
    return SelftestsFlags(
        {n: Flavor(n, tuple(f["cflags"]), tuple(f["rule_flags"]))
         for n, f in data["flavors"].items()},
        {k: tuple(v) for k, v in data["per_source"].items()}, data["include_dir"])
