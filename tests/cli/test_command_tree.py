"""Every command, subcommand, option and argument of Celery 5.7's ``celery`` is known to
``celeriac``: the test walks Celery's own click tree (celery is a test dependency).

An option that cannot apply here is still accepted and says so in one line (the other tests
of tests/cli run those); this one checks the tree: names, flag-ness, positional arguments,
a help text for every option, and that docs/cli.md shows each command with an example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from celeriac.cli.main import COMMAND_SECTIONS, main

celery_cli = pytest.importorskip("celery.bin.celery").celery

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


CELERY_COMMANDS = list(_walk(celery_cli))


def _ours(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group), f"celeriac {' '.join(path)}: not a group"
        found = command.commands.get(name)
        assert found is not None, f"`celeriac {' '.join(path)}` is missing"
        command = found
    return command


def _label(path: tuple[str, ...]) -> str:
    return " ".join(path) or "(top level)"


def test_the_walk_sees_celerys_whole_tree() -> None:
    paths = {" ".join(p) for p, _ in CELERY_COMMANDS}
    # a guard against walking nothing: these are in Celery 5.7's tree
    assert {"worker", "multi", "amqp queue.purge", "upgrade settings", "logtool stats",
            "graph workers", "list bindings", "shell", "report", "migrate"} <= paths


@pytest.mark.parametrize("path", [p for p, _ in CELERY_COMMANDS], ids=_label)
def test_every_celery_command_exists(path: tuple[str, ...]) -> None:
    celery_command = dict(CELERY_COMMANDS)[path]
    ours = _ours(path)
    assert isinstance(ours, click.Group) == isinstance(celery_command, click.Group), path


@pytest.mark.parametrize("path", [p for p, c in CELERY_COMMANDS
                                  if any(isinstance(x, click.Option) for x in c.params)],
                         ids=_label)
def test_every_celery_option_is_accepted(path: tuple[str, ...]) -> None:
    ours = _ours(path)
    options = {name: param for param in ours.params if isinstance(param, click.Option)
               for name in (*param.opts, *param.secondary_opts)}
    for param in dict(CELERY_COMMANDS)[path].params:
        if not isinstance(param, click.Option):
            continue
        for name in (*param.opts, *param.secondary_opts):
            assert name in options, f"celeriac {_label(path)}: no {name}"
            mine = options[name]
            assert mine.is_flag == param.is_flag, f"celeriac {_label(path)} {name}: flag-ness"
            assert mine.help or name == "--version", f"celeriac {_label(path)} {name}: no help"


@pytest.mark.parametrize("path", [p for p, c in CELERY_COMMANDS
                                  if any(isinstance(x, click.Argument) for x in c.params)],
                         ids=_label)
def test_every_celery_argument_fits(path: tuple[str, ...]) -> None:
    theirs = [p for p in dict(CELERY_COMMANDS)[path].params if isinstance(p, click.Argument)]
    ours = [p for p in _ours(path).params if isinstance(p, click.Argument)]
    room = sum(float("inf") if p.nargs == -1 else p.nargs for p in ours)
    takes = sum(1 if p.nargs == -1 else p.nargs for p in theirs)
    assert room >= takes, f"celeriac {_label(path)}: takes fewer arguments than Celery's"
    needs = sum(p.nargs for p in ours if p.required and p.nargs > 0)
    given = sum(p.nargs for p in theirs if p.required and p.nargs > 0)
    assert needs <= max(given, 1), f"celeriac {_label(path)}: needs more arguments"


def test_top_level_help_is_grouped_as_celerys() -> None:
    """``celeriac --help`` lists Celery's commands as ``celery --help`` (5.7) does: one
    "Commands" section in Celery's (alphabetical) order; celeriac's own come after."""
    outcome = CliRunner().invoke(main, ["--help"])
    assert outcome.exit_code == 0
    titles = re.findall(r"^([A-Za-z][\w ]*):$", outcome.output, re.M)
    assert titles[-2:] == ["Commands", "celeriac"]
    section = outcome.output.split("\nCommands:\n")[1].split("\n\n")[0]
    listed = re.findall(r"^  (\S+)", section, re.M)
    assert listed == sorted(celery_cli.commands) == list(COMMAND_SECTIONS["Commands"])


def _our_section_titles(path: tuple[str, ...]) -> list[str]:
    output = CliRunner().invoke(main, [*path, "--help"]).output
    return re.findall(r"^([A-Z][\w ]*):$", output, re.M)


def _celerys_section(param: click.Parameter) -> str:
    return getattr(param, "help_group", None) or "Options"


def _celerys_section_titles(command: click.Command) -> list[str]:
    # Celery's help lists a section where its first option is (its --help goes in "Options"),
    # read from its command objects: rendering Celery's help runs its group callbacks (amqp
    # connects to a broker).
    # (command.params without the --help option: get_params warns about Celery's events,
    # whose -d is both --dump and --detach)
    titles: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option) and _celerys_section(param) not in titles:
            titles.append(_celerys_section(param))
    return titles if "Options" in titles else [*titles, "Options"]


def _our_section(command: click.Command, param: click.Parameter) -> str:
    sections: dict[str, tuple[str, ...]] = getattr(command, "sections", {})
    return next((title for title, names in sections.items() if param.name in names),
                "Options")


@pytest.mark.parametrize("path", [p for p, c in CELERY_COMMANDS
                                  if p and not isinstance(c, click.Group)], ids=_label)
def test_every_command_help_has_celerys_sections(path: tuple[str, ...]) -> None:
    # Celery files some options under titles (`celery call --help`: Calling Options, Routing
    # Options): the same titles, in the same order, with each of Celery's options under the
    # same one.
    celery_command = dict(CELERY_COMMANDS)[path]
    assert _our_section_titles(path) == _celerys_section_titles(celery_command)
    ours = _ours(path)
    mine = {name: param for param in ours.params if isinstance(param, click.Option)
            for name in param.opts}
    for param in celery_command.params:
        if isinstance(param, click.Option) and param.opts[-1] in mine:
            assert _our_section(ours, mine[param.opts[-1]]) == _celerys_section(param), \
                param.opts


def test_worker_help_is_in_celerys_sections() -> None:
    outcome = CliRunner().invoke(main, ["worker", "--help"])
    for title in ("Worker Options", "Pool Options", "Queue Options", "Features",
                  "Embedded Beat Options", "Daemonization Options"):
        assert f"\n{title}:\n" in outcome.output, title
    section = outcome.output.split("\nQueue Options:\n")[1].split("\n\n")[0]
    assert "--purge, --discard" in section


def test_docs_show_every_command_with_an_example() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for path, command in _walk(main):
        if not path or command.hidden or isinstance(command, click.Group):
            continue
        assert re.search(rf"^\s*(\$ )?celeriac (-A \S+ )?{re.escape(' '.join(path))}\b", text,
                         re.M), f"docs/cli.md has no example of `celeriac {' '.join(path)}`"
