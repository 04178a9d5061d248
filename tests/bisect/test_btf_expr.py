"""`btf:` predicates: parsing (columns, precedence, strings, paths) and every atom, on the
real 7.3 vmlinux BTF checked in under tests/data and on small synthetic BTFs."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from harness.bisect import btf_expr
from harness.bisect.btf_expr import BtfExpr, ExprError, ExprResult
from harness.btf import INT_SIGNED
from harness.btf.btf import Btf
from harness.btf.kinds import Kind
from harness.btf.types import DeclTag
from harness.errors import UsageError
from tests.helpers import synth, testdata

WQ_PROTO = ("int bpf_wq_set_callback(struct bpf_wq *wq, int (*callback_fn)(void *, int *, "
            "void *), unsigned int flags)")


@pytest.fixture(scope="module")
def vmlinux() -> Btf:
    """The real 7.3 x86_64 BTF, decompressed and parsed once for the module (~0.3 s)."""
    return Btf.from_bytes(testdata.vmlinux_73())


def ev(text: str, btf: Btf) -> ExprResult:
    return BtfExpr.parse(text).evaluate(btf)


def small(*, bad_func: bool = False) -> Btf:
    """FUNCs for the precise cases: parameter counts, tags, arena pointers, duplicates;
    `bad_func` adds a FUNC whose type is no FUNC_PROTO (which loading would reject)."""
    b = Btf()
    i = b.add_int("int", 4, INT_SIGNED)
    p_int = b.add_ptr(i)
    p_void = b.add_ptr(0)
    arena_void = b.add_ptr(b.add_type_attr("address_space(1)", 0))
    arena_const_int = b.add_ptr(b.add_const(b.add_type_attr("address_space(1)", i)))
    plain_tag_ptr = b.add_ptr(b.add_type_tag("address_space(1)", i))  # btf_type_tag, no attr

    def func(name: str, ret: int, params: list[tuple[str | None, int]]) -> int:
        proto = b.add_func_proto(ret)
        for pname, ptype in params:
            b.add_func_param(pname, ptype)
        return b.add_func(name, 1, proto)

    k3 = func("k3", i, [("a", i), ("b", p_int), ("c", i)])
    b.add_decl_tag("bpf_kfunc", k3)
    b.add_decl_tag("bpf_fastcall", k3)
    b.add_decl_tag("argtag", k3, 0)          # on parameter 0, not on the FUNC
    func("plain", i, [])
    func("varg", i, [("fmt", p_int), (None, 0)])
    func("arena_ret", arena_void, [("p", p_void)])
    func("arena_arg", i, [("p", p_void), ("q", arena_const_int)])
    func("tag_only", i, [("q", plain_tag_ptr)])
    func("dup", i, [("a", i)])
    dup2 = func("dup", i, [("a", i), ("b", i)])
    b.add_decl_tag("bpf_kfunc", dup2)
    if bad_func:
        b.add_func("bad_func", 1, i)
    return b


def with_funcs(names: set[str]) -> Btf:
    b = Btf()
    proto = b.add_func_proto(b.add_int("int", 4, INT_SIGNED))
    for name in sorted(names):
        b.add_func(name, 1, proto)
    return b


# ---- parsing ----------------------------------------------------------------------------------


def test_syntax_error_message_names_the_column() -> None:
    with pytest.raises(ExprError) as ei:
        BtfExpr.parse("kfunc(bpf_wq")
    assert str(ei.value) == "btf: expected ')' at column 13 in 'kfunc(bpf_wq'"
    assert ei.value.column == 13
    assert isinstance(ei.value, UsageError) and ei.value.exit_code == 2


@pytest.mark.parametrize(("text", "column", "words"), [
    ("", 1, "expected a predicate"),
    ("foo(x)", 1, "unknown predicate 'foo'"),
    ("func(x) and", 12, "expected a predicate"),
    ("func(x) and or func(y)", 13, "found 'or'"),
    ("not", 4, "expected a predicate"),
    ("(func(x)", 9, "expected ')'"),
    ("func(x))", 8, "expected 'and', 'or' or the end, found ')'"),
    ("func(x) func(y)", 9, "found 'func'"),
    ("func 1", 6, "expected '('"),
    ("func(1x)", 6, "expected a function name, found '1'"),
    ("kfunc(x) && kfunc(y)", 10, "unexpected character '&'"),
    ("tag(bpf_kfunc bpf_wq_init)", 15, "expected ','"),
    ("tag(, f)", 5, "expected a tag name"),
    ("params(x)", 10, "expected a comparison"),
    ("params(x) = 3", 11, "(equality is '==')"),
    ("params(x) ~ 3", 11, "expected a comparison"),
    ("params(x) == y", 14, "expected a number"),
    ('proto(x) < "a"', 10, "expected '==', '!=' or '~'"),
    ("proto(x) == int", 13, "expected a string"),
    ('proto(x) == "abc', 13, "unterminated string"),
    ('proto(x) == "a\\n"', 15, "escapes"),
    ("diff() == empty", 6, "expected a path"),
    ("diff(/x) == nothing", 13, "expected 'empty', found 'nothing'"),
    ("diff(/x) ~ empty", 12, "expected a string"),
    ("diff(/x)", 9, "expected '==', '!=' or '~'"),
    ("btf:func(x)", 4, "unexpected character ':'"),
])
def test_syntax_errors(text: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as ei:
        BtfExpr.parse(text)
    msg = str(ei.value)
    assert ei.value.column == column, msg
    assert words in msg
    assert msg.startswith("btf: ") and msg.endswith(f" at column {column} in '{text}'")
    assert "\n" not in msg


@pytest.mark.parametrize(("text", "grouped"), [
    ("not func(a) and func(b) or func(c)", "((not func(a)) and func(b)) or func(c)"),
    ("func(a) or func(b) and func(c)", "func(a) or (func(b) and func(c))"),
    ("not (func(a) and func(b))", "not (func(a) and func(b))"),
    ("not not func(a)", "not (not func(a))"),
    ("func(a) and func(b) and func(c) or func(d)",
     "(func(a) and func(b) and func(c)) or func(d)"),
    ("(func(a) or func(b)) and func(c)", "(func(a) or func(b)) and func(c)"),
])
def test_precedence_grouping(text: str, grouped: str) -> None:
    expr = BtfExpr.parse(text)
    assert expr.text == text
    assert expr.canonical() == grouped
    assert BtfExpr.parse(grouped).canonical() == grouped


@pytest.mark.parametrize(("text", "truth"), [
    ("not func(a) and func(b) or func(c)", lambda a, b, c: (not a and b) or c),
    ("func(a) or func(b) and func(c)", lambda a, b, c: a or (b and c)),
    ("not (func(a) or func(b)) and func(c)", lambda a, b, c: not (a or b) and c),
    ("not func(a) or not func(b) and func(c)", lambda a, b, c: (not a) or ((not b) and c)),
])
def test_precedence_by_evaluation(text: str, truth) -> None:
    expr = BtfExpr.parse(text)
    for a, b, c in itertools.product((False, True), repeat=3):
        present = {n for n, on in (("a", a), ("b", b), ("c", c)) if on}
        assert expr.evaluate(with_funcs(present)).value is truth(a, b, c), (text, present)


def test_and_or_not_details() -> None:
    btf = with_funcs({"a", "b"})
    r = ev("func(a) and func(zz) and func(b)", btf)
    assert r == ExprResult(False, "func(zz): no FUNC named zz")  # the first false one says why
    r = ev("func(a) and func(b)", btf)
    assert r.value and r.detail == (
        f"func(a): FUNC [{btf.find('a')}] a exists; func(b): FUNC [{btf.find('b')}] b exists")
    assert ev("func(x) or func(y)", btf) == ExprResult(
        False, "func(x): no FUNC named x; func(y): no FUNC named y")
    assert ev("func(x) or func(b)", btf).detail == f"func(b): FUNC [{btf.find('b')}] b exists"
    assert ev("not func(x)", btf) == ExprResult(True, "not (func(x): no FUNC named x)")


def test_strings_paths_and_keywords_round_trip() -> None:
    for text in ['proto(f) ~ "a\\"b\\\\c"', 'tag("has space", f)', 'diff("/a b/c.btf") == empty',
                 "diff(/tmp/ref.btf) != empty", 'diff(/a/b(1).btf) ~ "x"', "params(f) >= 2",
                 "func(and) or func(not)"]:
        once = BtfExpr.parse(text).canonical()
        assert BtfExpr.parse(once).canonical() == once
    assert BtfExpr.parse('proto(f) ~ "a\\"b\\\\c"')._root.want == 'a"b\\c'
    assert BtfExpr.parse("diff(/a/b(1).btf) == empty")._root.path == "/a/b(1).btf"
    assert BtfExpr.parse('diff("/a b") == empty')._root.path == "/a b"
    assert BtfExpr.parse("diff( /x/y.btf )==empty")._root.path == "/x/y.btf"
    assert BtfExpr.parse("tag(bpf_kfunc,f)").canonical() == "tag(bpf_kfunc, f)"


# ---- atoms on the real 7.3 BTF ---------------------------------------------------------------


def test_func(vmlinux: Btf) -> None:
    impl = vmlinux.find("bpf_wq_set_callback_impl", Kind.FUNC)
    assert ev("func(bpf_wq_set_callback_impl)", vmlinux) == ExprResult(
        True, f"func(bpf_wq_set_callback_impl): FUNC [{impl}] bpf_wq_set_callback_impl exists")
    assert ev("func(bpf_no_such_func)", vmlinux) == ExprResult(
        False, "func(bpf_no_such_func): no FUNC named bpf_no_such_func")
    assert not ev("func(bpf_wq)", vmlinux).value   # a STRUCT of that name is no FUNC


def test_kfunc(vmlinux: Btf) -> None:
    cb = vmlinux.find("bpf_wq_set_callback", Kind.FUNC)
    impl = vmlinux.find("bpf_wq_set_callback_impl", Kind.FUNC)
    assert ev("kfunc(bpf_wq_set_callback)", vmlinux) == ExprResult(
        True, f"kfunc(bpf_wq_set_callback): FUNC [{cb}] bpf_wq_set_callback carries bpf_kfunc")
    # 7.3: the KF_IMPLICIT_ARGS kernel function exists but is not what BPF calls
    assert ev("kfunc(bpf_wq_set_callback_impl)", vmlinux) == ExprResult(
        False, f"kfunc(bpf_wq_set_callback_impl): FUNC [{impl}] bpf_wq_set_callback_impl has "
               "no decl tag bpf_kfunc (no decl tags)")
    assert ev("kfunc(bpf_nope)", vmlinux) == ExprResult(False, "kfunc(bpf_nope): no FUNC named "
                                                               "bpf_nope")
    assert ev("kfunc(bpf_arena_alloc_pages) and kfunc(bpf_wq_init)", vmlinux).value


def test_tag(vmlinux: Btf) -> None:
    init = vmlinux.find("bpf_wq_init", Kind.FUNC)
    r = ev("tag(bpf_kfunc, bpf_wq_init) and not func(bpf_foo)", vmlinux)
    assert r == ExprResult(True, f"tag(bpf_kfunc, bpf_wq_init): FUNC [{init}] bpf_wq_init "
                                 "carries bpf_kfunc; not (func(bpf_foo): no FUNC named bpf_foo)")
    assert ev("tag(bpf_fastcall, bpf_cast_to_kern_ctx)", vmlinux).value
    assert ev('tag("bpf_fastcall", bpf_rdonly_cast)', vmlinux).value
    assert ev("tag(bpf_fastcall, bpf_wq_init)", vmlinux) == ExprResult(
        False, f"tag(bpf_fastcall, bpf_wq_init): FUNC [{init}] bpf_wq_init has no decl tag "
               "bpf_fastcall (tags: bpf_kfunc)")
    assert ev("tag(bpf_kfunc, bpf_nope)", vmlinux).detail == (
        "tag(bpf_kfunc, bpf_nope): no FUNC named bpf_nope")


def test_params(vmlinux: Btf) -> None:
    assert ev("params(bpf_wq_set_callback) == 3", vmlinux) == ExprResult(
        True, "params(bpf_wq_set_callback) = 3")
    assert ev("params(bpf_wq_set_callback_impl) == 4", vmlinux).value
    assert ev("params(bpf_wq_set_callback) > 3", vmlinux) == ExprResult(
        False, "params(bpf_wq_set_callback) = 3, not > 3")
    for op, want in (("!=", False), ("<", False), ("<=", True), (">=", True)):
        assert ev(f"params(bpf_wq_set_callback) {op} 3", vmlinux).value is want, op
    assert ev("params(bpf_nope) == 0", vmlinux) == ExprResult(
        False, "params(bpf_nope): no FUNC named bpf_nope")
    # a missing FUNC is false whatever the comparison, so `not` of it is true
    assert ev("not params(bpf_nope) != 0", vmlinux).value


def test_proto(vmlinux: Btf) -> None:
    r = ev(f'proto(bpf_wq_set_callback) == "{WQ_PROTO}"', vmlinux)
    assert r == ExprResult(True, f'proto(bpf_wq_set_callback) = {WQ_PROTO}, == "{WQ_PROTO}"')
    spaced = "  " + WQ_PROTO.replace(" ", " \n\t  ") + " ;"
    assert ev(f'proto(bpf_wq_set_callback) == "{spaced}"', vmlinux).value
    # runs of whitespace collapse to one space; whitespace where C text has none still counts
    assert not ev(f'proto(bpf_wq_set_callback) == "{WQ_PROTO.replace("(", "( ", 1)}"',
                  vmlinux).value
    assert not ev(f'proto(bpf_wq_set_callback) != "{WQ_PROTO}"', vmlinux).value
    assert ev('proto(bpf_wq_set_callback) ~ "struct bpf_wq  *wq"', vmlinux).value
    r = ev('proto(bpf_wq_set_callback) ~ "bpf_prog_aux"', vmlinux)
    assert r == ExprResult(False, f'proto(bpf_wq_set_callback) = {WQ_PROTO}, does not contain '
                                  '"bpf_prog_aux"')
    assert ev('proto(bpf_wq_set_callback_impl) ~ "struct bpf_prog_aux *aux)"', vmlinux).value
    r = ev('proto(bpf_wq_set_callback_impl) == "int f(void)"', vmlinux)
    assert not r.value and r.detail.endswith(', != "int f(void)"')
    assert ev('proto(bpf_wq_set_callback_impl) != "int f(void)"', vmlinux).value
    assert ev('proto(bpf_nope) ~ ""', vmlinux) == ExprResult(
        False, "proto(bpf_nope): no FUNC named bpf_nope")


def test_arena(vmlinux: Btf) -> None:
    assert ev("arena(bpf_arena_alloc_pages)", vmlinux) == ExprResult(
        True, "arena(bpf_arena_alloc_pages): address_space(1) on return, addr__ign")
    assert ev("arena(bpf_arena_free_pages)", vmlinux).detail == (
        "arena(bpf_arena_free_pages): address_space(1) on ptr__ign")
    init = vmlinux.find("bpf_wq_init", Kind.FUNC)
    assert ev("arena(bpf_wq_init)", vmlinux) == ExprResult(
        False, f"arena(bpf_wq_init): no parameter or return type of FUNC [{init}] bpf_wq_init "
               "points to address_space(1)")
    assert ev("arena(bpf_nope)", vmlinux).detail == "arena(bpf_nope): no FUNC named bpf_nope"


# ---- precise cases on synthetic BTF -----------------------------------------------------------


def test_params_synthetic() -> None:
    b = small(bad_func=True)
    assert ev("params(k3) == 3", b).value
    assert ev("params(plain) == 0", b).detail == "params(plain) = 0"
    assert ev("params(varg) == 1", b).value          # the `...` is not a parameter
    assert ev("params(dup) == 2", b).value           # the bpf_kfunc one of two FUNCs "dup"
    bad = b.find("bad_func", Kind.FUNC)
    assert ev("params(bad_func) == 0", b) == ExprResult(
        False, f"params(bad_func): FUNC [{bad}] bad_func has no FUNC_PROTO")
    r = ev('proto(bad_func) ~ ""', b)
    assert not r.value and "has no FUNC_PROTO" in r.detail
    assert ev('proto(varg) == "int varg(int *fmt, ...)"', b).value
    assert ev('proto(plain) == "int plain(void)"', b).value


def test_tags_synthetic() -> None:
    b = small()
    assert ev("kfunc(k3) and tag(bpf_fastcall, k3)", b).value
    r = ev("tag(argtag, k3)", b)                      # component 0 is not the FUNC's own tag
    assert not r.value and r.detail.endswith("(tags: bpf_kfunc, bpf_fastcall)")
    assert ev("kfunc(plain)", b).detail.endswith("has no decl tag bpf_kfunc (no decl tags)")
    assert ev("kfunc(dup)", b).value                  # any FUNC of the name will do


def test_arena_synthetic() -> None:
    b = small(bad_func=True)
    assert ev("arena(arena_ret)", b).detail == "arena(arena_ret): address_space(1) on return"
    assert ev("arena(arena_arg)", b).detail == "arena(arena_arg): address_space(1) on q"
    assert not ev("arena(tag_only)", b).value         # a btf_type_tag is not the attribute
    assert not ev("arena(k3)", b).value
    assert not ev("arena(bad_func)", b).value


# ---- diff -------------------------------------------------------------------------------------


def renamed(b: Btf, old: str, new: str) -> Btf:
    c = b.copy()
    tid = c.find(old, Kind.FUNC)
    f = c[tid].copy()
    f.name_off = c.add_str(new)
    c[tid] = f
    return c


def test_diff_identical_copy_is_empty(tmp_path: Path) -> None:
    b = small()
    ref = tmp_path / "same.btf"
    ref.write_bytes(b.to_bytes())
    assert ev(f"diff({ref}) == empty", b) == ExprResult(True, f"diff({ref}): equal")
    assert ev(f"diff({ref}) != empty", b) == ExprResult(False, f"diff({ref}): equal")
    assert not ev(f'diff({ref}) ~ "equal"', b).value   # the summary line is not matched


def test_diff_against_modified_copy(tmp_path: Path) -> None:
    b = small()
    ref = tmp_path / "ref.btf"
    ref.write_bytes(renamed(b, "plain", "plain_old").to_bytes())
    r = ev(f"diff({ref}) == empty", b)
    assert not r.value
    assert r.detail == (f"diff({ref}): 2 type difference(s) (+1 -1 ~0), 0 kfunc difference(s); "
                        "first: - func plain_old")
    assert ev(f"diff({ref}) != empty", b).value
    assert ev(f'diff({ref}) ~ "plain_old"', b) == ExprResult(
        True, f'diff({ref}) contains "plain_old": - func plain_old')
    assert ev(f'diff({ref}) ~ "+ func plain"', b).value
    r = ev(f'diff({ref}) ~ "kfunc"', b)          # only "0 kfunc difference(s)" says kfunc
    assert r == ExprResult(False, f'diff({ref}) has no "kfunc" (2 type difference(s) '
                                  "(+1 -1 ~0), 0 kfunc difference(s))")


def test_diff_sees_a_dropped_kfunc_tag(tmp_path: Path) -> None:
    b = small()
    c = b.copy()
    k3 = c.find("k3", Kind.FUNC)
    tag_id = next(tid for tid, t in c.items() if isinstance(t, DeclTag) and t.type == k3
                  and c.name(t) == "bpf_kfunc")
    tag = c[tag_id].copy()
    tag.name_off = c.add_str("not_kfunc")
    c[tag_id] = tag
    ref = tmp_path / "untagged.btf"
    ref.write_bytes(c.to_bytes())
    assert ev(f'not diff({ref}) == empty and diff({ref}) ~ "+ kfunc k3"', b).value


def test_diff_path_quoted_and_reference_reread_on_change(tmp_path: Path) -> None:
    b = small()
    ref = tmp_path / "with space" / "ref.btf"
    ref.parent.mkdir()
    ref.write_bytes(b.to_bytes())
    expr = BtfExpr.parse(f'diff("{ref}") == empty')
    assert expr.evaluate(b).value
    ref.write_bytes(renamed(b, "k3", "k3_was_longer_before").to_bytes())
    assert not expr.evaluate(b).value
    assert BtfExpr.parse(f'diff("{ref}") ~ "k3_was_longer_before"').evaluate(b).value


def test_diff_computed_once_per_evaluation(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    b = small()
    ref = tmp_path / "ref.btf"
    ref.write_bytes(b.to_bytes())
    calls = []
    real = btf_expr.diff_btf

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(btf_expr, "diff_btf", counting)
    expr = BtfExpr.parse(f'diff({ref}) == empty and not diff({ref}) ~ "x"')
    assert expr.evaluate(b).value
    assert len(calls) == 1
    assert expr.evaluate(b).value
    assert len(calls) == 2


def test_diff_unreadable_reference_is_an_error(tmp_path: Path) -> None:
    b = small()
    with pytest.raises(ExprError, match=r"^btf: diff\(/nonexistent/x\.btf\): cannot read"):
        ev("diff(/nonexistent/x.btf) == empty", b)
    junk = tmp_path / "junk.btf"
    junk.write_bytes(b"not btf at all")
    with pytest.raises(ExprError, match=rf"^btf: diff\({junk}\): "):
        ev(f"diff({junk}) == empty", b)
    # short-circuit: an `and` already false, or an `or` already true, never reads the file
    assert not ev("func(nope) and diff(/nonexistent/x.btf) == empty", b).value
    assert ev("func(k3) or diff(/nonexistent/x.btf) == empty", b).value


@pytest.mark.skipif(shutil.which("as") is None, reason="needs binutils' as")
def test_diff_against_elf_with_btf_section(tmp_path: Path) -> None:
    b = small()
    blob = tmp_path / "blob.btf"
    blob.write_bytes(b.to_bytes())
    elf = synth.assemble(f'.section .BTF,"a"\n.incbin "{blob}"\n', tmp_path / "ref.o")
    assert ev(f"diff({elf}) == empty", b).value
    other = renamed(b, "plain", "plain2")
    assert ev(f'diff({elf}) ~ "- func plain"', other).value


@pytest.mark.slow
def test_diff_on_real_btf(vmlinux: Btf, tmp_path: Path) -> None:
    """The 7.3 BTF against a copy whose bpf_wq_init lost its bpf_kfunc tag (~3 s: one diff)."""
    c = vmlinux.copy()
    init = c.find("bpf_wq_init", Kind.FUNC)
    tag_id = next(tid for tid, t in c.items() if isinstance(t, DeclTag) and t.type == init
                  and c.name(t) == "bpf_kfunc")
    tag = c[tag_id].copy()
    tag.name_off = c.add_str("harness_not_kfunc")
    c[tag_id] = tag
    ref = tmp_path / "untagged.btf"
    ref.write_bytes(c.to_bytes())
    r = ev(f'not diff({ref}) == empty and diff({ref}) ~ "+ kfunc bpf_wq_init"', vmlinux)
    assert r.value
    assert r.detail.endswith('contains "+ kfunc bpf_wq_init": + kfunc bpf_wq_init: '
                             "int bpf_wq_init(struct bpf_wq *wq, void *p__const_map, "
                             "unsigned int flags)")
    assert not ev('kfunc(bpf_wq_init)', c).value
