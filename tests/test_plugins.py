"""Brokers and result backends by URL scheme: built-ins, third-party entry points, and the
messages for schemes that cannot be served."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac._utils.plugins import Plugin, PluginRegistry
from celeriac.backends import BACKENDS, backend_class
from celeriac.backends.base import ResultBackend
from celeriac.brokers import BROKERS, broker_class
from celeriac.brokers.base import Broker
from celeriac.exceptions import CeleriacWarning, ImproperlyConfigured

from .conftest import RunWorker
from .test_import_light import _run as run_isolated

PLUGINS_DIR = Path(__file__).parent / "plugins"

Install = Callable[[str, str], None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Install:
    """``install(name, entry_points_txt)``: what pip leaves behind, without pip.

    The distribution's metadata goes on ``sys.path`` in ``tmp_path`` and its code (the packages
    in tests/plugins) beside it; monkeypatch takes both off ``sys.path`` after the test.
    """
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))

    def run(name: str, entry_points: str) -> None:
        site = tmp_path / name
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(entry_points)
        monkeypatch.syspath_prepend(str(site))

    return run


TOY = """\
[celeriac.brokers]
toy = toy_transport:ToyBroker

[celeriac.backends]
toy = toy_transport:ToyBackend
"""


def test_a_third_party_transport_runs_a_task(install: Install, run_worker: RunWorker) -> None:
    install("toy-transport", TOY)
    app = Celery("toy", broker="toy://plugins-test", backend="toy://plugins-test")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        assert type(app.broker).__name__ == "ToyBroker"
        assert type(app.backend).__name__ == "ToyBackend"
        result = add.delay(2, 3)
        run_worker(app)
        assert result.get(timeout=5) == 5
    finally:
        app.close()


def test_third_party_schemes_are_listed_once_installed(install: Install) -> None:
    assert "toy" not in BROKERS.schemes()
    install("toy-transport", TOY)
    assert "toy" in BROKERS.schemes()
    assert "toy" in BACKENDS.schemes()


def test_the_third_party_is_gone_when_uninstalled() -> None:
    # The fixture of the tests above took the distribution off sys.path again.
    with pytest.raises(ImproperlyConfigured, match="'toy'"):
        broker_class("toy://x")


def test_unknown_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        broker_class("kafka://guest@localhost//")
    message = str(info.value)
    assert "No broker for URL scheme 'kafka'" in message
    supported = message.partition("Supported: ")[2].partition(".")[0].split(", ")
    assert {"memory", "redis", "sqlite"} <= set(supported) and supported == sorted(supported)
    assert "celeriac.brokers" in message
    assert "pip install" not in message
    assert "guest" not in message


def test_unknown_backend_scheme_names_the_supported_ones() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"result backend .*'couchdb'.*cache\+memory"):
        backend_class("couchdb://")


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"'reddis' \(did you mean 'redis'\?\)"):
        broker_class("reddis://localhost:6379/0")
    with pytest.raises(ImproperlyConfigured, match=r"did you mean 'sqlite'\?"):
        backend_class("sqllite:///results.db")


def test_a_url_without_scheme_is_not_echoed() -> None:
    with pytest.raises(ImproperlyConfigured, match="has no scheme") as info:
        broker_class("user:secret@localhost")
    assert "secret" not in str(info.value)


def test_missing_client_library_names_the_extra_of_a_builtin() -> None:
    registry = PluginRegistry(
        "broker",
        "celeriac.tests.none",
        [Plugin("toy_client_library_that_is_not_installed:Broker", ("redis",), ("redis",))],
    )
    with pytest.raises(ImproperlyConfigured) as info:
        registry.load("redis://localhost", Broker)
    message = str(info.value)
    assert "pip install 'celeriac[redis]'" in message
    assert "toy_client_library_that_is_not_installed" in message


def test_missing_client_library_names_the_extra_of_a_third_party(install: Install) -> None:
    install(
        "toy-transport",
        "[celeriac.brokers]\n"
        "toy-needs-client = toy_transport.needs_client:NeedsClientBroker [toyclient]\n",
    )
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'toy-transport\[toyclient\]'"):
        broker_class("toy-needs-client://x")


def test_a_third_party_cannot_take_over_a_builtin_scheme(install: Install) -> None:
    install("sneaky", "[celeriac.brokers]\nredis = toy_transport:ToyBroker\n")
    with pytest.warns(CeleriacWarning, match=r"'redis' is a built-in broker scheme.*sneaky"):
        plugin = BROKERS.lookup("redis://localhost")[1]
    assert plugin.target == "celeriac.brokers.redis:RedisBroker"
    # Other schemes are served without a word about it.
    assert broker_class("memory://x").__name__ == "MemoryBroker"


def test_two_third_parties_on_one_scheme_is_an_error(install: Install) -> None:
    install("toy-one", "[celeriac.brokers]\ntoy = toy_transport:ToyBroker\n")
    install("toy-two", "[celeriac.brokers]\ntoy = toy_transport:WrongSchemeBroker\n")
    with pytest.raises(ImproperlyConfigured, match=r"2 installed packages .*toy-one.*toy-two"):
        broker_class("toy://x")


def test_the_class_must_list_the_scheme_it_is_registered_for(install: Install) -> None:
    install("toy-wrong", "[celeriac.brokers]\ntoy-wrong = toy_transport:WrongSchemeBroker\n")
    with pytest.raises(ImproperlyConfigured, match="serves only something-else"):
        broker_class("toy-wrong://x")


def test_the_class_must_be_a_broker(install: Install) -> None:
    install("toy-nab", "[celeriac.brokers]\ntoy-not-a-broker = toy_transport:NotABroker\n")
    with pytest.raises(
        ImproperlyConfigured, match=r"not a celeriac\.brokers\.base\.Broker subclass"
    ):
        broker_class("toy-not-a-broker://x")


def test_a_builtin_scheme_listed_twice_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        PluginRegistry("broker", "g", [Plugin("a:A", ("x",)), Plugin("b:B", ("x", "y"))])


@pytest.mark.parametrize(
    ("registry", "base"),
    [(BROKERS, Broker), (BACKENDS, ResultBackend)],
    ids=["brokers", "backends"],
)
def test_builtin_registrations_are_the_classes_own_schemes(
    registry: PluginRegistry, base: type
) -> None:
    pytest.importorskip("redis")
    by_target: dict[str, set[str]] = {}
    for scheme, plugin in registry.builtins.items():
        by_target.setdefault(plugin.target, set()).add(scheme)
    for target, schemes in by_target.items():
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, base)
        assert set(cls.schemes) == schemes, target
        assert len(cls.schemes) == len(schemes), f"{target} lists a scheme twice"


def test_finding_a_scheme_imports_no_client_library(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from celeriac.brokers import BROKERS\n"
        "from celeriac.backends import BACKENDS\n"
        "BROKERS.lookup('redis://localhost'); BACKENDS.lookup('rediss://localhost')\n"
        "forbidden = json.loads(sys.argv[1])\n"
        "forbidden += ['celeriac.brokers.redis', 'celeriac.backends.redis']\n"
        "loaded = [m for m in sys.modules if m in forbidden or m.split('.')[0] in forbidden]\n"
        "print(json.dumps({'loaded': sorted(loaded)}))\n"
    )
    assert run_isolated(tmp_path, script)["loaded"] == []
