"""Credentials never leave the process: every URL shown in logs, events, metrics or errors goes through here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|key|secret|auth)=)[^&#]*")


def redact_url(url: str) -> str:
    """Replace the password (and secret-looking query values) of a URL with `***`; keep the user name."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = _QUERY_SECRET.sub(r"\1***", "?" + parts.query)[1:] if parts.query else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URL with credentials inside a free-form message (e.g. an FFmpeg error)."""
    return re.sub(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+", lambda m: redact_url(m.group(0)), text)
