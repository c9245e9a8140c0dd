"""Errors of the patch machinery."""

from __future__ import annotations


class PatchError(Exception):
    """A patch that is malformed (code 400) or cannot be applied (code 422)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code
