"""Which file of `www/` a URL path names, and its content type. No path escapes the root.

The pages ship inside the package (`rtcserver/www` in the wheel, mapped from the
top-level `www/` by pyproject.toml); `bundled_pages()` finds them in a wheel and in
a checkout alike, so `rtcserver` serves the page from any working directory.
"""

from __future__ import annotations

import mimetypes
import posixpath
from pathlib import Path
from urllib.parse import unquote

# Explicit types for what the page ships; mimetypes' tables vary between systems.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",  # the SDK's declarations (rtcserver.d.ts)
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}


def content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def resolve(root: Path, target: str) -> Path | None:
    """The file under `root` that the request target names, or None (-> 404).

    `/` and `/?room=N` give index.html. Percent-decoding happens before the check,
    so `%2e%2e/` cannot climb out; NUL bytes and backslashes are refused outright.
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    path = unquote(path)
    if "\x00" in path or "\\" in path or not path.startswith("/"):
        return None
    normalized = posixpath.normpath(path)
    parts = [p for p in normalized.split("/") if p]
    if any(p in {"..", "."} or p.startswith(".") for p in parts):
        return None  # no dotfiles, no climbing
    root = root.resolve()
    candidate = root.joinpath(*parts) if parts else root
    try:
        # Any OSError means "no such file here": a 256-byte segment is ENAMETOOLONG,
        # and a path through a file is ENOTDIR. None of them may become a traceback.
        if candidate.is_dir():
            candidate = candidate / "index.html"
        candidate = candidate.resolve(strict=True)
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
    except (OSError, ValueError):
        return None
    return candidate
