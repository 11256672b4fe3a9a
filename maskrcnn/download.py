"""Download one checkpoint so that a bad or partial file never lands where the loader looks.

The bytes go to `NAME.part` next to the target; a cut connection is resumed with an HTTP Range request (here, a few
times in a row, and by running the command again later: the `.part` file is kept for that); the complete file is
checked against the SHA-256 prefix in its name and only then moved into place with `os.replace` (atomic in one
directory). A failed write (disk full, file-size limit) or a checksum mismatch removes the `.part` file.
urllib honours http_proxy / https_proxy / no_proxy from the environment.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from maskrcnn.checkpoints import sha256_of
from pipeline.errors import WeightsError

CHUNK = 1 << 16
RESUMES = 5  # cut connections in a row without a byte of progress before giving up (each retry resumes)


def download(url: str, target: Path, sha256_prefix: str, *, progress: bool = True, timeout_s: float = 30.0) -> Path:
    """Fetch `url` into `target` (atomically, checksum verified); returns `target`. Raises WeightsError."""
    part = target.with_name(target.name + ".part")
    _prepare(target.parent, part)
    cuts = 0
    while True:
        before = _size(part)
        try:
            total = _fetch_into(url, part, progress, timeout_s)
            break
        except _CutConnection as exc:
            cuts = 1 if _size(part) > before else cuts + 1
            if cuts > RESUMES:
                raise WeightsError(
                    f"{url}: connection cut {cuts} times ({exc}); run the command again to resume "
                    f"({_size(part)} bytes kept in {part})"
                ) from None
        except WeightsError:
            _remove_if_empty(part)
            raise
    size = _size(part)
    if total is not None and size != total:
        _remove(part)
        raise WeightsError(f"{url}: got {size} bytes, the server announced {total}; nothing was kept")
    digest = sha256_of(part)
    if not digest.startswith(sha256_prefix):
        _remove(part)
        raise WeightsError(
            f"{url}: checksum mismatch (sha256 {digest[:12]}..., expected {sha256_prefix}...); nothing was kept"
        )
    os.replace(part, target)
    return target


class _CutConnection(Exception):
    """The connection broke after the transfer started: resumable."""


def _prepare(directory: Path, part: Path) -> None:
    """Fail before any transfer if the target directory cannot take the file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with part.open("ab"):
            pass
    except OSError as exc:
        raise WeightsError(f"cannot write to {directory}: {exc.strerror or exc}") from None


def _fetch_into(url: str, part: Path, progress: bool, timeout_s: float) -> int | None:
    """One request, appending to `part` from its current size; returns the full size if the server said it."""
    offset = _size(part)
    request = urllib.request.Request(url, headers={"User-Agent": "maskstream"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        # a fresh opener per request: it reads the *_proxy variables now (urlopen's global one keeps the first)
        response = urllib.request.build_opener().open(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our partial file is not a prefix of what the server has now: start over
            _truncate(part)
            raise _CutConnection("the server refused to resume") from None
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise WeightsError(
            f"cannot reach {urlsplit(url).netloc}: {_reason(exc)} (offline? behind a proxy? set https_proxy)"
        ) from None
    with response:
        if offset and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                _truncate(part)
                raise _CutConnection(f"the server resumed at byte {start}, not {offset}")
        elif offset:
            _truncate(part)  # 200 to a Range request: the server sends the whole file again
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        _copy(response, part, offset, total, progress)
    return total


def _copy(response: http.client.HTTPResponse, part: Path, offset: int, total: int | None, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name.removesuffix(".part"),
        disable=not progress,
        file=sys.stderr,
    )
    # unbuffered: a write error (disk full) surfaces at the write that failed, never later at close
    with bar, part.open("ab", buffering=0) as out:
        try:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (http.client.HTTPException, OSError) as exc:  # IncompleteRead, reset, timeout
                    raise _CutConnection(_reason(exc)) from None
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[out.write(view) :]
                bar.update(len(chunk))
            os.fsync(out.fileno())
        except OSError as exc:
            _remove(part)
            raise WeightsError(
                f"{part}: write failed: {exc.strerror or exc}; the partial download was removed"
            ) from None
    if total is not None and _size(part) < total:
        raise _CutConnection(f"the connection closed after {_size(part)} of {total} bytes")


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    with contextlib.suppress(ValueError, IndexError):
        return int(content_range.split()[1].split("-")[0])
    return None


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _truncate(path: Path) -> None:
    with path.open("wb"):
        pass


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _remove_if_empty(path: Path) -> None:
    if path.exists() and _size(path) == 0:
        _remove(path)
