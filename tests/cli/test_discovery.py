"""``-A`` discovery: every form Celery accepts, and clear errors."""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.cli.discovery import AppNotFound, find_app

Write = Callable[[str, str], None]


@pytest.fixture
def prefix() -> str:
    """A unique module name prefix, so modules of one test never shadow another's."""
    return f"disc_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Iterator[Write]:
    """Write modules into a fresh current directory; forget them (and sys.path) afterwards."""
    monkeypatch.chdir(tmp_path)
    saved_path = list(sys.path)

    def write_module(relative: str, source: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))

    yield write_module
    sys.path[:] = saved_path
    for name in list(sys.modules):
        if name.startswith(prefix):
            del sys.modules[name]


APP_MODULE = """
    from celeriac import Celery
    {name} = Celery({main!r}, broker="memory://discovery")
"""


def test_module_attribute_app(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", APP_MODULE.format(name="app", main="by-app"))
    assert find_app(prefix).main == "by-app"


def test_module_attribute_celery(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", APP_MODULE.format(name="celery", main="by-celery"))
    assert find_app(prefix).main == "by-celery"


def test_any_single_instance(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", APP_MODULE.format(name="my_application", main="single"))
    assert find_app(prefix).main == "single"


def test_module_colon_attribute(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", APP_MODULE.format(name="first", main="one")
          + '    second = Celery("two", broker="memory://discovery")\n')
    assert find_app(f"{prefix}:second").main == "two"
    with pytest.raises(AppNotFound, match="several apps"):
        find_app(prefix)


def test_package_with_celery_module(write: Write, prefix: str) -> None:
    write(f"{prefix}/__init__.py", "")
    write(f"{prefix}/celery.py", APP_MODULE.format(name="app", main="pkg"))
    app = find_app(prefix)
    assert app.main == "pkg"
    assert app is sys.modules[f"{prefix}.celery"].app


def test_package_module_attribute(write: Write, prefix: str) -> None:
    write(f"{prefix}/__init__.py", "")
    write(f"{prefix}/apps.py", APP_MODULE.format(name="worker_app", main="sub"))
    assert find_app(f"{prefix}.apps:worker_app").main == "sub"
    assert find_app(f"{prefix}.apps.worker_app").main == "sub"
    assert find_app(f"{prefix}.apps").main == "sub"


@pytest.mark.parametrize("suffix", [":create_app()", ":create_app"])
def test_factory(write: Write, prefix: str, suffix: str) -> None:
    write(f"{prefix}.py", """
        from celeriac import Celery

        def create_app():
            return Celery("made", broker="memory://discovery")
    """)
    app = find_app(prefix + suffix)
    assert isinstance(app, Celery)
    assert app.main == "made"


def test_missing_module(write: Write, prefix: str) -> None:
    with pytest.raises(AppNotFound) as info:
        find_app(prefix)
    assert str(info.value) == (
        f"Unable to load celeriac application.\nThe module {prefix} was not found."
    )


def test_missing_attribute(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", APP_MODULE.format(name="app", main="x"))
    with pytest.raises(AppNotFound, match="has no attribute 'nope'"):
        find_app(f"{prefix}:nope")


def test_module_without_app(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", "VALUE = 1\n")
    with pytest.raises(AppNotFound, match="holds no Celery application"):
        find_app(prefix)


def test_error_inside_the_module_is_shown(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", "import a_dependency_that_is_not_installed\n")
    with pytest.raises(AppNotFound) as info:
        find_app(prefix)
    message = str(info.value)
    assert f"While importing '{prefix}'" in message
    assert "a_dependency_that_is_not_installed" in message


def test_factory_returning_something_else(write: Write, prefix: str) -> None:
    write(f"{prefix}.py", "def create_app():\n    return 42\n")
    with pytest.raises(AppNotFound, match="returned int"):
        find_app(f"{prefix}:create_app")


def test_current_directory_goes_first_on_sys_path(write: Write) -> None:
    write("unused.py", "")
    with pytest.raises(AppNotFound):
        find_app("surely_not_a_module_name_here")
    assert sys.path[0] == os.getcwd()
