"""The QEMU target: boot a kernel with virtme-ng and drive it through the command loop.

On the cached root tree the guest runs the QEMU command vng would run, with the
harness's own init (vng.boot_command); elsewhere vng itself runs it with its init.

One boot serves many commands (see channel.py for why a framed virtio-serial loop and
not a serial-console shell). Every boot and every command has a hard deadline; a hang
stops the guest and raises, a panic ends QEMU (vng passes panic=-1 and -no-reboot in
script mode) and raises KernelPanic with the console lines. QEMU, virtme-run and any
virtiofsd run in their own session tagged with a marker, and are killed on every exit
path (close(), __exit__, exceptions, Ctrl-C, interpreter exit via atexit). If this
process is killed outright, the guest's stdin reaches EOF, its loop ends and the init
powers the guest off (only a hung guest can then outlive us).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

from harness.arch import X86_64, host, lookup
from harness.procs import spawn
from harness.targets import procs, splat
from harness.targets.base import (
    CommandResult,
    Lifecycle,
    TargetIdentity,
    identity_scripts,
    read_identity,
)
from harness.targets.channel import (
    SCRATCH,
    Frame,
    FrameParser,
    get_request,
    loop_script,
    put_request,
    run_request,
)
from harness.targets.errors import (
    BootFailed,
    BootTimeout,
    CommandTimeout,
    KernelSplat,
    RemoteFileError,
    TargetGone,
    TargetSetupError,
)
from harness.targets.kvm import probe_kvm
from harness.targets.vng import (
    GUEST_CPUS,
    BootSpec,
    boot_command,
    ensure_udev,
    ensure_vng,
    own_init,
)

HOST_ROOT = "host"  # root= value that boots on this host's own / (vng's default)
# After a frame whose taint changed, wait this long for the splat's console lines.
_SPLAT_GRACE = 3.0
_PRECOMPUTE_IDENTITY, _READ_IDENTITY = identity_scripts(f"{SCRATCH}/identity")


def guest_warmup(warm: str) -> str:
    """What the loop runs on the spare vCPU as the guest comes up: the caller's `warm`,
    then hashing the BTF for identity() (read by the suite after its programs)."""
    return ";".join(filter(None, (warm, _PRECOMPUTE_IDENTITY)))



def _boot_image(kernel: Any) -> tuple[Path, str | None]:
    """Accept a BuildArtifacts-like object (boot_image, arch) or a plain path."""
    image = getattr(kernel, "boot_image", None)
    if image is not None:
        return Path(image), getattr(kernel, "arch", None)
    return Path(kernel), None


def _tail(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-300:] if lines else "(no console output)"


class QemuTarget(Lifecycle):
    """A guest booted by `vng`; implements harness.targets.base.Target.

    kernel: a BuildArtifacts (its boot_image and arch are used) or a path to bzImage/Image.
    root: guest root tree; None = the cached Debian tree for the arch (rootfs.py);
        HOST_ROOT = this host's own root, shared read-only (same arch only).
    kvm: None = use KVM only if the cached probe says it boots a kernel here; False = TCG.
    vng_init: boot as `vng --exec` does, vng's start-up and init included, where the
        harness would run QEMU on its own init (vng.boot_command): a yardstick.
    """

    def __init__(
        self,
        kernel: Any,
        arch: str | None = None,
        *,
        root: Path | str | None = None,
        memory: str = "1G",
        cpus: int = GUEST_CPUS,
        kvm: bool | None = None,
        boot_timeout: float = 120.0,
        append: tuple[str, ...] | list[str] = (),
        rwdirs: tuple[str, ...] | list[str] = (),
        vng: str = "vng",
        warm: str = "",
        vng_init: bool = False,
    ) -> None:
        image, image_arch = _boot_image(kernel)
        if not image.is_file():
            raise TargetSetupError(f"kernel image {image} does not exist")
        self.arch = lookup(arch or image_arch or host().name).name
        cached_tree = root is None
        if root == HOST_ROOT:
            root = None
        elif root is None:
            from harness.targets.rootfs import ensure_rootfs

            root = ensure_rootfs(self.arch)
        kvm_cpu = None
        if kvm is not False and self.arch == host().name == X86_64.name:  # probe_kvm's reach
            verdict = probe_kvm(image)
            kvm_cpu = verdict.cpu if verdict.usable else None
        self.spec = BootSpec(
            arch=self.arch,
            kernel=image,
            root=Path(root) if root else None,
            cache_root=cached_tree,
            memory=memory,
            cpus=cpus,
            kvm_cpu=kvm_cpu,
            append=tuple(append),
            rwdirs=tuple(rwdirs),
            vng_init=vng_init,
        )
        self.boot_timeout = boot_timeout
        self._vng = vng
        self._warm = warm  # channel.loop_script: what the guest reads in as it comes up
        self._proc: subprocess.Popen[bytes] | None = None
        self._marker = ""
        self._lock = threading.Condition()
        self._out = bytearray()
        self._console = bytearray()
        self._eof = False
        self._threads: list[threading.Thread] = []
        self._parser: FrameParser | None = None
        self._next_id = 1
        self._taint = 0
        self._checked = 0  # console offset already scanned for splats
        self.boot_seconds: float | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Boot and wait for the command loop; raise BootTimeout/KernelPanic/BootFailed."""
        if self._proc is not None:
            return self
        ensure_udev()
        vng = ensure_vng(self._vng)
        nonce = uuid.uuid4().hex[:16]
        self._marker = uuid.uuid4().hex
        self._parser = FrameParser(nonce)
        self._out.clear()
        self._console.clear()
        self._eof = False
        self._checked = 0
        self._next_id = 1
        init = None
        if own_init(self.spec) and self.spec.root is not None:
            from harness.targets.rootfs import install_init

            init = install_init(self.spec.root)
        argv = boot_command(self.spec, loop_script(nonce, guest_warmup(self._warm)), init,
                            vng=vng)
        env = dict(os.environ, **{procs.MARKER_ENV: self._marker})
        start = time.monotonic()
        self._started()
        try:
            # Not tied to this thread's life (suite.py boots on a thread that ends once the
            # guest is up): a harness killed outright ends the guest by EOF on its stdin.
            self._proc = spawn(
                argv,
                with_harness=False,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd="/",
            )
            self._threads = [
                threading.Thread(
                    target=self._pump, args=(self._proc.stdout, self._out, True), daemon=True
                ),
                threading.Thread(
                    target=self._pump, args=(self._proc.stderr, self._console, False), daemon=True
                ),
            ]
            for thread in self._threads:
                thread.start()
            frame = self._wait_frame(0, start + self.boot_timeout, phase="boot")
            self._taint = frame.taint
            self.boot_seconds = time.monotonic() - start
            self._check_splats("during boot")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the guest: EOF to the loop, a short wait, then kill everything marked."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2 if self._eof else 0.05)
        procs.kill_tree(proc.pid, self._marker)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs.kill_tree(proc.pid, self._marker)
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self._closed()

    def reboot(self) -> None:
        self.close()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None

    def processes(self) -> list[tuple[int, str]]:
        """qemu-system-*/virtiofsd processes this target started that are still alive."""
        return procs.guest_processes(self._marker) if self._marker else []

    # -- Target protocol ---------------------------------------------------------------

    def console(self) -> str:
        with self._lock:
            return self._console.decode("utf-8", "replace")

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        start = time.monotonic()
        frame = self._request(run_request, (cmd,), timeout, f"command {cmd[:60]!r}")
        return CommandResult(frame.rc, frame.stdout, frame.stderr, time.monotonic() - start)

    def put(self, local: Path | str, remote: str, timeout: float = 60.0) -> None:
        data = Path(local).read_bytes()
        mode = Path(local).stat().st_mode & 0o777
        frame = self._request(put_request, (remote, data, mode), timeout, f"put {remote}")
        if frame.rc != 0:
            detail = frame.stderr.decode(errors="replace").strip()
            raise RemoteFileError(f"put {remote} failed: {detail}")

    def get(self, remote: str, local: Path | str, timeout: float = 60.0) -> None:
        frame = self._request(get_request, (remote,), timeout, f"get {remote}")
        if frame.rc != 0:
            detail = frame.stderr.decode(errors="replace").strip()
            raise RemoteFileError(f"get {remote} failed: {detail}")
        Path(local).write_bytes(frame.stdout)

    def identity(self, timeout: float = 60.0) -> TargetIdentity:
        """The guest kernel's `uname -r` and BTF hash, computed in the guest (by the
        boot's warm-up on a guest with a spare vCPU, see base.identity_scripts)."""
        return read_identity(self, timeout, _READ_IDENTITY)

    # -- internals -----------------------------------------------------------------------

    def _pump(self, stream: Any, sink: bytearray, is_channel: bool) -> None:
        """Copy one pipe into a buffer (always drained, so QEMU never blocks on it)."""
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except (OSError, ValueError):
                chunk = b""
            with self._lock:
                if chunk:
                    sink.extend(chunk)
                elif is_channel:
                    self._eof = True
                self._lock.notify_all()
            if not chunk:
                return

    def _request(self, build: Any, args: tuple[Any, ...], timeout: float, what: str) -> Frame:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise TargetGone(f"{what}: the guest is not running (start() or reboot() first)")
        req_id = self._next_id
        self._next_id += 1
        deadline = time.monotonic() + timeout
        try:
            proc.stdin.write(build(req_id, *args))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the guest is gone; _wait_frame reports why
        try:
            frame = self._wait_frame(req_id, deadline, phase=what)
            if splat.taint_means_splat(self._taint, frame.taint):
                self._wait_for_splat(time.monotonic() + _SPLAT_GRACE)
            self._check_splats(f"during {what}")
            splat.unreported_taint(self._taint, frame.taint, self.console(), f"during {what}")
            self._taint = frame.taint
        except BaseException:
            self.close()
            raise
        return frame

    def _wait_frame(self, req_id: int, deadline: float, phase: str) -> Frame:
        assert self._parser is not None
        with self._lock:
            while True:
                frame = self._parser.take(self._out)
                if frame is not None and frame.req_id == req_id:
                    return frame
                if frame is not None:
                    continue  # a stale answer (cannot happen in order, but never loop on it)
                if self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(min(left, 0.5))
        eof = self._eof
        if eof:
            self._drain_console()
        console = self.console()
        self._scan_new(console, f"during {phase}")  # a panic explains both EOF and hangs
        if eof:
            rc = self._proc.poll() if self._proc else None
            if phase == "boot":
                raise BootFailed(f"guest exited during boot (rc={rc}): {_tail(console)}")
            raise TargetGone(f"guest exited during {phase} (rc={rc}): {_tail(console)}")
        if phase == "boot":
            raise BootTimeout(
                f"kernel hang: no userspace within {self.boot_timeout:.0f} s; "
                f"last console: {_tail(console)}"
            )
        raise CommandTimeout(
            f"hang: {phase} did not finish within its timeout; last console: {_tail(console, 2)}"
        )

    def _drain_console(self) -> None:
        """After QEMU exited, let the console pump read the last lines (the panic text)."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if len(self._threads) > 1:
            self._threads[1].join(timeout=3)

    def _wait_for_splat(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if splat.find_splats(self.console()[self._checked :]):
                time.sleep(0.3)  # the rest of the report
                return
            time.sleep(0.1)

    def _scan_new(self, console: str, context: str) -> None:
        start = console.rfind("\n", 0, self._checked) + 1 if self._checked else 0
        self._checked = len(console)
        splat.check_console(console[start:], context=context)

    def _check_splats(self, context: str) -> None:
        try:
            self._scan_new(self.console(), context)
        except KernelSplat:
            raise
