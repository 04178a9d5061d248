"""`btf:` bisect predicates: small boolean expressions evaluated on one step's BTF.

Why: a bisect step is judged on the kernel BTF a given pahole / resolve_btfids
produced, and most questions ("is bpf_wq_set_callback still a kfunc?", "did its
prototype change?", "is anything different from a known-good BTF?") are
answered by the BTF alone, with the project's own library, without booting.
The text is parsed by a small tokenizer and a recursive-descent parser (never
`eval`), so a typo fails at once with the column it is at.

Grammar (the text comes without its ``btf:`` prefix)::

    expr  := or
    or    := and ('or' and)*
    and   := unary ('and' unary)*
    unary := 'not' unary | '(' expr ')' | atom
    atom  := 'func' '(' NAME ')'                 a FUNC named NAME exists
           | 'kfunc' '(' NAME ')'                a FUNC NAME carries the decl tag bpf_kfunc
           | 'tag' '(' TAG ',' NAME ')'          a FUNC NAME carries decl tag TAG (component -1)
           | 'params' '(' NAME ')' CMP INT       parameter count of FUNC NAME's FUNC_PROTO
           | 'proto' '(' NAME ')' STROP STRING   FUNC NAME's prototype as C
           | 'arena' '(' NAME ')'                a parameter or the return type of FUNC NAME
                                                 points to address_space(1)
           | 'diff' '(' PATH ')' ('==' | '!=') 'empty'
           | 'diff' '(' PATH ')' '~' STRING      the BTF diff from the file at PATH to the
                                                 evaluated BTF is empty / contains STRING
    CMP   := '==' | '!=' | '<' | '<=' | '>' | '>='
    STROP := '==' | '!=' | '~'                   '~' is "contains"

NAME is a C identifier; TAG a C identifier or a STRING; STRING is double-quoted with
``\\"`` and ``\\\\`` escapes; PATH a bare run of non-space characters up to the closing
parenthesis (parentheses inside it must balance), or a STRING. INT is a decimal number.

Semantics worth knowing:
  - Names are looked up among base and own types. When several FUNCs share a name,
    func/kfunc/tag hold if any of them qualifies; params/proto/arena look at the first
    one tagged bpf_kfunc, else the first one.
  - A missing FUNC makes any atom false (with a detail saying so), not an error.
  - params counts the parameters, not the ``...`` of a variadic prototype.
  - proto compares after collapsing whitespace runs to one space (and ignores a
    trailing ``;`` in the expected text).
  - diff runs harness.btf.diff.diff_btf(reference, evaluated) and matches ``~`` against
    the lines of its format() except the closing summary line (which always says
    "kfunc difference(s)"). The reference file is read once per expression and read
    again only if it changes on disk; a file that cannot be read is an ExprError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from harness.btf.btf import Btf
from harness.btf.diff import BtfDiff, diff_btf
from harness.btf.errors import BTFError
from harness.btf.kfuncs import (
    KfuncInfo,
    arena_positions,
    decl_tags_of,
    find_kfuncs,
    func_decl,
    is_elf,
    load_for_kfuncs,
    read_set8s,
)
from harness.btf.types import DeclTag, Func, FuncProto
from harness.errors import UsageError
from harness.kfunc_abi import ARENA_ATTR, DECL_TAG_KFUNC

ATOMS = ("func", "kfunc", "tag", "params", "proto", "arena", "diff")
KEYWORDS = frozenset({"and", "or", "not"})
CMP_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
STR_OPS = ("==", "!=", "~")
_OPS_BY_LENGTH = ("==", "!=", "<=", ">=", "<", ">", "~")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"[0-9]+")


class ExprError(UsageError):
    """A `btf:` expression that cannot be parsed or evaluated, as one line.

    Syntax errors name the 1-based column they are at, so the user sees where in
    their predicate the parser stopped.
    """

    def __init__(self, message: str, text: str | None = None, pos: int | None = None):
        self.column = pos + 1 if pos is not None else None
        where = ""
        if text is not None and self.column is not None:
            where = f" at column {self.column} in '{text}'"
        super().__init__(f"btf: {message}{where}")


@dataclass(frozen=True)
class ExprResult:
    """The verdict of an expression on one BTF, with one line saying why."""

    value: bool
    detail: str


# ---- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tok:
    kind: str   # name, int, str, path, op, "(", ")", ",", end
    value: str
    pos: int


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "the end"
    if tok.kind == "str":
        return f"the string {_quote(tok.value)}"
    return f"'{tok.value}'"


def _read_string(text: str, pos: int) -> tuple[str, int]:
    """The string starting at the quote at `pos`, and the index after its closing quote."""
    out = []
    i = pos + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 < len(text) and text[i + 1] in '"\\':
                out.append(text[i + 1])
                i += 2
                continue
            raise ExprError("only \\\" and \\\\ escapes are allowed in a string", text, i)
        out.append(c)
        i += 1
    raise ExprError("unterminated string", text, pos)


def _tokenize(text: str) -> list[_Tok]:
    """All tokens, ending with an `end` token.

    The argument of `diff(` is read as a path (bare or quoted), since paths hold
    characters no other token allows; a bare path ends at a space or at the `)` that
    closes `diff(` (balanced parentheses inside it, as in `a(1).btf`, are kept).
    """
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            toks.append(_Tok("end", "", n))
            return toks
        c = text[i]
        in_diff = (len(toks) >= 2 and toks[-1].kind == "(" and toks[-2].kind == "name"
                   and toks[-2].value == "diff")
        if in_diff and c not in ')"':
            j, depth = i, 0
            while j < n and not text[j].isspace() and (text[j] != ")" or depth):
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            toks.append(_Tok("path", text[i:j], i))
            i = j
            continue
        if c == '"':
            value, j = _read_string(text, i)
            toks.append(_Tok("str", value, i))
            i = j
            continue
        m = _IDENT.match(text, i) or _INT.match(text, i)
        if m:
            toks.append(_Tok("name" if m.re is _IDENT else "int", m.group(), i))
            i = m.end()
            continue
        if c in "(),":
            toks.append(_Tok(c, c, i))
            i += 1
            continue
        op = next((o for o in _OPS_BY_LENGTH if text.startswith(o, i)), None)
        if op is None:
            hint = " (equality is '==')" if c == "=" else ""
            raise ExprError(f"unexpected character {c!r}{hint}", text, i)
        toks.append(_Tok("op", op, i))
        i += len(op)


# ---- evaluation scope -------------------------------------------------------------------------


class _Scope:
    """What one evaluation needs to know about one Btf, indexed once and only if asked."""

    def __init__(self, btf: Btf):
        self.btf = btf
        self._funcs: dict[str, list[int]] | None = None
        self._tags_by_target: dict[int, list[DeclTag]] = {}
        self.diffs: dict[str, BtfDiff] = {}

    def _index(self) -> dict[str, list[int]]:
        if self._funcs is None:
            funcs: dict[str, list[int]] = {}
            tags = self._tags_by_target
            btf = self.btf
            for tid, t in btf.all_items():
                if isinstance(t, Func):
                    funcs.setdefault(btf.name(t), []).append(tid)
                elif isinstance(t, DeclTag):
                    tags.setdefault(t.type, []).append(t)
            self._funcs = funcs
        return self._funcs

    def funcs(self, name: str) -> list[int]:
        """Ids of every FUNC called `name` (base first)."""
        return self._index().get(name, [])

    def func_tags(self, tid: int) -> list[str]:
        """Decl tags on FUNC `tid` itself (component -1), as kfuncs renders them."""
        self._index()
        return decl_tags_of(self.btf, tid, self._tags_by_target)[0]

    def pick(self, name: str) -> int | None:
        """The FUNC a single-FUNC atom looks at: the first kfunc of that name, else the first."""
        ids = self.funcs(name)
        tagged = [tid for tid in ids if DECL_TAG_KFUNC in self.func_tags(tid)]
        return (tagged or ids or [None])[0]


# ---- syntax tree ------------------------------------------------------------------------------


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _collapse(s: str) -> str:
    return " ".join(s.split())


def _no_func(atom: str, name: str) -> ExprResult:
    return ExprResult(False, f"{atom}: no FUNC named {name}")


class _Node:
    def show(self) -> str:
        raise NotImplementedError

    def eval(self, scope: _Scope) -> ExprResult:
        raise NotImplementedError


@dataclass(eq=False)
class _Not(_Node):
    operand: _Node

    def show(self) -> str:
        return f"not {_wrap(self.operand)}"

    def eval(self, scope: _Scope) -> ExprResult:
        r = self.operand.eval(scope)
        return ExprResult(not r.value, f"not ({r.detail})")


@dataclass(eq=False)
class _And(_Node):
    operands: list[_Node]

    def show(self) -> str:
        return " and ".join(map(_wrap, self.operands))

    def eval(self, scope: _Scope) -> ExprResult:
        details = []
        for op in self.operands:
            r = op.eval(scope)
            if not r.value:
                return r  # the first false operand is why; the rest are not evaluated
            details.append(r.detail)
        return ExprResult(True, "; ".join(details))


@dataclass(eq=False)
class _Or(_Node):
    operands: list[_Node]

    def show(self) -> str:
        return " or ".join(map(_wrap, self.operands))

    def eval(self, scope: _Scope) -> ExprResult:
        details = []
        for op in self.operands:
            r = op.eval(scope)
            if r.value:
                return r
            details.append(r.detail)
        return ExprResult(False, "; ".join(details))


def _wrap(node: _Node) -> str:
    return f"({node.show()})" if isinstance(node, _And | _Or | _Not) else node.show()


@dataclass(eq=False)
class _FuncAtom(_Node):
    name: str

    def show(self) -> str:
        return f"func({self.name})"

    def eval(self, scope: _Scope) -> ExprResult:
        ids = scope.funcs(self.name)
        if not ids:
            return _no_func(self.show(), self.name)
        return ExprResult(True, f"{self.show()}: FUNC [{ids[0]}] {self.name} exists")


@dataclass(eq=False)
class _TagAtom(_Node):
    tag: str
    name: str
    kfunc: bool = False   # spelled kfunc(NAME)

    def show(self) -> str:
        if self.kfunc:
            return f"kfunc({self.name})"
        tag = self.tag if _IDENT.fullmatch(self.tag) else _quote(self.tag)
        return f"tag({tag}, {self.name})"

    def eval(self, scope: _Scope) -> ExprResult:
        ids = scope.funcs(self.name)
        if not ids:
            return _no_func(self.show(), self.name)
        for tid in ids:
            if self.tag in scope.func_tags(tid):
                return ExprResult(True, f"{self.show()}: FUNC [{tid}] {self.name} carries "
                                        f"{self.tag}")
        have = scope.func_tags(ids[0])
        tags = f"tags: {', '.join(have)}" if have else "no decl tags"
        return ExprResult(False, f"{self.show()}: FUNC [{ids[0]}] {self.name} has no decl tag "
                                 f"{self.tag} ({tags})")


@dataclass(eq=False)
class _ParamsAtom(_Node):
    name: str
    op: str
    count: int

    def show(self) -> str:
        return f"params({self.name}) {self.op} {self.count}"

    def eval(self, scope: _Scope) -> ExprResult:
        head = f"params({self.name})"
        tid = scope.pick(self.name)
        if tid is None:
            return _no_func(head, self.name)
        proto = scope.btf[scope.btf[tid].type]
        if not isinstance(proto, FuncProto):
            return ExprResult(False, f"{head}: FUNC [{tid}] {self.name} has no FUNC_PROTO")
        n = sum(1 for p in proto.params if p.type != 0)
        ok = CMP_OPS[self.op](n, self.count)
        return ExprResult(ok, f"{head} = {n}" if ok else f"{head} = {n}, not {self.op} "
                                                         f"{self.count}")


@dataclass(eq=False)
class _ProtoAtom(_Node):
    name: str
    op: str
    want: str

    def show(self) -> str:
        return f"proto({self.name}) {self.op} {_quote(self.want)}"

    def eval(self, scope: _Scope) -> ExprResult:
        head = f"proto({self.name})"
        tid = scope.pick(self.name)
        if tid is None:
            return _no_func(head, self.name)
        try:
            have = _collapse(func_decl(scope.btf, tid))
        except BTFError as exc:
            return ExprResult(False, f"{head}: {exc}")
        want = _collapse(self.want)
        if self.op == "~":
            ok = want in have
            verb = "contains" if ok else "does not contain"
        else:
            want = want.removesuffix(";").rstrip()
            verb = "==" if have == want else "!="
            ok = verb == self.op
        return ExprResult(ok, f"{head} = {have}, {verb} {_quote(want)}")


@dataclass(eq=False)
class _ArenaAtom(_Node):
    name: str

    def show(self) -> str:
        return f"arena({self.name})"

    def eval(self, scope: _Scope) -> ExprResult:
        tid = scope.pick(self.name)
        if tid is None:
            return _no_func(self.show(), self.name)
        where = arena_positions(scope.btf, scope.btf[scope.btf[tid].type])
        if where:
            return ExprResult(True, f"{self.show()}: {ARENA_ATTR} on {', '.join(where)}")
        return ExprResult(False, f"{self.show()}: no parameter or return type of FUNC [{tid}] "
                                 f"{self.name} points to {ARENA_ATTR}")


@dataclass(eq=False)
class _DiffAtom(_Node):
    path: str
    op: str
    want: str | None   # the text of '~', None for 'empty'
    _ref: tuple[tuple[int, int, int], Btf, list[KfuncInfo]] | None = field(
        default=None, init=False, repr=False)

    def show(self) -> str:
        bare = self.path and not any(c.isspace() or c in '()"' for c in self.path)
        path = self.path if bare else _quote(self.path)
        rhs = "empty" if self.want is None else _quote(self.want)
        return f"diff({path}) {self.op} {rhs}"

    def reference(self) -> tuple[Btf, list[KfuncInfo]]:
        """The reference BTF and its kfuncs (flags too, for an ELF), re-read only on change."""
        head = f"diff({self.path})"
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise ExprError(f"{head}: cannot read {self.path}: {exc.strerror or exc}") from exc
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._ref is None or self._ref[0] != key:
            try:
                btf = load_for_kfuncs(self.path)
                sets = read_set8s(self.path) if is_elf(self.path) else None
                kfuncs = find_kfuncs(btf, sets, arg_flags=False)
            except BTFError as exc:
                raise ExprError(f"{head}: {exc}") from exc
            self._ref = (key, btf, kfuncs)
        return self._ref[1], self._ref[2]

    def eval(self, scope: _Scope) -> ExprResult:
        head = f"diff({self.path})"
        d = scope.diffs.get(self.path)
        if d is None:
            ref, ref_kfuncs = self.reference()
            d = scope.diffs[self.path] = diff_btf(ref, scope.btf, ref_kfuncs)
        lines = d.format().splitlines()
        summary, body = lines[-1], lines[:-1]
        if self.want is None:
            ok = d.equal == (self.op == "==")
            why = "equal" if d.equal else f"{summary}; first: {body[0].strip()}"
            return ExprResult(ok, f"{head}: {why}")
        hit = next((ln for ln in body if self.want in ln), None)
        if hit is not None:
            return ExprResult(True, f"{head} contains {_quote(self.want)}: {hit.strip()}")
        return ExprResult(False, f"{head} has no {_quote(self.want)} ({summary})")


# ---- parser -----------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; every failure is an ExprError with a column."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def advance(self) -> _Tok:
        t = self.tok
        if t.kind != "end":
            self.i += 1
        return t

    def fail(self, message: str, *, found: bool = True) -> NoReturn:
        tok = self.tok
        found_text = f", found {_describe(tok)}" if found and tok.kind != "end" else ""
        raise ExprError(f"{message}{found_text}", self.text, tok.pos)

    def expect(self, kind: str, what: str) -> _Tok:
        if self.tok.kind != kind:
            self.fail(f"expected {what}")
        return self.advance()

    def keyword(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.value == word

    def parse(self) -> _Node:
        node = self.or_()
        if self.tok.kind != "end":
            self.fail("expected 'and', 'or' or the end")
        return node

    def or_(self) -> _Node:
        items = [self.and_()]
        while self.keyword("or"):
            self.advance()
            items.append(self.and_())
        return items[0] if len(items) == 1 else _Or(items)

    def and_(self) -> _Node:
        items = [self.unary()]
        while self.keyword("and"):
            self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else _And(items)

    def unary(self) -> _Node:
        if self.keyword("not"):
            self.advance()
            return _Not(self.unary())
        if self.tok.kind == "(":
            self.advance()
            node = self.or_()
            self.expect(")", "')'")
            return node
        return self.atom()

    def name(self) -> str:
        return self.expect("name", "a function name").value

    def atom(self) -> _Node:
        tok = self.tok
        if tok.kind != "name" or tok.value in KEYWORDS:
            self.fail("expected a predicate (" + ", ".join(ATOMS) + ")")
        if tok.value not in ATOMS:
            self.fail(f"unknown predicate '{tok.value}', expected one of {', '.join(ATOMS)}",
                      found=False)
        self.advance()
        self.expect("(", "'('")
        what = tok.value
        if what == "diff":
            if self.tok.kind not in ("path", "str"):
                self.fail("expected a path")
            path = self.advance().value
            self.expect(")", "')'")
            op = self.op(STR_OPS, "'==', '!=' or '~'")
            if op == "~":
                return _DiffAtom(path, op, self.expect("str", "a string").value)
            if not self.keyword("empty"):
                self.fail("expected 'empty'")
            self.advance()
            return _DiffAtom(path, op, None)
        if what == "tag":
            if self.tok.kind not in ("name", "str"):
                self.fail("expected a tag name")
            tag = self.advance().value
            self.expect(",", "','")
            name = self.name()
            self.expect(")", "')'")
            return _TagAtom(tag, name)
        name = self.name()
        self.expect(")", "')'")
        if what == "func":
            return _FuncAtom(name)
        if what == "kfunc":
            return _TagAtom(DECL_TAG_KFUNC, name, kfunc=True)
        if what == "arena":
            return _ArenaAtom(name)
        if what == "params":
            op = self.op(tuple(CMP_OPS), "a comparison (" + " ".join(CMP_OPS) + ")")
            return _ParamsAtom(name, op, int(self.expect("int", "a number").value))
        op = self.op(STR_OPS, "'==', '!=' or '~'")
        return _ProtoAtom(name, op, self.expect("str", "a string").value)

    def op(self, allowed: tuple[str, ...], what: str) -> str:
        if self.tok.kind != "op" or self.tok.value not in allowed:
            self.fail(f"expected {what}")
        return self.advance().value


# ---- public -----------------------------------------------------------------------------------


class BtfExpr:
    """A parsed `btf:` predicate; parse once, evaluate on each bisect step's BTF."""

    def __init__(self, text: str, root: _Node):
        self.text = text
        self._root = root

    @classmethod
    def parse(cls, text: str) -> BtfExpr:
        """Parse `text` (without "btf:"); ExprError names the column of a syntax error."""
        return cls(text, _Parser(text).parse())

    def canonical(self) -> str:
        """The expression fully parenthesised, as the parser grouped it."""
        return self._root.show()

    def evaluate(self, btf: Btf) -> ExprResult:
        """True or false on `btf`, with one line saying why.

        Raises ExprError only for what the expression refers to outside `btf` (a diff
        reference that cannot be read); a missing FUNC is a false result.
        """
        return self._root.eval(_Scope(btf))

    def __repr__(self) -> str:
        return f"BtfExpr({self.text!r})"
