"""Where workloads read and write artifacts: a local path or an `s3://bucket/prefix` URI.

Writes are atomic at the level callers need: `upload_tree` copies a finished directory, and
local writes go through a temporary sibling that is renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


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
        return str(s3_client().get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode())
    return Path(uri).read_text()


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return Path(uri).exists()
    location = parse_s3(uri)
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
