"""Downloading an official archive, verified by its digest (SHA-256 unless the source publishes
only another), and extracting it safely (the CIFAR tarballs, the TinyImageNet zip). Nothing is
kept unless its digest matches; extraction writes only the regular files of the expected top-level
directory (no links, no absolute paths, no ``..``)."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import zipfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from lifelong.data.datasets._common import atomic_write
from lifelong.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60
_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def fetch_verified(url: str, target: Path, sha256: str, *, who: str, retry_hint: str = "",
                   remedy: str | None = None, algorithm: str = "sha256") -> None:
    """Stream ``url`` to ``target``, renamed into place only when its SHA-256 is ``sha256``
    (its ``algorithm`` digest, for a source that publishes only another, e.g. ``"md5"``).

    ``retry_hint`` ends the message of a digest mismatch; ``remedy`` follows "Check the network (or
    proxy), " in the message of a failed download (by default: a mirror by ``url=...``, or the
    archive extracted by hand). Raises :class:`ConfigError` for a URL that is not http(s),
    :class:`DataError` when the download fails or its digest differs (nothing is left behind).
    """
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{who}: download URL must start with http:// or https://, got {url!r}")
    log.info("downloading %s to %s", url, target)
    try:
        with atomic_write(target) as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            digest = hashlib.new(algorithm)
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha256:
                raise DataError(f"{who}: {url} has {_NAMES.get(algorithm, algorithm)} {digest.hexdigest()} but {sha256} was expected; the "
                                f"download is corrupt or the server is not the official source. Nothing was kept"
                                + retry_hint)
    except (urllib.error.URLError, OSError) as exc:  # HTTPError and timeouts are both subclasses
        if remedy is None:
            remedy = f"pass url=... for a mirror, or extract the official archive into {target.parent} yourself"
        raise DataError(f"{who}: could not download {url}: {exc}. Check the network (or proxy), {remedy}") from exc


def extract_tar(archive: Path, dest: Path, top: str, *, who: str) -> Path:
    """Extract the regular files under ``top/`` of the tar ``archive`` into ``dest``; returns
    ``dest / top``. Any other member (a link, a device, a path outside ``top``) is skipped."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                path = PurePosixPath(member.name)
                if not member.isfile() or path.is_absolute() or ".." in path.parts or path.parts[:1] != (top,):
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, atomic_write(dest.joinpath(*path.parts)) as out:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{who}: cannot extract {archive} ({exc}); delete it and download again") from exc
    return dest / top


def _safe_member(name: str, top: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (top,) or len(path.parts) < 2:
        return None
    return path


def extract_zip(archive: Path, dest: Path, top: str, *, who: str) -> Path:
    """Extract the regular files under ``top/`` of the zip ``archive`` into ``dest``; returns
    ``dest / top``. Directories, symbolic links (Unix mode in the external attributes) and paths
    outside ``top`` are skipped."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = _safe_member(info.filename, top)
                mode = info.external_attr >> 16
                if path is None or info.is_dir() or (mode and (mode & 0o170000) not in (0, 0o100000)):
                    continue
                with zf.open(info) as source, atomic_write(dest.joinpath(*path.parts)) as out:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{who}: cannot extract {archive} ({exc}); delete it and download again") from exc
    return dest / top


def download_archive(url: str, sha256: str, dest: Path, top: str, *, who: str, algorithm: str = "sha256") -> Path:
    """Fetch and verify the archive at ``url`` (a tar, or a ``.zip``), extract its ``top/``
    directory into ``dest`` and delete the archive; returns the extracted directory."""
    archive = dest / PurePosixPath(urllib.parse.urlsplit(url).path).name
    fetch_verified(url, archive, sha256, who=who, algorithm=algorithm)
    try:
        if archive.suffix.lower() == ".zip":
            return extract_zip(archive, dest, top, who=who)
        return extract_tar(archive, dest, top, who=who)
    finally:
        archive.unlink(missing_ok=True)
