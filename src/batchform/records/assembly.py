"""AssembleWith: how the answers of one object's requests are joined in its output."""

from __future__ import annotations

from batchform.spec.enums import AssembleWith


def assemble(body: bytes, assemble_with: AssembleWith) -> bytes:
    """AssembleWith=Line: exactly one newline after each response, never a blank line."""
    if assemble_with is AssembleWith.LINE and not body.endswith(b"\n"):
        return body + b"\n"
    return body
