"""A local file system that fails on demand, for failure paths that cannot be
produced for real everywhere (tests run as root, where permissions do not bite)."""

from __future__ import annotations

import errno
import os
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs


class _FillingFile:
    """A writable file that raises ENOSPC once `budget` bytes have been written."""

    def __init__(self, raw: Any, budget: int) -> None:
        self.raw = raw
        self.budget = budget
        self.closed = False

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if size > self.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.budget -= size
        return int(self.raw.write(data))

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


class FaultyHandler(pafs.FileSystemHandler):  # type: ignore[misc]
    """Delegates to LocalFileSystem; output streams hit a full disk after
    `write_budget` bytes, and `move` can be made to fail (a crash before rename)."""

    def __init__(self, write_budget: int | None = None, fail_move: bool = False) -> None:
        self.local = pafs.LocalFileSystem()
        self.write_budget = write_budget
        self.fail_move = fail_move

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def get_type_name(self) -> str:
        return "faulty"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.local.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError(errno.EPERM, "not in tests")

    def delete_file(self, path: str) -> None:
        self.local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        if self.fail_move:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.local.copy_file(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        if self.write_budget is None:
            return self.local.open_output_stream(path)
        return pa.PythonFile(_FillingFile(open(path, "wb"), self.write_budget), mode="w")

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return self.local.open_append_stream(path)


def faulty_fs(**kwargs: Any) -> pafs.FileSystem:
    return pafs.PyFileSystem(FaultyHandler(**kwargs))
