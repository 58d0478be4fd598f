"""Every ``leadscore`` command and option explains itself in ``--help``: what it sets, its default, its unit.

The checks walk the click command tree, so a new command or option is covered without
editing this file. An option passes the default check when click shows its default
(``show_default``), when its help text states one as ``[default: ...]`` or ``(default: ...)``,
when it is required, or when it is an on/off flag (off unless given).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from leadscore.cli.main import cli

STATED_DEFAULT = re.compile(r"[\[(]default[: ]")

# Option-name endings that carry a unit, and the word the help text must contain.
UNIT_WORDS: dict[str, str] = {
    "-days": "day",
    "-hours": "hour",
    "-months": "month",
    "-seconds": "second",
    "-timeout": "second",
    "-bytes": "byte",
}

# Options whose value is a URL or URI; the help text must show its form (sqlite:///, tcp://, models:/ ...).
URL_OPTIONS = frozenset({"--db", "--tracking-uri", "--scheduler", "--webhook", "--model", "--model-uri"})


def walk_commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """Yield (command path, command) for ``command`` and every subcommand below it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, subcommand in sorted(command.commands.items()):
            yield from walk_commands(subcommand, f"{path} {name}")


def all_options() -> list[tuple[str, click.Option]]:
    """Return (command path, option) for every option of every command, --help left out."""
    found: list[tuple[str, click.Option]] = []
    for path, command in walk_commands(cli, "leadscore"):
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                found.append((path, parameter))
    return found


def option_id(item: tuple[str, click.Option]) -> str:
    path, option = item
    return f"{path} {option.opts[0]}"


def states_default(option: click.Option) -> bool:
    """Return whether ``--help`` states what happens when the option is not given."""
    if option.required or option.is_flag:
        return True
    if option.show_default and option.default is not None:
        return True
    return bool(STATED_DEFAULT.search(option.help or ""))


OPTIONS = all_options()
COMMANDS = list(walk_commands(cli, "leadscore"))


def test_walk_finds_every_group() -> None:
    paths = {path for path, _ in COMMANDS}

    assert {"leadscore data import", "leadscore models list", "leadscore report model"} <= paths
    assert {"leadscore rescore", "leadscore serve", "leadscore sla check", "leadscore train"} <= paths
    assert len(OPTIONS) > 100


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_command_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no docstring or help text"


@pytest.mark.parametrize("item", OPTIONS, ids=[option_id(item) for item in OPTIONS])
def test_option_has_help(item: tuple[str, click.Option]) -> None:
    path, option = item

    assert (option.help or "").strip(), f"{path} {option.opts[0]} has no help text"


@pytest.mark.parametrize("item", OPTIONS, ids=[option_id(item) for item in OPTIONS])
def test_option_states_default(item: tuple[str, click.Option]) -> None:
    path, option = item

    assert states_default(option), (
        f"{path} {option.opts[0]}: the help text does not state the default; add show_default=True "
        "or end the help with '[default: ...]'"
    )


@pytest.mark.parametrize("item", OPTIONS, ids=[option_id(item) for item in OPTIONS])
def test_option_default_shown_once(item: tuple[str, click.Option]) -> None:
    path, option = item
    shown_by_click = bool(option.show_default) and option.default is not None

    assert not (shown_by_click and STATED_DEFAULT.search(option.help or "")), (
        f"{path} {option.opts[0]}: click already shows the default, so drop '[default: ...]' from the help"
    )


@pytest.mark.parametrize("item", OPTIONS, ids=[option_id(item) for item in OPTIONS])
def test_option_names_its_unit(item: tuple[str, click.Option]) -> None:
    path, option = item
    name = option.opts[0]
    help_text = (option.help or "").lower()

    for ending, word in UNIT_WORDS.items():
        if name.endswith(ending):
            assert word in help_text, f"{path} {name}: the help text does not name the unit ({word}s)"


@pytest.mark.parametrize(
    "item",
    [item for item in OPTIONS if item[1].opts[0] in URL_OPTIONS],
    ids=[option_id(item) for item in OPTIONS if item[1].opts[0] in URL_OPTIONS],
)
def test_url_option_shows_form(item: tuple[str, click.Option]) -> None:
    path, option = item

    assert ":/" in (option.help or ""), (
        f"{path} {option.opts[0]}: the help text shows no URL form such as sqlite:///FILE or tcp://HOST:PORT"
    )


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_help_renders(path: str, command: click.Command) -> None:
    arguments = [*path.split()[1:], "--help"]

    result = CliRunner().invoke(cli, arguments)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: "), result.output[:200]
