"""The wire format stays in ``protocol.py`` (and the envelope's own accessors in
``message.py``): no other module reads a message's headers or properties by key."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "celeriac"
ALLOWED = {"protocol.py", "message.py"}
READ = re.compile(r"\.(headers|properties)(\.get\(|\[)")


def test_only_protocol_reads_header_keys() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in ALLOWED:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if READ.search(line):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not found, "read it through protocol.TaskMessage or an Envelope accessor:\n" + "\n".join(
        found
    )


def test_the_pattern_catches_a_header_read() -> None:
    assert READ.search('eta = envelope.headers.get("eta")')
    assert READ.search("x = message.properties['priority']")
    assert not READ.search("headers = dict(message.headers)")
