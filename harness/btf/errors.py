"""The one exception the BTF library raises on bad input or misuse."""

from __future__ import annotations

from harness.errors import UsageError


class BTFError(UsageError):
    """Malformed, unsupported or inconsistent BTF, or a bad editing call.

    Subclasses UsageError so the CLI prints it as one line and exits 2.
    Messages name the type id and, when the data came from a file, the byte
    offset of the offending record from the start of the blob.
    """

    def __init__(self, message: str, *, type_id: int | None = None, offset: int | None = None):
        parts = []
        if type_id is not None:
            parts.append(f"type [{type_id}]")
        if offset is not None:
            parts.append(f"at offset {offset:#x}")
        prefix = " ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.type_id = type_id
        self.offset = offset
