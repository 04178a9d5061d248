"""What a finished build hands to the later stages (boot, program loading, BTF checks)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BuildArtifacts:
    """Paths of one cached build; every later stage takes this, never a build dir layout."""

    arch: str  # "x86_64" or "arm64"
    kernel_release: str  # e.g. "7.3.4"
    cache_key: str
    boot_image: Path  # bzImage / Image
    vmlinux: Path  # ELF with .BTF and .BTF_ids
    config: Path  # the .config the kernel was built with
    modules_dir: Path  # in-tree *.ko, flat
    bpf_testmod: Path | None  # selftests' test module, BTF distilled
    libbpf_so: Path  # libbpf.so built for the target arch (the guest agent loads it)
    libbpf_headers: Path  # include dir holding bpf/*.h
    bpftool: Path  # host bpftool built from the tree (vmlinux.h generator)
    resolve_btfids: Path  # host C resolve_btfids built from the tree (the oracle)
    source_tree: Path  # the kernel tree the build came from (read-only)
    log: Path
    toolchain: dict[str, str] = field(default_factory=dict)  # pahole, btfids, cc versions

    def to_json(self) -> str:
        def plain(value: object) -> object:
            return str(value) if isinstance(value, Path) else value

        return json.dumps({k: plain(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> BuildArtifacts:
        data = json.loads(text)
        path_fields = {
            "boot_image", "vmlinux", "config", "modules_dir", "bpf_testmod", "libbpf_so",
            "libbpf_headers", "bpftool", "resolve_btfids", "source_tree", "log",
        }
        for name in path_fields:
            if data.get(name) is not None:
                data[name] = Path(data[name])
        return cls(**data)
