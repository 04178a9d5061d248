"""`__main__` of the bundle the runner ships to a target: unpack, load a module, run the agent.

Everything a run needs (agent.py, hidtool.py, libbpf.so, the objects, jobs.json and
optionally a kernel module) travels as one zip, so a run costs one transfer and one
command instead of one round trip per file (each is ~0.4 s on a TCG guest). The target's
python3 executes the zip directly; this file unpacks it next to itself and hands over.
Unpacking goes through zipimport (built in) and the MANIFEST member, not the zipfile
module, whose imports cost a fresh TCG guest half a second; the module is loaded with
the finit_module syscall through ctypes (which the agent imports anyway), not by
running insmod through subprocess (another exec and ~0.3 s of imports under TCG).

    python3 DIR.zip [--insmod MODULE.ko] AGENT-ARGS...     # unpacks into DIR/

Exit 97 with the reason on stderr when the module does not load, so the host can tell
a module failure from an agent failure.
"""

import ctypes
import os
import sys
import zipimport

INSMOD_FAILED = 97
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


def main(argv: list[str]) -> int:
    bundle = os.path.abspath(sys.argv[0])
    here = bundle.removesuffix(".zip")
    os.makedirs(here, exist_ok=True)
    archive = zipimport.zipimporter(bundle)
    for member in archive.get_data("MANIFEST").decode().splitlines():
        path = os.path.join(here, member)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(archive.get_data(member))
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
    sys.path.insert(0, here)  # the unpacked agent.py, not the copy inside the zip
    import agent  # noqa: PLC0415 - unpacked just now

    return int(agent.main(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
