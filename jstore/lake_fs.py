"""The lake's one filesystem layer: a local folder or an object store, through `pyarrow.fs`.

`lake_root(settings)` turns `Settings.lake_uri` into a `LakePath`: a path inside one pyarrow
filesystem (local, S3 or any S3-compatible server, GCS). Every location of the lake derives from
it (jstore/lake.py) and every read, write, listing and commit goes through it, so the lander,
quarantine, staging, validation, publish, quality reports and exports do not care where the
lake is. A local path is the default.

    /data/lake, file:///data/lake   the local filesystem
    s3://bucket/prefix              S3, or an S3-compatible server at JSTORE_S3_ENDPOINT_URL
                                    (credentials: the standard AWS_* environment variables)
    s3a://bucket/prefix             the same (Spark's spelling; `spark_uri` maps back to it)
    gs://bucket/prefix              Google Cloud Storage (application default credentials)

Atomicity. A reader must never see part of a file. On a local disk a file is written under a
hidden temp name, synced and renamed (`write_bytes`); on an object store a PUT (or a completed
multipart upload) makes a whole object appear at once, so the object is written under its own
name. `replace` is a rename on a local disk (atomic) and a server-side copy then a delete on an
object store: the target appears whole, but for a moment both names exist. Callers that move
several files at once (the lander's commit) make that safe with a journal
(jstore/ingest/transaction.py, docs/ingestion.md). `sync` makes a written file durable (fsync)
on a local disk; an object store acknowledges a PUT only once it is durable, so there it only
checks that the object still exists.

Names starting with `.` or `_` are never data: pyarrow datasets and Spark skip them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.fs as pafs

from jstore.config import Settings

OBJECT_STORE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs"}
"""URI schemes of object stores, mapped to the one each LakePath is printed with."""
SPARK_SCHEMES = {"s3": "s3a", "gs": "gs"}
"""What Spark (Hadoop) calls each object store: S3 is s3a:// there (hadoop-aws)."""


class LakePath:
    """A file or folder of the lake: a `/`-separated path inside `fs`.

    Shaped like pathlib's paths (`/`, `name`, `parent`, `glob`, `read_text`, ...), so code that
    walked local folders reads the same. `str()` is the local path, or the object's URI
    (`s3://bucket/key`); a local LakePath is also an `os.PathLike`.
    """

    __slots__ = ("fs", "path", "scheme")

    def __init__(self, fs: pafs.FileSystem, path: str, scheme: str = ""):
        self.fs = fs
        self.path = path.rstrip("/") or "/"
        self.scheme = scheme
        """'' for the local filesystem, else the object store's URI scheme (s3, gs)."""

    # naming ----------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return not self.scheme

    def __truediv__(self, name: str) -> LakePath:
        return LakePath(self.fs, f"{self.path}/{name}", self.scheme)

    def joinpath(self, *names: str) -> LakePath:
        path = self
        for name in names:
            path = path / name
        return path

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def suffix(self) -> str:
        name = self.name
        dot = name.rfind(".")
        return name[dot:] if dot > 0 else ""

    @property
    def parent(self) -> LakePath:
        return LakePath(self.fs, self.path.rpartition("/")[0] or "/", self.scheme)

    def with_name(self, name: str) -> LakePath:
        return self.parent / name

    def relative_to(self, other: LakePath) -> str:
        """This path below `other`, `/`-separated; ValueError when it is not below it."""
        if not self.path.startswith(f"{other.path}/"):
            raise ValueError(f"{self} is not inside {other}")
        return self.path[len(other.path) + 1 :]

    def parse(self, text: str) -> LakePath:
        """The path that `str()` printed as `text`, in this path's filesystem (journals and
        request files name paths as text)."""
        prefix = f"{self.scheme}://" if self.scheme else ""
        return LakePath(self.fs, text.removeprefix(prefix), self.scheme)

    @property
    def spark_uri(self) -> str:
        """The path as Spark names it (`s3a://bucket/key` for S3; the local path)."""
        return f"{SPARK_SCHEMES[self.scheme]}://{self.path}" if self.scheme else self.path

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}" if self.scheme else self.path

    def __repr__(self) -> str:
        return f"LakePath({str(self)!r})"

    def __fspath__(self) -> str:
        if self.scheme:
            raise TypeError(f"{self} is on an object store, not a local path")
        return self.path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LakePath) and (self.scheme, self.path) == (
            other.scheme,
            other.path,
        )

    def __lt__(self, other: LakePath) -> bool:
        return self.path < other.path

    def __hash__(self) -> int:
        return hash((self.scheme, self.path))

    # queries ---------------------------------------------------------------------------------

    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def _entries(self, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        return self.fs.get_file_info(selector)

    def iterdir(self) -> list[LakePath]:
        """The files and folders directly inside (none when the folder does not exist)."""
        return sorted(LakePath(self.fs, e.path, self.scheme) for e in self._entries(False))

    def glob(self, pattern: str) -> list[LakePath]:
        """The files and folders whose path below this folder matches `pattern` part by part
        (`event_date=*/*.parquet`), sorted."""
        parts = pattern.split("/")
        found = []
        for entry in self._entries(recursive=len(parts) > 1):
            relative = entry.path[len(self.path) + 1 :].split("/")
            if len(relative) == len(parts) and all(map(fnmatch.fnmatchcase, relative, parts)):
                found.append(LakePath(self.fs, entry.path, self.scheme))
        return sorted(found)

    def files(self) -> dict[str, int]:
        """Every file under this folder, however deep: its path below the folder -> its size."""
        return {
            e.path[len(self.path) + 1 :]: e.size
            for e in self._entries(recursive=True)
            if e.type == pafs.FileType.File
        }

    def rglob(self, pattern: str) -> list[LakePath]:
        """The files and folders at any depth whose name matches `pattern`, sorted."""
        return sorted(
            LakePath(self.fs, e.path, self.scheme)
            for e in self._entries(recursive=True)
            if fnmatch.fnmatchcase(e.base_name, pattern)
        )

    # reading and writing ---------------------------------------------------------------------

    def open_input(self) -> pafs.NativeFile:
        """A random-access reader (Parquet footers, row groups)."""
        return self.fs.open_input_file(self.path)

    def open_output(self) -> pafs.NativeFile:
        """A writer straight to this name (a temp name, or a file nobody reads yet)."""
        return self.fs.open_output_stream(self.path)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Replace the file's content atomically and durably (see the module docstring)."""
        self.parent.mkdir(parents=True, exist_ok=True)
        if self.scheme:
            with self.open_output() as stream:
                stream.write(data)
            return
        temp = self.with_name(f".{self.name}.{uuid.uuid4().hex}.tmp")
        with temp.open_output() as stream:
            stream.write(data)
        temp.sync()
        os.replace(temp.path, self.path)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    # changing --------------------------------------------------------------------------------

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Create the folder, as pathlib does; a no-op on an object store, whose keys need no
        folders."""
        if self.scheme:
            return
        try:
            if parents:
                os.makedirs(self.path)
            else:
                os.mkdir(self.path)
        except FileExistsError:
            if not (exist_ok and self.is_dir()):
                raise

    def sync(self) -> None:
        """Make a written file durable; FileNotFoundError when it is gone (see above)."""
        if self.scheme:
            if not self.is_file():
                raise FileNotFoundError(str(self))
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, target: LakePath) -> None:
        """Move this file to `target` (replacing it); FileNotFoundError when this file is gone.

        Local: a rename. Object store: a server-side copy, then the delete of this name, which
        tolerates another mover having deleted it first: moving twice gives the same target."""
        if not self.scheme:
            os.replace(self.path, target.path)
            return
        try:
            self.fs.copy_file(self.path, target.path)
        except OSError:
            if not self.is_file():
                raise FileNotFoundError(str(self)) from None
            raise
        self.unlink(missing_ok=True)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        """Delete the folder and everything in it, if it exists."""
        if self.is_dir():
            self.fs.delete_dir(self.path)


@contextmanager
def local_mirror(folder: LakePath, download: str) -> Iterator[Path]:
    """A local folder standing for `folder`, for a library that writes only to local files
    (Great Expectations' Data Docs).

    For a local `folder`, the folder itself. For one on an object store, a mirror folder of
    this machine (one per `folder`, kept between calls): the files under `download` that the
    mirror lacks are fetched first; on a normal exit every file that the block created or
    changed is uploaded, `index.html` files last, so a page is in place before an index links
    to it.
    """
    if folder.is_local:
        yield Path(folder.path)
        return
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    mirror = Path(tempfile.gettempdir()) / "jstore-mirror" / digest
    for name, size in (folder / download).files().items():
        local = mirror / download / name
        if not local.is_file() or local.stat().st_size != size:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes((folder / download / name).read_bytes())
    before = _stamps(mirror)
    yield mirror
    changed = [name for name, stamp in _stamps(mirror).items() if before.get(name) != stamp]
    for name in sorted(changed, key=lambda n: (n.endswith("index.html"), n)):
        (folder / name).write_bytes((mirror / name).read_bytes())


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def lake_root(settings: Settings) -> LakePath:
    """The lake's root folder, as `Settings.lake_uri` and `s3_endpoint_url` name it."""
    return location(settings, settings.lake_uri)


def location(settings: Settings, where: str | os.PathLike[str]) -> LakePath:
    """The file or folder a user names by a local path or an object store URI (an export's
    output, a job's request file): object stores are reached as the lake's are. ValueError
    for any other URI."""
    return path_at(os.fspath(where), settings.s3_endpoint_url)


def local_path(path: str | os.PathLike[str]) -> LakePath:
    """A local file or folder as a LakePath."""
    return LakePath(_local(), os.path.abspath(path))


@lru_cache
def _local() -> pafs.LocalFileSystem:
    return pafs.LocalFileSystem()


@lru_cache
def path_at(where: str, s3_endpoint_url: str | None = None) -> LakePath:
    """`location` given the S3 endpoint alone (Spark jobs that are handed the lake's URI)."""
    parsed = urlparse(where)
    if parsed.scheme in ("", "file"):
        return local_path(where.removeprefix("file://"))
    scheme = OBJECT_STORE_SCHEMES.get(parsed.scheme)
    if scheme is None or not parsed.netloc:
        raise ValueError(f"{where!r} is neither a local path nor s3://, s3a://, gs://<bucket>/...")
    path = f"{parsed.netloc}{parsed.path}"
    return LakePath(_object_store(scheme, s3_endpoint_url), path, scheme)


@lru_cache
def _object_store(scheme: str, s3_endpoint_url: str | None) -> pafs.FileSystem:
    return pafs.GcsFileSystem() if scheme == "gs" else _s3(s3_endpoint_url)


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark configuration that reaches the lake (none for a local lake).

    For S3 (s3a:// in Spark, `LakePath.spark_uri`): the S3A connector's endpoint, path-style
    access and TLS for an S3-compatible server; credentials come from the S3A connector's
    default chain, which reads the same AWS_* environment variables (never a command line).
    The connector itself, hadoop-aws and the AWS SDK bundle, is in `Settings.spark_s3_jars`.
    """
    if lake_root(settings).scheme != "s3" or not settings.s3_endpoint_url:
        return {}
    endpoint = urlparse(settings.s3_endpoint_url)
    return {
        "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint_url,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(endpoint.scheme == "https").lower(),
    }


def spark_jars(settings: Settings) -> str:
    """The jars every Spark job needs: the JDBC driver, and the S3A connector for an S3 lake."""
    s3 = lake_root(settings).scheme == "s3"
    return ",".join(jar for jar in (settings.jdbc_jar, settings.spark_s3_jars if s3 else "") if jar)


def _s3(endpoint_url: str | None) -> pafs.S3FileSystem:
    """S3 with the AWS SDK's usual credentials chain (AWS_ACCESS_KEY_ID, ..., profiles, instance
    roles) and region (AWS_REGION / AWS_DEFAULT_REGION); path-style requests to a custom
    endpoint (MinIO, moto, Ceph), which rarely serve bucket subdomains."""
    if endpoint_url is None:
        return pafs.S3FileSystem()
    endpoint = urlparse(endpoint_url)
    return pafs.S3FileSystem(
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme or "https",
        force_virtual_addressing=False,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
