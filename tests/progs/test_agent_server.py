"""The persistent agent (bundle_main.py --serve) and its shell client, on this host.

The protocol tests run the real bundle and the real client script under /bin/sh; the
last test runs real programs on this host's kernel through LocalTarget, as a watch loop
does on a guest: one-shot first, then through the server, and back to one-shot when the
server is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.progs import agent_server, runner
from harness.progs.agent_server import SERVER_GONE, AgentServer, client_script
from harness.progs.runner import _bundle, plan
from harness.targets.local import LocalTarget
from tests.progs.conftest import can_load_bpf


def _make_bundle(tmp_path: Path, libbpf: bytes, name: str = "run.zip",
                 jobs: list[dict[str, object]] | None = None,
                 present: dict[str, str] | None = None) -> Path:
    lib = tmp_path / "fake-libbpf.so"
    lib.write_bytes(libbpf)
    bundle, _ = _bundle(lib, {}, jobs or [], None, present=present)
    dest = tmp_path / name
    shutil.move(bundle, dest)
    return dest


def _wait_ready(sdir: Path) -> None:
    deadline = time.monotonic() + 30
    while not (sdir / "in").exists():
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.05)


def _client(rid: int, line: str, sdir: Path) -> subprocess.CompletedProcess:
    script = client_script(AgentServer(str(sdir), {}), rid, line)
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def server(tmp_path: Path):  # noqa: ANN201 - (process, bundle, serve dir)
    bundle = _make_bundle(tmp_path, b"libbpf v1")
    sdir = tmp_path / "agent"
    proc = subprocess.Popen([sys.executable, "-S", str(bundle), "--serve", str(sdir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_ready(sdir)
        yield proc, bundle, sdir
    finally:
        proc.kill()
        proc.wait()


def test_unpack_keeps_unchanged_members(tmp_path: Path) -> None:
    """Same libbpf.so: same inode (a cached probe stays good); new content: a new file."""
    bundle_main = _bundle_main()
    here, members = bundle_main.unpack(str(_make_bundle(tmp_path, b"one")))
    first = os.stat(Path(here) / "libbpf.so").st_ino
    assert set(members) >= {"agent.py", "libbpf.so", "jobs.json"}
    bundle_main.unpack(str(_make_bundle(tmp_path, b"one")))
    assert os.stat(Path(here) / "libbpf.so").st_ino == first
    bundle_main.unpack(str(_make_bundle(tmp_path, b"two")))
    assert (Path(here) / "libbpf.so").read_bytes() == b"two"
    assert os.stat(Path(here) / "libbpf.so").st_ino != first


def _bundle_main():  # noqa: ANN202 - the module the bundle runs as __main__
    sys.path.insert(0, str(Path(runner.BUNDLE_MAIN).parent))
    try:
        import bundle_main  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    return bundle_main


def test_members_the_target_has_are_not_shipped_again(tmp_path: Path) -> None:
    bundle_main = _bundle_main()
    lib = tmp_path / "fake-libbpf.so"
    lib.write_bytes(b"x" * 100_000)
    full, manifest = _bundle(lib, {}, [], None)
    partial, again = _bundle(lib, {}, [{"id": "new job"}], None, present=manifest)
    assert again.keys() == manifest.keys() and again["jobs.json"] != manifest["jobs.json"]
    assert partial.stat().st_size < full.stat().st_size - 90_000
    here = tmp_path / "run"
    shutil.move(full, tmp_path / "run.zip")
    bundle_main.unpack(str(tmp_path / "run.zip"))
    shutil.move(partial, tmp_path / "run.zip")
    bundle_main.unpack(str(tmp_path / "run.zip"))
    assert (here / "libbpf.so").read_bytes() == b"x" * 100_000
    assert json.loads((here / "jobs.json").read_text()) == [{"id": "new job"}]
    # the same partial zip where nothing was unpacked before: refused, nothing run
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "run.zip", elsewhere / "run.zip")
    proc = subprocess.run([sys.executable, "-S", str(elsewhere / "run.zip"), "--libbpf", "x",
                           "probe"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == bundle_main.MISSING_MEMBER
    assert proc.stderr.startswith("bundle member agent.py is neither in")


def test_a_request_is_answered_with_the_agents_rc_and_stderr(server) -> None:  # noqa: ANN001
    proc, bundle, sdir = server
    res = _client(1, f"1\t{bundle}\t--libbpf\tx\tnonsense", sdir)
    assert res.returncode == 2
    assert res.stderr.strip() == "agent: unknown command nonsense"
    assert res.stdout == ""
    # the server lives on and answers the next one
    res = _client(2, f"2\t{bundle}\t--libbpf\tx\tnonsense", sdir)
    assert res.returncode == 2 and proc.poll() is None
    assert not (sdir / "r1.err").exists(), "answers of earlier requests are cleaned up"


def test_each_request_reads_the_bundle_as_it_is_now(server, tmp_path: Path) -> None:  # noqa: ANN001
    """A new bundle at the same path (every round's): zipimport's cached directory of
    the old one must not be used (it read "bad local file header")."""
    proc, bundle, sdir = server
    assert _client(1, f"1\t{bundle}\t--libbpf\tx\tnonsense", sdir).returncode == 2
    jobs = [{"id": f"job{i}", "object": "x" * 300} for i in range(20)]
    _make_bundle(tmp_path, b"libbpf v1", bundle.name, jobs)
    res = _client(2, f"2\t{bundle}\t--libbpf\tx\tnonsense", sdir)
    assert res.returncode == 2, res.stderr
    assert json.loads((tmp_path / "run" / "jobs.json").read_text()) == jobs


def test_a_changed_libbpf_retires_the_server(server, tmp_path: Path) -> None:  # noqa: ANN001
    """The server keeps the libbpf it loaded; a new one needs a new process (rc 75)."""
    proc, bundle, sdir = server
    # a run the agent refuses still unpacks, and the server records what it served
    assert _client(1, f"1\t{bundle}\t--libbpf\tx\tnonsense", sdir).returncode == 2
    changed = _make_bundle(tmp_path, b"libbpf v2", "run2.zip")
    res = _client(2, f"2\t{changed}\t--libbpf\tx\tnonsense", sdir)
    assert res.returncode == SERVER_GONE
    assert "libbpf.so changed" in res.stderr
    assert proc.wait(timeout=10) == 0


def test_no_server_to_ask_is_rc_75_at_once(server, tmp_path: Path) -> None:  # noqa: ANN001
    """Never a client blocked on a FIFO nobody serves: a killed server (its FIFOs left
    behind, its pid a zombie or gone) and a dir that never had one are told at once."""
    proc, bundle, sdir = server
    os.kill(proc.pid, signal.SIGKILL)
    time.sleep(0.2)  # not reaped yet: a zombie
    assert (sdir / "in").exists()
    assert _client(1, f"1\t{bundle}", sdir).returncode == SERVER_GONE
    proc.wait()
    assert _client(1, f"1\t{bundle}", sdir).returncode == SERVER_GONE
    assert _client(1, f"1\t{bundle}", tmp_path / "never").returncode == SERVER_GONE


@pytest.mark.skipif(not can_load_bpf(), reason="needs root and kernel BTF")
def test_rounds_go_through_the_server_and_survive_its_death(
        host_basic: Path, libbpf_so: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "REMOTE_DIR", str(tmp_path / "progs"))
    monkeypatch.setattr(agent_server, "SERVE_DIR", str(tmp_path / "agent"))
    jobs = plan([host_basic], "x86_64", only="host_retval")

    def round_() -> None:
        results = runner.execute(jobs, libbpf_so, target, keep_agent=True, timeout=10)
        assert [r.verdict for r in results] == ["pass"] * len(jobs)
        assert results[0].retval == 42

    with LocalTarget() as target:
        sizes: list[int] = []
        put = target.put

        def sized_put(local: Path | str, remote: str, timeout: float = 60.0) -> None:
            sizes.append(Path(local).stat().st_size)
            put(local, remote, timeout)

        target.put = sized_put  # type: ignore[method-assign]
        round_()  # one-shot; the agent then forks into the server
        first = agent_server.server_of(target)
        _wait_ready(Path(first.sdir))
        round_()
        round_()
        assert first.next_id == 3 and agent_server.server_of(target) is first
        assert (Path(first.sdir) / "r2.out").is_file()  # answered by the server
        assert sizes[1] < sizes[0] // 4, sizes  # without libbpf.so and agent.py again
        first_pid = int((Path(first.sdir) / "pid").read_text())
        os.kill(first_pid, signal.SIGKILL)
        round_()  # the client finds it gone: one-shot again, and a new server
        second = agent_server.server_of(target)
        assert second.sdir != first.sdir
        _wait_ready(Path(second.sdir))
        round_()
        assert agent_server.server_of(target) is second and second.next_id == 2
        second_pid = int((Path(second.sdir) / "pid").read_text())
    # closing the target leaves no agent server behind (a guest's dies with it)
    stat = Path(f"/proc/{second_pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"
