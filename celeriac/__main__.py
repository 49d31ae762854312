"""``python -m celeriac``: the ``celeriac`` command."""

from __future__ import annotations

from celeriac.cli.main import PROG_NAME, main

if __name__ == "__main__":
    main(prog_name=PROG_NAME)
