"""Host side of the persistent agent (bundle_main.py --serve) that a watch loop keeps on
its target between rounds.

Why: on a TCG guest an agent's interpreter start, imports and libbpf probe cost ~0.5 s of
a ~1 s round. The first round's agent forks into a server after it answers
(--then-serve); later rounds hand it a request through its FIFOs with one shell command
(`client_script`) and ship only the bundle members it lacks. Whatever goes wrong with a
server (gone, killed, its agent.py or libbpf.so changed, a member missing) comes back as
SERVER_GONE, and the runner falls back to a one-shot run that starts a new one.

Per-target state lives here, keyed weakly by the target object.
"""

from __future__ import annotations

import contextlib
import shlex
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from harness.targets.base import CommandResult, RemoteShell

SERVER_GONE = 75  # bundle_main.py: no server to ask, or it cannot run this request
SERVE_DIR = "/tmp/kfunc-harness-agent"  # each server's FIFOs are in a subdir of its own


@dataclass
class AgentServer:
    """A persistent agent on one target."""

    sdir: str  # its own FIFO dir: a dead server's FIFOs are never mistaken for its
    present: dict[str, str]  # the bundle members unpacked there (member -> identity)
    next_id: int = 1


# target -> its agent server; weak, so a target that is gone takes its entry with it
_SERVERS: weakref.WeakKeyDictionary[object, AgentServer] = weakref.WeakKeyDictionary()


def new_server_dir() -> str:
    return f"{SERVE_DIR}/{uuid.uuid4().hex[:12]}"


def server_of(target: object) -> AgentServer | None:
    try:
        return _SERVERS.get(target)
    except TypeError:  # a target that cannot be weakly referenced: never a server
        return None


def remember_server(target: object, sdir: str, present: dict[str, str]) -> None:
    """A one-shot run with --then-serve `sdir` succeeded: its agent now serves there."""
    with contextlib.suppress(TypeError):  # not weakly referable: no server
        _SERVERS[target] = AgentServer(sdir, present)


def client_script(server: AgentServer, rid: int, line: str) -> str:
    """The round's command when a server runs: hand it the request, wait for its answer,
    print it. Shell builtins only, but for the one `cat` of the answer (every exec costs
    a TCG guest 40-110 ms); exit SERVER_GONE if there is no server to ask."""
    d, done, gone = server.sdir, f"done {rid}", SERVER_GONE
    return "\n".join([
        # a zombie still has a pid but holds no FIFO: read its state, not kill -0
        f"{{ [ -p {d}/in ] && read -r pid <{d}/pid && read -r _ _ st _ </proc/$pid/stat; }} "
        f"2>/dev/null || exit {gone}",
        f"[ \"$st\" != Z ] || exit {gone}",
        f"exec 3<{d}/out",
        f"printf '%s\\n' {shlex.quote(line)} 1<>{d}/in",
        f"while read -r a b c <&3; do [ \"$a $b\" = '{done}' ] && break; done",
        f"[ \"$a $b\" = '{done}' ] || exit {gone}",
        f"cat {d}/r{rid}.out",
        f"[ \"$c\" = 0 ] || cat {d}/r{rid}.err >&2",
        'exit "$c"',
    ])


def served_run(target: RemoteShell, ship: Callable[[dict[str, str] | None], dict[str, str]],
               bundle: str, args: list[str], timeout: float) -> CommandResult | None:
    """One round through the target's server: `ship(present)` puts the bundle at `bundle`
    without what the target has and returns its manifest; `args` are the agent's. None
    when there is no server to use (none yet, or it is gone: then it is forgotten)."""
    server = server_of(target)
    if server is None or any(c in a for a in [bundle, *args] for c in "\t\n"):
        return None
    manifest = ship(server.present)
    rid = server.next_id
    server.next_id += 1
    line = "\t".join([str(rid), bundle, *args])
    res = target.run(client_script(server, rid, line), timeout=timeout)
    if res.rc == SERVER_GONE:
        del _SERVERS[target]
        return None
    server.present = manifest
    return res
