"""Where workloads read and write artifacts: a local path or an `s3://bucket/prefix` URI.

Writes are atomic at the level callers need: `upload_tree` copies a finished directory, and
local writes go through a temporary sibling that is renamed into place. Every S3 failure is a `StorageError`
that names the URI it concerns (boto3's own errors name only the operation).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed", "ConditionalRequestConflict"})


class StorageError(OSError):
    """An artifact store operation failed; the message starts with the URI."""


class PreconditionFailed(StorageError):
    """A conditional write lost: the object exists (or changed) already."""


class ObjectMissing(StorageError):
    """No such object (or bucket) at the URI."""


@contextmanager
def naming(uri: str) -> Iterator[None]:
    """S3 errors inside re-raised as StorageError naming `uri`: what was asked for, and what S3 said."""
    try:
        yield
    except Exception as error:
        # botocore's and boto3's own errors, told by their module: the images install boto3, not botocore by name.
        if not type(error).__module__.startswith(("botocore.", "boto3.")):
            raise
        details = getattr(error, "response", {}).get("Error", {})
        code, message = str(details.get("Code", "")), str(details.get("Message", "")) or str(error)
        if code in PRECONDITION_FAILED_CODES:
            raise PreconditionFailed(f"{uri}: changed meanwhile ({code})") from None
        if code in NOT_FOUND_CODES:
            raise ObjectMissing(f"{uri}: no such object or bucket ({code})") from None
        raise StorageError(f"{uri}: {code} {message}".strip()) from None


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.key.rstrip('/')}/{name}" if self.key else name)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3(uri: str) -> S3Location:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return S3Location(parsed.netloc, parsed.path.lstrip("/"))


def s3_client() -> Any:
    """A boto3 S3 client; AWS_ENDPOINT_URL_S3 points it at another endpoint (a local moto server, MinIO)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or None)


def download_file(uri: str, destination: Path) -> Path:
    """Copy one object or file to `destination`; returns it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if is_s3(uri):
        location = parse_s3(uri)
        with naming(uri):
            s3_client().download_file(location.bucket, location.key, str(destination))
    else:
        shutil.copyfile(Path(uri), destination)
    return destination


def download_tree(uri: str, destination: Path) -> Path:
    """Copy every object under the prefix (or every file under the directory) to `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    if not is_s3(uri):
        shutil.copytree(Path(uri), destination, dirs_exist_ok=True)
        return destination
    location = parse_s3(uri)
    prefix = location.key.rstrip("/") + "/"
    client = s3_client()
    found = False
    with naming(uri):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(prefix) :]
                if not relative or relative.endswith("/"):
                    continue
                found = True
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(location.bucket, item["Key"], str(target))
    if not found:
        raise FileNotFoundError(f"no objects under {uri}")
    return destination


def upload_tree(source: Path, uri: str) -> None:
    """Copy the directory `source` to `uri`. Locally: into a temporary sibling, then renamed into place."""
    if is_s3(uri):
        location = parse_s3(uri)
        client = s3_client()
        with naming(uri):
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                client.upload_file(str(path), location.bucket, location.child(path.relative_to(source).as_posix()).key)
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_text(uri: str, text: str) -> None:
    """Write a small object or file; locally through a temporary file renamed into place."""
    if is_s3(uri):
        location = parse_s3(uri)
        with naming(uri):
            s3_client().put_object(Bucket=location.bucket, Key=location.key, Body=text.encode())
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def read_text(uri: str) -> str:
    if is_s3(uri):
        location = parse_s3(uri)
        with naming(uri):
            return str(s3_client().get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode())
    return Path(uri).read_text()


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return Path(uri).exists()
    location = parse_s3(uri)
    with naming(uri):
        response = s3_client().list_objects_v2(Bucket=location.bucket, Prefix=location.key, MaxKeys=1)
    return bool(response.get("KeyCount", 0))


def list_children(uri: str) -> list[str]:
    """Names directly under a directory or prefix (sub-directories and files)."""
    if not is_s3(uri):
        path = Path(uri)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    location = parse_s3(uri)
    prefix = location.key.rstrip("/") + "/" if location.key else ""
    names: set[str] = set()
    paginator = s3_client().get_paginator("list_objects_v2")
    with naming(uri):
        for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix, Delimiter="/"):
            names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
            names.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return sorted(n for n in names if n)


def join(uri: str, *parts: str) -> str:
    if is_s3(uri):
        location = parse_s3(uri)
        for part in parts:
            location = location.child(part)
        return location.uri
    return str(Path(uri).joinpath(*parts))


def require_object(uri: str) -> None:
    """Fail with a StorageError naming `uri` unless the file or object exists (checked before anything else runs)."""
    if not is_s3(uri):
        if not Path(uri).is_file():
            raise StorageError(f"{uri}: no such file")
        return
    location = parse_s3(uri)
    with naming(uri):
        s3_client().head_object(Bucket=location.bucket, Key=location.key)


def probe_writable(uri: str) -> None:
    """Write and delete a small probe object under the directory or prefix `uri` (created locally if missing):
    a StorageError or OSError naming `uri` when this process may not write there."""
    probe = join(uri, f".modelplane-write-probe-{uuid.uuid4().hex}")
    if is_s3(uri):
        location = parse_s3(probe)
        client = s3_client()
        with naming(uri):
            client.put_object(Bucket=location.bucket, Key=location.key, Body=b"")
            client.delete_object(Bucket=location.bucket, Key=location.key)
        return
    try:
        Path(uri).mkdir(parents=True, exist_ok=True)
        Path(probe).write_bytes(b"")
        Path(probe).unlink()
    except OSError as error:
        raise StorageError(f"{uri}: not writable ({error.strerror or error})") from None


def put_if_absent(uri: str, text: str) -> str:
    """Create the object `uri` only if none exists (S3's conditional write); its ETag. PreconditionFailed if taken."""
    location = parse_s3(uri)
    with naming(uri):
        response = s3_client().put_object(Bucket=location.bucket, Key=location.key, Body=text.encode(), IfNoneMatch="*")
    return str(response["ETag"])


def put_if_unchanged(uri: str, text: str, etag: str) -> str:
    """Replace the object `uri` only if its ETag is still `etag`; the new ETag. PreconditionFailed if it changed."""
    location = parse_s3(uri)
    with naming(uri):
        response = s3_client().put_object(Bucket=location.bucket, Key=location.key, Body=text.encode(), IfMatch=etag)
    return str(response["ETag"])


def read_with_etag(uri: str) -> tuple[str, str] | None:
    """The object's text and ETag, or None when there is no such object."""
    location = parse_s3(uri)
    try:
        with naming(uri):
            response = s3_client().get_object(Bucket=location.bucket, Key=location.key)
    except ObjectMissing:
        return None
    return response["Body"].read().decode(), str(response["ETag"])


def delete_object(uri: str) -> None:
    location = parse_s3(uri)
    with naming(uri):
        s3_client().delete_object(Bucket=location.bucket, Key=location.key)
