"""The lake's files as Spark jobs list, read and write them outside Spark: one filesystem layer.

A lake is a local path (`/data/lake`, `file:///data/lake`) or an object store URI
(`s3://bucket/prefix`, `s3a://…`). Spark names files by the URI; the driver reaches the same
files through the lake's one `pyarrow.fs` filesystem (jstore/lake_fs.py), so listing landed
files and writing the tile store's manifests go through `LakeFiles` alone and do not care where
the lake is.

Invariants: paths given to and returned by `LakeFiles` are relative to the lake root and use `/`;
`write_text` is temp-name-then-rename, so a reader sees the old text or the new, never a part.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jstore.lake_fs import path_at

HIDDEN_PREFIXES = (".", "_")
"""Files Spark and pyarrow never read as data: temp files, `_SUCCESS`, `_journal/`."""


@dataclass(frozen=True, order=True)
class FileEntry:
    path: str
    """Relative to the lake root."""
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class LakeFiles:
    uri: str
    """The lake root as Spark names it."""
    fs: pafs.FileSystem
    root: str
    """The lake root inside `fs`."""

    @classmethod
    def at(cls, lake_uri: str, s3_endpoint_url: str | None = None) -> LakeFiles:
        root = path_at(lake_uri.rstrip("/"), s3_endpoint_url)
        return cls(root.spark_uri, root.fs, root.path)

    def spark_path(self, path: str) -> str:
        return f"{self.uri}/{path}"

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    def list_files(self, folder: str) -> list[FileEntry]:
        """The data files directly inside `folder` (none when it does not exist), by path."""
        selector = pafs.FileSelector(self._full(folder), allow_not_found=True)
        return sorted(
            FileEntry(f"{folder}/{info.base_name}", info.size, info.mtime_ns or 0)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.base_name.startswith(HIDDEN_PREFIXES)
        )

    def read_text(self, path: str) -> str | None:
        """The file's text, or None when it does not exist."""
        if self.fs.get_file_info(self._full(path)).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(self._full(path)) as stream:
            return stream.read().decode()

    def write_text(self, path: str, text: str) -> None:
        folder, _, name = path.rpartition("/")
        temp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        self.fs.create_dir(self._full(folder), recursive=True)
        with self.fs.open_output_stream(self._full(temp)) as stream:
            stream.write(text.encode())
        self.fs.move(self._full(temp), self._full(path))

    def move(self, source: str, target: str) -> None:
        self.fs.create_dir(self._full(target.rpartition("/")[0]), recursive=True)
        self.fs.move(self._full(source), self._full(target))

    def delete_file(self, path: str) -> None:
        if self.fs.get_file_info(self._full(path)).type == pafs.FileType.File:
            self.fs.delete_file(self._full(path))

    def delete_dir(self, folder: str) -> None:
        if self.fs.get_file_info(self._full(folder)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self._full(folder))

    def parquet_metadata(self, path: str) -> pq.FileMetaData:
        """The Parquet footer only (row groups and their column statistics)."""
        with self.fs.open_input_file(self._full(path)) as handle:
            return pq.ParquetFile(handle).metadata

    def list_files_recursive(self, folder: str) -> list[FileEntry]:
        """Every data file under `folder`, however deep (Spark's partitioned output)."""
        selector = pafs.FileSelector(self._full(folder), allow_not_found=True, recursive=True)
        prefix = len(self.root) + 1
        return sorted(
            FileEntry(info.path[prefix:], info.size, info.mtime_ns or 0)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and not info.base_name.startswith(HIDDEN_PREFIXES)
        )
