"""One file of the sweep folder read with its version and written on a condition, for the
driver's lease (``sweeps.store.lease``).

- :class:`S3File` (``s3://`` storage, with boto3): S3's conditional writes make taking and
  renewing the lease atomic: ``PutObject`` with ``If-None-Match: *`` creates the object only if
  it is absent, with ``If-Match: ETAG`` replaces only the version that was read. pyarrow cannot
  send these headers, hence boto3. A store that rejects them (``501 NotImplemented``) or ignores
  them is found out by a probe before the first write, and then written without conditions.
- :class:`FolderFile` (local folders, other remote storage, S3 without boto3): plain reads and
  writes through the :class:`SweepFolder`; the lease makes up for it (a local ``flock``, or a
  settle and read-back on remote storage).

Both also tell the storage's clock (``now``): the modification time of a probe file,
``NAME.clock``, written just before. A lease's age is then one clock's difference (the lease's
modification time against the probe's), whatever the host's own clock says.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass

from sweeps.store.folder import SweepFolder

CLOCK_SUFFIX = ".clock"
_NEVER_AN_ETAG = '"00000000000000000000000000000000"'


@dataclass(frozen=True)
class Stored:
    """What was read: the text, its version (S3's ETag; None where writes cannot be
    conditioned) and its modification time by the storage's clock (POSIX seconds)."""

    text: str
    version: str | None
    modified: float


class Conflict(Exception):
    """The file is no longer what the write was conditioned on (another writer came first)."""


class FolderFile:
    """A file of the folder, read and written through pyarrow, without conditions."""

    conditional = False

    def __init__(self, folder: SweepFolder, name: str) -> None:
        self.folder, self.name = folder, name

    def _path(self, name: str) -> str:
        _, root = self.folder.filesystem()
        return f"{root}/{name}"

    def read(self) -> Stored | None:
        import pyarrow.fs

        fs, _ = self.folder.filesystem()
        info = fs.get_file_info(self._path(self.name))
        if info.type != pyarrow.fs.FileType.File:
            return None
        try:
            with fs.open_input_stream(info.path) as f:
                text = f.read().decode()
        except FileNotFoundError:  # removed since it was listed
            return None
        return Stored(text, None, info.mtime.timestamp())

    def write(self, text: str, expect: Stored | None) -> None:
        """Write ``text`` (``expect``, the version read before, cannot be checked here)."""
        self.folder.write_text(self.name, text)

    def delete(self, expect: Stored) -> None:
        self.folder.delete(self.name)

    def now(self) -> float:
        """The storage's clock: the modification time of a probe file written now."""
        clock = self.name + CLOCK_SUFFIX
        self.folder.write_text(clock, "")
        fs, _ = self.folder.filesystem()
        return fs.get_file_info(self._path(clock)).mtime.timestamp()


class S3File:
    """An object on S3 (or an S3-compatible store), through boto3's conditional writes."""

    def __init__(self, folder: SweepFolder, name: str) -> None:
        # pyarrow opens the folder first: a URI it refuses is one line (a UsageError), and it
        # has found the bucket's region when the URI does not name it.
        fs, root = folder.filesystem()
        self.bucket, _, prefix = root.partition("/")
        self.key = f"{prefix}/{name}" if prefix else name
        options = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(folder.path).query))
        options.setdefault("region", getattr(fs, "region", "") or "")
        self.client = s3_client(options, folder.credentials())

    @functools.cached_property
    def conditional(self) -> bool:
        """Whether the store refuses writes whose condition fails (AWS S3 and moto do; some
        S3-compatible stores answer 501 or ignore the headers). Asked once, on the probe
        object: a create-only write over it and a write conditioned on an ETag it never has."""
        from botocore.exceptions import ClientError

        clock = {"Bucket": self.bucket, "Key": self.key + CLOCK_SUFFIX}
        self.client.put_object(**clock, Body=b"")
        for condition in ({"IfNoneMatch": "*"}, {"IfMatch": _NEVER_AN_ETAG}):
            try:
                self.client.put_object(**clock, Body=b"", **condition)
            except ClientError as err:
                if _status(err) not in (409, 412):
                    return False  # rejected (501 NotImplemented, 400): no conditional writes
            else:
                return False  # written over: the store ignored the condition
        return True

    def read(self) -> Stored | None:
        from botocore.exceptions import ClientError

        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if _status(err) == 404:
                return None
            raise
        text = got["Body"].read().decode()
        return Stored(text, got["ETag"], got["LastModified"].timestamp())

    def write(self, text: str, expect: Stored | None) -> None:
        """Write ``text`` if the object is still ``expect`` (absent when None); else raise
        :class:`Conflict`. Without conditional writes: unconditionally."""
        from botocore.exceptions import ClientError

        condition = {}
        if self.conditional:
            condition = {"IfNoneMatch": "*"} if expect is None else {"IfMatch": expect.version}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=text.encode(), **condition
            )
        except ClientError as err:
            # 412: another version; 404: removed since; 409: a concurrent conditional write.
            if condition and _status(err) in (404, 409, 412):
                raise Conflict(self.key) from None
            raise

    def delete(self, expect: Stored) -> None:
        """Delete the object if it is still ``expect`` (a store without conditional deletes:
        unconditionally; the caller has just read it as its own)."""
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=expect.version)
        except ClientError as err:
            if _status(err) in (404, 412):
                return  # gone, or another driver's by now: not ours to delete
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def now(self) -> float:
        """The storage's clock: the modification time of a probe object written now."""
        clock = {"Bucket": self.bucket, "Key": self.key + CLOCK_SUFFIX}
        self.client.put_object(**clock, Body=b"")
        return self.client.head_object(**clock)["LastModified"].timestamp()


def _status(err) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def s3_client(options: dict[str, str], credentials: dict[str, str]):
    """A boto3 S3 client for the store pyarrow's URI ``options`` name (``endpoint_override``,
    ``scheme``, ``region``, ``tls_ca_file_path``, ``force_virtual_addressing``); credentials
    from the URI (``SweepFolder.credentials``), else boto3's own chain (the environment, the
    driver's private credentials file, an instance role)."""
    import boto3
    from botocore.config import Config

    endpoint = options.get("endpoint_override")
    if endpoint and "://" not in endpoint:
        endpoint = f"{options.get('scheme', 'https')}://{endpoint}"
    # pyarrow addresses a custom endpoint by path (``host/bucket/key``) unless told otherwise.
    style = "path" if endpoint else "auto"
    if options.get("force_virtual_addressing", "").lower() == "true":
        style = "virtual"
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=options.get("region") or None,
        aws_access_key_id=credentials.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=credentials.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
        verify=options.get("tls_ca_file_path") or None,
        config=Config(s3={"addressing_style": style}),
    )


def versioned_file(folder: SweepFolder, name: str) -> S3File | FolderFile:
    """:class:`S3File` for ``s3://`` storage when boto3 is installed (the ``cluster`` extra);
    else :class:`FolderFile`."""
    if folder.is_local or not folder.root.startswith("s3://"):
        return FolderFile(folder, name)
    try:
        import boto3  # noqa: F401
    except ImportError:
        return FolderFile(folder, name)
    return S3File(folder, name)
