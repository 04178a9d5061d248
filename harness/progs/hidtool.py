#!/usr/bin/env python3
"""Guest-side HID driver for HID-BPF programs: a /dev/uhid device, scenarios, hidraw.

Shipped next to ``agent.py`` and, like it, standard library only: it runs in
the guest's python3. The agent uses it for jobs whose program carries the
harness's ``__hid(scenario)`` tag (bpf_progs/harness_misc.h):

1. :class:`UhidDevice` creates a virtual device with ``UHID_CREATE2`` before the
   object is loaded, because the kernel id of that device (``hid_id``) must be
   written into the ``struct hid_bpf_ops`` map value before libbpf creates the
   map (:func:`set_hid_id`, through ``bpf_map__initial_value``);
2. the agent loads the object and attaches the struct_ops map
   (``bpf_map__attach_struct_ops``), which is when HID-BPF binds the program
   to the device;
3. :func:`run_scenario` opens the device's hidraw node, injects reports with
   ``UHID_INPUT2`` and compares what hidraw hands to user space, i.e. the
   report after the BPF program rewrote it (or dropped it, or added more).

Scenario syntax (one string, steps separated by ``;``)::

    send 01 2a 00 00 00 00 00 00 00   inject an input report (hex bytes)
    read 01 2a 2f .. 00 00 00 00 00   the next hidraw report must match ('..' = any byte)
    quiet 300                         no report may arrive within 300 ms
    wait 100                          sleep 100 ms

A ``read`` waits up to ``timeout`` seconds (5 s by default): reports injected
from a bpf_wq callback arrive from a kworker a little later, and a TCG guest is
slow, so a deadline beats a fixed sleep.

Standalone (``agent.py hid ...`` or ``python3 hidtool.py ...``)::

    hidtool.py probe                 # JSON: is uhid/hidraw usable here?
    hidtool.py run 'send ..; read ..' # drive a device without BPF (plumbing check)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import select
import struct
import sys
import threading
import time

UHID_PATH = "/dev/uhid"
SYSFS_UHID = "/sys/devices/virtual/misc/uhid"
SYSFS_HID = "/sys/bus/hid/devices"

# enum uhid_event_type (include/uapi/linux/uhid.h)
UHID_DESTROY, UHID_START, UHID_STOP, UHID_OPEN, UHID_CLOSE, UHID_OUTPUT = 1, 2, 3, 4, 5, 6
UHID_GET_REPORT, UHID_GET_REPORT_REPLY = 9, 10
UHID_CREATE2, UHID_INPUT2 = 11, 12
UHID_SET_REPORT, UHID_SET_REPORT_REPLY = 13, 14

HID_MAX_DESCRIPTOR_SIZE = 4096
UHID_DATA_MAX = 4096
# struct uhid_create2_req: name[128] phys[64] uniq[64] u16 rd_size u16 bus
# u32 vendor u32 product u32 version u32 country u8 rd_data[4096] (packed)
_CREATE2 = struct.Struct(f"=I128s64s64sHHIIII{HID_MAX_DESCRIPTOR_SIZE}s")
# struct uhid_input2_req: u16 size, u8 data[4096]
_INPUT2 = struct.Struct(f"=IH{UHID_DATA_MAX}s")
# struct uhid_get_report_req: u32 id, u8 rnum, u8 rtype; the reply: u32 id, u16 err, u16 size
_GET_REPORT = struct.Struct("=IIBB")
_REPORT_REPLY = struct.Struct(f"=IIHH{UHID_DATA_MAX}s")
_SET_REPORT_REPLY = struct.Struct("=IIH")
# sizeof(struct uhid_event): the u32 type, then the union, whose largest member is
# uhid_create2_req (4372 bytes) but which the legacy create's rd_data pointer aligns
# to 8, so 4376: 4380 in all (the struct is packed, the union is not).
UHID_EVENT_SIZE = 4 + ((_CREATE2.size - 4) + 7) // 8 * 8

BUS_VIRTUAL = 0x06
VENDOR, PRODUCT = 0x4B46, 0x4842  # "KF", "HB": no quirk table knows them

# A vendor-page device with two 8-byte input reports, IDs 1 and 2, so every
# report hidraw returns is 9 bytes: the ID, then the payload. hid-generic binds
# it and hidraw claims it; no input handler interprets it.
REPORT_DESCRIPTOR = bytes([
    0x06, 0x00, 0xFF,  # Usage Page (Vendor Defined 0xFF00)
    0x09, 0x01,        # Usage (0x01)
    0xA1, 0x01,        # Collection (Application)
    0x85, 0x01,        #   Report ID (1)
    0x09, 0x02,        #   Usage (0x02)
    0x15, 0x00,        #   Logical Minimum (0)
    0x26, 0xFF, 0x00,  #   Logical Maximum (255)
    0x75, 0x08,        #   Report Size (8)
    0x95, 0x08,        #   Report Count (8)
    0x81, 0x02,        #   Input (Data,Var,Abs)
    0x85, 0x02,        #   Report ID (2)
    0x09, 0x03,        #   Usage (0x03)
    0x95, 0x08,        #   Report Count (8)
    0x81, 0x02,        #   Input (Data,Var,Abs)
    0xC0,              # End Collection
])

DEFAULT_READ_TIMEOUT = 5.0


class HidError(Exception):
    """The device could not be made, found or driven (the message says which step)."""


class HidUnavailable(HidError):
    """This kernel or guest has no uhid/hidraw: the scenario is skipped, not failed."""


def available() -> str | None:
    """None if uhid can be used here, else why not (a skip reason)."""
    if not os.path.exists(UHID_PATH):
        return f"{UHID_PATH} is missing (CONFIG_UHID)"
    return None


class UhidDevice:
    """One virtual HID device; closing it destroys the device.

    A thread services the uhid file: it records UHID_START/OPEN and answers
    GET_REPORT and SET_REPORT requests (with an error and success), because a
    request left unanswered stalls the kernel side for seconds.
    """

    def __init__(self, rdesc: bytes = REPORT_DESCRIPTOR, *, name: str | None = None,
                 bus: int = BUS_VIRTUAL, vendor: int = VENDOR, product: int = PRODUCT) -> None:
        reason = available()
        if reason:
            raise HidUnavailable(reason)
        self.bus, self.vendor, self.product = bus, vendor, product
        self.phys = f"kfunc-harness-{os.getpid()}-{time.monotonic_ns() % 1000000}"
        self.name = name or f"kfunc-harness-hid-{os.getpid()}"
        try:
            self.fd = os.open(UHID_PATH, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise HidUnavailable(f"cannot open {UHID_PATH}: {exc.strerror}") from None
        self.started = threading.Event()
        self.events: list[int] = []
        self._stop = False
        self._closed = False
        self._thread = threading.Thread(target=self._service, daemon=True)
        try:
            self._write(_CREATE2.pack(UHID_CREATE2, self.name.encode()[:127],
                                      self.phys.encode()[:63], b"", len(rdesc), bus, vendor,
                                      product, 0, 0, rdesc))
        except OSError as exc:
            os.close(self.fd)
            raise HidError(f"UHID_CREATE2 failed: {exc.strerror}") from None
        self._thread.start()

    def _write(self, payload: bytes) -> None:
        buf = payload.ljust(UHID_EVENT_SIZE, b"\0")
        n = os.write(self.fd, buf)
        if n != len(buf):
            raise OSError(errno.EIO, f"short uhid write ({n} of {len(buf)})")

    def _service(self) -> None:
        while not self._stop:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.fd, UHID_EVENT_SIZE)
            except OSError:
                return
            if len(data) < 4:
                return
            etype = struct.unpack_from("=I", data)[0]
            self.events.append(etype)
            if etype == UHID_START:
                self.started.set()
            elif etype == UHID_GET_REPORT:
                _, req_id, _rnum, _rtype = _GET_REPORT.unpack_from(data)
                self._reply(_REPORT_REPLY.pack(UHID_GET_REPORT_REPLY, req_id, errno.EIO, 0, b""))
            elif etype == UHID_SET_REPORT:
                _, req_id, _rnum, _rtype = _GET_REPORT.unpack_from(data)
                self._reply(_SET_REPORT_REPLY.pack(UHID_SET_REPORT_REPLY, req_id, 0))

    def _reply(self, payload: bytes) -> None:
        with contextlib.suppress(OSError):
            self._write(payload)

    def wait_started(self, timeout: float = 10.0) -> None:
        if not self.started.wait(timeout):
            raise HidError(f"no UHID_START within {timeout:.0f} s (is a HID driver bound?)")

    def sysfs_dir(self, timeout: float = 5.0) -> str:
        """The device's sysfs directory, matched by bus:vendor:product and our phys string."""
        prefix = f"{self.bus:04X}:{self.vendor:04X}:{self.product:04X}."
        deadline = time.monotonic() + timeout
        while True:
            for base in (SYSFS_UHID, SYSFS_HID):
                try:
                    names = os.listdir(base)
                except OSError:
                    continue
                for entry in names:
                    if not entry.startswith(prefix):
                        continue
                    path = os.path.join(base, entry)
                    try:
                        with open(os.path.join(path, "uevent")) as fh:
                            uevent = fh.read()
                    except OSError:
                        continue
                    if f"HID_PHYS={self.phys}\n" in uevent:
                        return os.path.realpath(path)
            if time.monotonic() >= deadline:
                raise HidError(f"no sysfs HID device {prefix}* with HID_PHYS={self.phys}")
            time.sleep(0.02)

    @property
    def hid_id(self) -> int:
        """The kernel's id of the device (``hid_device->id``): the ``.NNNN`` of its name."""
        return int(os.path.basename(self.sysfs_dir()).rsplit(".", 1)[1], 16)

    def hidraw_node(self, timeout: float = 5.0) -> str:
        """/dev/hidrawN of this device, made with mknod if devtmpfs lacks it."""
        base = os.path.join(self.sysfs_dir(), "hidraw")
        deadline = time.monotonic() + timeout
        while True:
            try:
                nodes = sorted(n for n in os.listdir(base) if n.startswith("hidraw"))
            except OSError:
                nodes = []
            if nodes:
                break
            if time.monotonic() >= deadline:
                raise HidError(f"device {os.path.basename(self.sysfs_dir())} has no hidraw node"
                               " (CONFIG_HIDRAW?)")
            time.sleep(0.02)
        dev = f"/dev/{nodes[0]}"
        if os.path.exists(dev):
            return dev
        with open(os.path.join(base, nodes[0], "dev")) as fh:
            major, minor = (int(x) for x in fh.read().strip().split(":"))
        alt = f"/tmp/{nodes[0]}"
        if not os.path.exists(alt):
            os.mknod(alt, 0o600 | 0o020000, os.makedev(major, minor))
        return alt

    def send(self, report: bytes) -> None:
        if len(report) > UHID_DATA_MAX:
            raise HidError(f"report of {len(report)} bytes is over UHID_DATA_MAX")
        self._write(_INPUT2.pack(UHID_INPUT2, len(report), report))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._write(struct.pack("=I", UHID_DESTROY))
        self._stop = True
        self._thread.join(timeout=1.0)
        os.close(self.fd)

    def __enter__(self) -> UhidDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_device(timeout: float = 10.0) -> UhidDevice:
    """A started device whose sysfs node exists (so ``hid_id`` is known)."""
    dev = UhidDevice()
    try:
        dev.wait_started(timeout)
        dev.sysfs_dir(timeout)
    except BaseException:
        dev.close()
        raise
    return dev


_HEX = re.compile(r"^(?:[0-9a-fA-F]{2}|\.\.)$")


def parse_scenario(text: str) -> list[tuple[str, object]]:
    """Steps of a scenario string; ValueError names the bad step."""
    steps: list[tuple[str, object]] = []
    for raw in text.split(";"):
        words = raw.split()
        if not words:
            continue
        op, args = words[0].lower(), words[1:]
        if op in ("send", "read"):
            if not args or not all(_HEX.match(a) for a in args):
                raise ValueError(f"bad hex bytes in '{raw.strip()}'")
            if op == "send":
                if ".." in args:
                    raise ValueError(f"'..' is only allowed in read: '{raw.strip()}'")
                steps.append((op, bytes(int(a, 16) for a in args)))
            else:
                steps.append((op, [None if a == ".." else int(a, 16) for a in args]))
        elif op in ("quiet", "wait"):
            if len(args) != 1 or not args[0].isdigit():
                raise ValueError(f"'{op}' takes milliseconds: '{raw.strip()}'")
            steps.append((op, int(args[0])))
        else:
            raise ValueError(f"unknown HID step '{op}'")
    if not steps:
        raise ValueError("empty HID scenario")
    return steps


def _hex(data: bytes | list[int | None]) -> str:
    return " ".join(".." if b is None else f"{b:02x}" for b in data)


def _read_report(fd: int, timeout: float) -> bytes | None:
    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return None
    return os.read(fd, UHID_DATA_MAX)


def run_scenario(dev: UhidDevice, scenario: str, timeout: float = DEFAULT_READ_TIMEOUT) -> dict:
    """Drive ``dev`` through the scenario; report every step and the first mismatch.

    Returns ``{"ok": bool, "hid_id": int, "hidraw": path, "steps": [...], "error": str}``.
    """
    out: dict = {"ok": False, "hid_id": None, "hidraw": None, "steps": [], "scenario": scenario}
    try:
        steps = parse_scenario(scenario)
        out["hid_id"] = dev.hid_id
        node = dev.hidraw_node()
        out["hidraw"] = node
        fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (ValueError, HidError, OSError) as exc:
        out["error"] = str(exc)
        return out
    try:
        for op, arg in steps:
            if op == "send":
                dev.send(arg)  # type: ignore[arg-type]
                out["steps"].append(f"send {_hex(arg)}")  # type: ignore[arg-type]
            elif op == "wait":
                time.sleep(int(arg) / 1000)  # type: ignore[call-overload]
                out["steps"].append(f"wait {arg}")
            elif op == "quiet":
                got = _read_report(fd, int(arg) / 1000)  # type: ignore[call-overload]
                if got is not None:
                    out["error"] = f"expected no report within {arg} ms, got {_hex(got)}"
                    return out
                out["steps"].append(f"quiet {arg}")
            else:
                want: list[int | None] = arg  # type: ignore[assignment]
                got = _read_report(fd, timeout)
                if got is None:
                    out["error"] = f"no report within {timeout:g} s (wanted {_hex(want)})"
                    return out
                out["steps"].append(f"read {_hex(got)}")
                if len(got) != len(want) or any(w is not None and w != g
                                                 for w, g in zip(want, got, strict=False)):
                    out["error"] = f"report {_hex(got)} != wanted {_hex(want)}"
                    return out
        out["ok"] = True
        return out
    except OSError as exc:
        out["error"] = f"{exc.strerror or exc}"
        return out
    finally:
        os.close(fd)


def probe() -> dict:
    """Whether a device can be created and its hidraw node found (no BPF involved)."""
    reason = available()
    if reason:
        return {"usable": False, "reason": reason}
    try:
        with create_device() as dev:
            return {"usable": True, "hid_id": dev.hid_id, "hidraw": dev.hidraw_node(),
                    "events": dev.events}
    except HidError as exc:
        return {"usable": False, "reason": str(exc)}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("probe", "run"):
        print("hidtool: usage: hidtool.py probe | run SCENARIO", file=sys.stderr)
        return 2
    if argv[0] == "probe":
        print(json.dumps(probe()))
        return 0
    if len(argv) != 2:
        print("hidtool: run takes one scenario string", file=sys.stderr)
        return 2
    try:
        with create_device() as dev:
            res = run_scenario(dev, argv[1])
    except HidError as exc:
        res = {"ok": False, "error": str(exc)}
    print(json.dumps(res))
    return 0 if res.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
