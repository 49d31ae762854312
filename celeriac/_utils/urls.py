"""URLs for display: what a log line, an error message or ``inspect conf`` may show.

Rule: a password never leaves the process in text. ``mask_url`` replaces the password of every
``;``-separated part of a URL (failover lists) and any ``password=`` query value with ``**``;
a URL it cannot parse comes back unchanged only when it holds no ``@`` (else it is cut at the
``@`` so nothing before it shows).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "**"
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pass)=)[^&#]*")


def mask_url(url: str) -> str:
    """``redis://user:secret@host/0`` -> ``redis://user:**@host/0``, for each part of a
    ``;``-separated list; ``?password=x`` -> ``?password=**``."""
    return ";".join(_mask_one(part) for part in url.split(";"))


def _mask_one(url: str) -> str:
    url = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}{MASK}@{rest.rpartition('@')[2]}" if "@" in rest else url
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostinfo}"))
