"""Downloading an official archive, verified by SHA-256, and extracting it safely (the CIFAR
tarballs). Nothing is kept unless its digest matches; extraction writes only the regular files of
the expected top-level directory (no links, no absolute paths, no ``..``)."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from lifelong.data.datasets._common import atomic_write
from lifelong.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def fetch_verified(url: str, target: Path, sha256: str, *, who: str, retry_hint: str = "",
                   remedy: str | None = None) -> None:
    """Stream ``url`` to ``target``, renamed into place only when its SHA-256 is ``sha256``.

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
            digest = hashlib.sha256()
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            if digest.hexdigest() != sha256:
                raise DataError(f"{who}: {url} has SHA-256 {digest.hexdigest()} but {sha256} was expected; the "
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


def download_archive(url: str, sha256: str, dest: Path, top: str, *, who: str) -> Path:
    """Fetch and verify the archive at ``url``, extract its ``top/`` directory into ``dest`` and
    delete the archive; returns the extracted directory."""
    archive = dest / PurePosixPath(urllib.parse.urlsplit(url).path).name
    fetch_verified(url, archive, sha256, who=who)
    try:
        return extract_tar(archive, dest, top, who=who)
    finally:
        archive.unlink(missing_ok=True)
