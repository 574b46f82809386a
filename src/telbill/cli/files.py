"""Files the CLI reads and writes: checked before any work starts, read within limits.

An input is a regular file (or a folder, where the format is one), at most
`TELBILL_MAX_INPUT_BYTES` long (default 16 GiB): a device or a pipe (``/dev/zero``,
``/dev/stdin``) is refused at once, so reading always ends. Text lines are at most
`MAX_LINE_BYTES` characters long (a file of one endless line is stopped there, not read into
memory). An output must not be a folder and its folder must exist. Each refusal is an
`InvalidInput` naming the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from telbill.errors import InvalidInput

MAX_INPUT_BYTES_ENV = "TELBILL_MAX_INPUT_BYTES"
DEFAULT_MAX_INPUT_BYTES = 16 << 30
MAX_LINE_BYTES = 1 << 20


def max_input_bytes() -> int:
    text = os.environ.get(MAX_INPUT_BYTES_ENV, "")
    return int(text) if text.isdigit() else DEFAULT_MAX_INPUT_BYTES


def input_path(path: Path, *, folder_ok: bool = False) -> Path:
    """`path` checked as an input: an existing regular file (or folder when `folder_ok`)
    within the size limit.

    Raises InvalidInput naming the file otherwise.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        if folder_ok:
            return path
        raise InvalidInput(f"{path}: is a folder, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(
            f"{path}: not a regular file (a device, pipe or socket); save the data to a file"
        )
    limit = max_input_bytes()
    if info.st_size > limit:
        raise InvalidInput(
            f"{path}: {info.st_size} bytes, over the limit of {limit} ({MAX_INPUT_BYTES_ENV})"
        )
    return path


def output_path(path: Path, option: str = "--out") -> Path:
    """`path` checked as an output file: not a folder, in a folder that exists."""
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder, expected a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInput(f"{option} {path}: folder {parent} does not exist")
    return path


class LimitedLines:
    """A text file's lines, refusing one longer than `limit` characters: an endless line is
    stopped after `limit` characters, never read into memory. Reads like the file
    (`readline`, `readlines(hint)`, iteration)."""

    def __init__(self, handle: TextIO, source: str, *, limit: int = MAX_LINE_BYTES) -> None:
        self._handle = handle
        self._source = source
        self._limit = limit
        self._number = 0

    def readline(self) -> str:
        line = self._handle.readline(self._limit + 1)
        if line:
            self._number += 1
            if len(line) > self._limit and not line.endswith("\n"):
                raise InvalidInput(
                    f"{self._source} line {self._number}: longer than {self._limit} characters"
                )
        return line

    def readlines(self, hint: int = -1) -> list[str]:
        lines: list[str] = []
        size = 0
        while line := self.readline():
            lines.append(line)
            size += len(line)
            if 0 < hint <= size:
                break
        return lines

    def __iter__(self) -> Iterator[str]:
        while line := self.readline():
            yield line
