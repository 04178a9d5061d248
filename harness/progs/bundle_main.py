"""What a bundle the runner ships runs on the target: unpack, load a module, run the agent.

Everything a run needs (agent.py, hidtool.py, libbpf.so, the objects, jobs.json and
optionally a kernel module) travels as one zip, so a run costs one transfer and one
command instead of one round trip per file (each is ~0.4 s on a TCG guest). The target's
python3 executes the zip directly; this file unpacks it next to itself and hands over.
Unpacking goes through zipimport (built in) and the MANIFEST member, not the zipfile
module, whose imports cost a fresh TCG guest half a second; the module is loaded with
the finit_module syscall through ctypes (which the agent imports anyway), not by
running insmod through subprocess (another exec and ~0.3 s of imports under TCG).

    python3 DIR.zip [--insmod MODULE.ko] AGENT-ARGS...     # unpacks into DIR/
    python3 DIR.zip --serve SDIR                             # the same, per request
    python3 DIR.zip --then-serve SDIR AGENT-ARGS...          # one run, then --serve

Exit 97 with the reason on stderr when the module does not load, so the host can tell
a module failure from an agent failure.

MANIFEST lines are `member<TAB>identity` (the host's CRC and size of it); a member whose
identity matches what was unpacked last time (DIR/.unpacked) is not rewritten, so
libbpf.so keeps its inode and the agent's cached probe of it stays good, and the host
leaves such members out of a served round's zip (exit 74 if one is not here after all).

`--serve` is `progs watch`'s persistent agent: an interpreter start, the imports and the
libbpf probe cost a TCG guest ~0.5 s per round, so one process stays up and runs each
round's bundle in-process (each job still in its own forked child). `--then-serve` is
how a watch loop's first round starts it: after a successful run the process forks, the
parent exits (ending the command) and the child, imports done and libbpf probed, serves
at once.

- SDIR/pid names the serving process; SDIR is new for each server, so FIFOs a killed
  one left behind are never taken for a new one's.
- A request is one line `<id>TAB<bundle>[TAB<agent arg>...]` on the FIFO SDIR/in; the
  answer is SDIR/r<id>.out and .err, then a line `done <id> <rc>` on the FIFO SDIR/out.
- Both FIFOs appear (by rename) only once the server is ready, and it holds both open
  read-write: a client never blocks opening them, and reads EOF on SDIR/out if the
  server dies.
- rc 75 (EX_TEMPFAIL): this server cannot run the request (agent.py, hidtool.py or
  libbpf.so changed under it, or a member the host left out is not here) and has
  exited; the host runs the round one-shot and so starts a new one.
- The server exits by itself after SERVE_IDLE_S without a request, so a board keeps
  no stray process.
"""

from __future__ import annotations  # `X | None` in signatures on a board's python3.9

import ctypes
import os
import select
import sys
import zipimport

INSMOD_FAILED = 97
SERVER_GONE = 75  # EX_TEMPFAIL: the host falls back to a one-shot run, starts a new server
MISSING_MEMBER = 74  # a served request's bundle left out what this target lacks
SERVE_IDLE_S = 600
# what the server process has imported or dlopened: a new copy needs a new process
_LOADED_ONCE = ("agent.py", "hidtool.py", "libbpf.so")
FINIT_MODULE = {"x86_64": 313, "aarch64": 273}  # syscall numbers


def _load_module(path: str) -> str:
    """Load a kernel module; '' on success, else the reason (insmod's words where it can)."""
    number = FINIT_MODULE.get(os.uname().machine)
    if number is None:
        import subprocess  # noqa: PLC0415 - an arch we have no syscall number for

        try:
            proc = subprocess.run(["insmod", path], capture_output=True, text=True)
        except OSError as exc:
            return f"cannot run insmod: {exc.strerror}"
        return ((proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
                if proc.returncode else "")
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open it: {exc.strerror}"
    try:
        if libc.syscall(number, fd, b"", 0) != 0:
            return os.strerror(ctypes.get_errno())
    finally:
        os.close(fd)
    return ""


def _module_loaded(name: str) -> bool:
    try:
        with open("/proc/modules") as fh:
            return any(line.split(" ", 1)[0] == name for line in fh)
    except OSError:  # no module support: insmod will say so
        return False


def _open_zip(bundle: str) -> zipimport.zipimporter:
    """The zip as it is now: zipimport caches a zip's directory by path, and a server sees
    a new bundle at the same path each round (stale offsets: "bad local file header")."""
    archive = zipimport.zipimporter(bundle)
    if hasattr(archive, "invalidate_caches"):  # 3.10+
        archive.invalidate_caches()
    else:  # pragma: no cover - older targets' python3
        zipimport._zip_directory_cache.pop(bundle, None)  # type: ignore[attr-defined]
        archive = zipimport.zipimporter(bundle)
    return archive


class MissingMember(Exception):
    """A manifest member neither in the zip nor unpacked here before."""


def unpack(bundle: str) -> tuple[str, dict[str, str]]:
    """Unpack `bundle` next to itself (DIR.zip -> DIR/); returns DIR and each member's
    identity. Members unchanged since the last unpack there are left as they are."""
    here = bundle.removesuffix(".zip")
    os.makedirs(here, exist_ok=True)
    archive = _open_zip(bundle)
    members = _manifest(archive)
    record = os.path.join(here, ".unpacked")
    before: dict[str, str] = {}
    try:
        with open(record) as fh:
            before = dict(ln.rstrip("\n").split("\t", 1) for ln in fh if "\t" in ln)
    except OSError:
        pass
    for name, identity in members.items():
        path = os.path.join(here, name)
        if identity and before.get(name) == identity and os.path.exists(path):
            continue
        try:
            data = archive.get_data(name)
        except OSError:  # not shipped, as the host thought this target had it
            raise MissingMember(name) from None
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".part"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # a new inode: never rewrite a library someone has mapped
    with open(record + ".part", "w") as fh:
        fh.writelines(f"{n}\t{i}\n" for n, i in members.items())
    os.replace(record + ".part", record)
    return here, members


def run_bundle(bundle: str, argv: list[str]) -> int:
    """One run: unpack, load the module if asked and not loaded, run the agent."""
    try:
        here, _ = unpack(bundle)
    except MissingMember as exc:
        print(f"bundle member {exc} is neither in {bundle} nor here", file=sys.stderr)
        return MISSING_MEMBER
    args = list(argv)
    if args[:1] == ["--insmod"]:
        module = os.path.join(here, args[1])
        del args[:2]
        name = os.path.basename(module).removesuffix(".ko").replace("-", "_")
        if not _module_loaded(name):
            reason = _load_module(module)
            if reason:
                print(f"insmod {os.path.basename(module)} failed: {reason}", file=sys.stderr)
                return INSMOD_FAILED
    if here not in sys.path:
        sys.path.insert(0, here)  # the unpacked agent.py, not the copy inside the zip
    import agent  # noqa: PLC0415 - unpacked just now

    return int(agent.main(args))


def serve(sdir: str, served: dict[str, str] | None = None) -> int:
    """The persistent agent (see the module docstring). `served`: what this process has
    loaded already (member -> identity)."""
    os.makedirs(sdir, exist_ok=True)
    with open(os.path.join(sdir, "pid"), "w") as fh:
        fh.write(f"{os.getpid()}\n")
    fifos = {}
    for end in ("in", "out"):
        path = os.path.join(sdir, end)
        part = path + ".part"
        for stale in (path, part):
            if os.path.lexists(stale):
                os.unlink(stale)
        os.mkfifo(part, 0o600)
        fifos[end] = os.open(part, os.O_RDWR)
    for end in ("in", "out"):
        os.rename(os.path.join(sdir, end + ".part"), os.path.join(sdir, end))
    try:
        _serve_requests(sdir, fifos["in"], fifos["out"], dict(served or {}))
    finally:  # a client arriving later finds no FIFO and no process: it says so at once
        for end in ("in", "out"):
            if os.path.lexists(os.path.join(sdir, end)):
                os.unlink(os.path.join(sdir, end))
    return 0


def _serve_requests(sdir: str, fd_in: int, fd_out: int, served: dict[str, str]) -> None:
    pending = b""
    last = ""
    while True:
        ready, _, _ = select.select([fd_in], [], [], SERVE_IDLE_S)
        if not ready:
            return
        pending += os.read(fd_in, 1 << 16)
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            rid, rc = _serve_one(sdir, line, served, last)
            last = rid
            os.write(fd_out, f"done {rid} {rc}\n".encode())
            if rc == SERVER_GONE:
                return


def _serve_one(sdir: str, line: bytes, served: dict[str, str], last: str) -> tuple[str, int]:
    """Run one request with stdout and stderr in its answer files; (id, rc)."""
    fields = line.decode(errors="replace").split("\t")
    if len(fields) < 2 or not fields[0].isdigit():
        return "bad", 2
    rid, bundle, argv = fields[0], fields[1], fields[2:]
    for old in (f"r{last}.out", f"r{last}.err") if last else ():
        if os.path.exists(os.path.join(sdir, old)):
            os.unlink(os.path.join(sdir, old))
    saved = sys.stdout, sys.stderr
    with open(os.path.join(sdir, f"r{rid}.out"), "w") as out, \
            open(os.path.join(sdir, f"r{rid}.err"), "w") as err:
        sys.stdout, sys.stderr = out, err
        try:
            members = _manifest(_open_zip(bundle))
            changed = [m for m in _LOADED_ONCE
                       if m in served and members.get(m) != served[m]]
            if changed:
                print(f"agent server: {', '.join(changed)} changed; start a new one",
                      file=err)
                return rid, SERVER_GONE
            rc = run_bundle(bundle, argv)
            if rc == MISSING_MEMBER:  # the host's idea of this target is wrong: start over
                return rid, SERVER_GONE
            served.update({m: members[m] for m in _LOADED_ONCE if m in members})
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 - the answer carries it; the server lives
            print(f"agent server: {type(exc).__name__}: {exc}", file=err)
            rc = 1
        finally:
            sys.stdout, sys.stderr = saved
    return rid, rc


def _manifest(archive: zipimport.zipimporter) -> dict[str, str]:
    """The bundle's MANIFEST: member -> identity."""
    text = archive.get_data("MANIFEST").decode()
    return dict(ln.partition("\t")[::2] for ln in text.splitlines())


def _become_server(sdir: str, bundle: str) -> None:
    """Fork: the parent returns (and exits, ending the host's command), the child detaches
    from the command's files and session and serves, with this run's imports and probe."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork():
        return
    try:
        os.setsid()
        os.makedirs(sdir, exist_ok=True)
        null = os.open(os.devnull, os.O_RDWR)
        err = os.open(os.path.join(sdir, "server.err"), os.O_WRONLY | os.O_CREAT, 0o600)
        for fd, target in ((0, null), (1, null), (2, err)):
            os.dup2(target, fd)
        members = _manifest(_open_zip(bundle))
        serve(sdir, {m: members[m] for m in _LOADED_ONCE if m in members})
    finally:
        os._exit(0)


def main(argv: list[str]) -> int:
    bundle = os.path.abspath(sys.argv[0])
    if argv[:1] == ["--serve"] and len(argv) == 2:
        return serve(argv[1])
    if argv[:1] == ["--then-serve"] and len(argv) >= 2:
        rc = run_bundle(bundle, argv[2:])
        if rc == 0:
            _become_server(argv[1], bundle)
        return rc
    return run_bundle(bundle, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
