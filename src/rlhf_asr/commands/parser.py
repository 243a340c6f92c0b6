"""One command-line style for every subcommand, failing in one line: `rlhf-asr CMD: error: MSG`.

Every command's options are dataclasses parsed by transformers' `HfArgumentParser`, the parser
`train` needs for its Trainer pass-through, so all commands read the same way: booleans as
`--x True`, `--x False` or a bare `--x`, dashes or underscores (`--num-beams`), defaults in `--help`.
List options take values separated by spaces or commas (`--speeds 140 160` = `--speeds 140,160`).

argparse prints the whole usage (about 60 lines for `train`) before its message, which buries
the one line that matters: parsing errors become `UserInputError`s, which the CLI prints as one
line with exit status 2. Nothing here imports torch or the transformers package, so `--help` of
every command but `train` (whose options subclass TrainingArguments) takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlhf_asr.errors import UserInputError
from rlhf_asr.option_checks import build_options, check_finite_positive, check_positive  # noqa: F401 (shared)


def one_line_error(prog: str, message: str) -> UserInputError:
    return UserInputError(f"{message} (see `{prog} --help`)")


def make_one_line(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Gives a parser (e.g. HfArgumentParser) one-line errors instead of usage + exit."""

    def error(message: str):
        raise one_line_error(parser.prog, message)

    parser.error = error
    return parser


def add_aliases(parser: argparse.ArgumentParser, aliases: Mapping[str, str], first: bool = False) -> None:
    """Makes each `alias: dest` another spelling of an existing option, with underscores or dashes.

    first=True lists the alias before the field's own name in `--help`, and as its metavar: the name
    shared across commands, where a dataclass keeps an older field name. argparse keeps its options
    in a map of its own; adding spellings to an action is what `add_argument` itself does.
    """
    for alias, dest in aliases.items():
        for action in [action for action in parser._actions if action.option_strings and action.dest == dest]:
            # a flag that defaults to True also has HfArgumentParser's `--no_FIELD`: it gets `--no_ALIAS`
            name = f"no_{alias}" if action.option_strings[0] == f"--no_{dest}" else alias
            spellings = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
            for spelling in spellings:
                if spelling in parser._option_string_actions:
                    raise ValueError(f"{spelling} is already an option")
                parser._option_string_actions[spelling] = action
            if first:
                action.option_strings = spellings + action.option_strings
                if action.nargs not in (0, "?"):
                    action.metavar = alias.upper()
            else:
                action.option_strings = action.option_strings + spellings


def redirect(parser: argparse.ArgumentParser, option: str, dest: str, value=None, help: str = "") -> None:
    """Turns a duplicate switch into an alias of another option: `option` now sets `dest`.

    The dataclass field behind `option` keeps its default; `value` maps the parsed value (e.g.
    True -> "adalora") when the two options do not take the same values.
    """
    action = parser._option_string_actions[option]
    convert = action.type
    action.metavar = action.metavar or action.dest.upper()  # its own name in --help, not the target's
    action.dest, action.default, action.help = dest, argparse.SUPPRESS, help
    if value is not None:
        const = action.const = value(action.const)
        # argparse passes a string const (bare `--option`) through `type` as well: keep it as is.
        action.type = lambda text: text if text == const else value(convert(text))


def _explain(parser: argparse.ArgumentParser) -> None:
    """HfArgumentParser gives `--no_x` the help of `--x`, which then reads inverted; and an option
    without help would show no default at all."""
    for action in parser._actions:
        if isinstance(action, argparse._StoreFalseAction) and action.option_strings[0].startswith("--no_"):
            action.help = f"same as --{action.dest} False"
        elif action.option_strings and not action.help and action.default is not argparse.SUPPRESS:
            action.help = "(default: %(default)s)"


class _ListChoices(list):
    """Choices of a comma-list option: argparse checks each converted token, which is then a list."""

    def __contains__(self, value) -> bool:
        items = value if isinstance(value, list) else [value]
        return all(list.__contains__(self, item) for item in items)


def _split_commas(convert):
    def split(text: str) -> list:
        return [convert(part.strip()) for part in text.split(",") if part.strip()]

    split.__name__ = convert.__name__  # "invalid float value", not "invalid split value"
    return split


def _comma_lists(parser: argparse.ArgumentParser) -> set[str]:
    """List options also take comma-separated values; returns their dests (flattened after parsing)."""
    dests = set()
    for action in parser._actions:
        if action.option_strings and action.nargs in ("+", "*") and action.type is not None:
            action.type = _split_commas(action.type)
            if action.choices is not None:
                action.choices = _ListChoices(action.choices)
            dests.add(action.dest)
    return dests


def _or_none(convert):
    def parse(text: str):
        return None if text.strip().lower() == "none" else convert(text)

    parse.__name__ = convert.__name__  # argparse's message names the type: "invalid float value"
    return parse


def _none_values(parser) -> None:
    """A number option whose field may be None takes `None` (help texts say "None: no check")."""
    optional = {  # the annotations as written: HfArgumentParser replaces `field.type` (float | None -> float)
        name
        for cls in parser.dataclass_types
        for klass in reversed(cls.__mro__)
        for name, annotation in vars(klass).get("__annotations__", {}).items()
        if "None" in str(annotation) or "Optional" in str(annotation)
    }
    for action in parser._actions:
        if action.dest in optional and action.type in (int, float):
            action.type = _or_none(action.type)


def hf_argument_parser() -> type:
    """transformers' HfArgumentParser class, without importing the transformers package if possible.

    `import transformers` costs about 1 s (its lazy-import tables, huggingface_hub, numpy), more than
    a whole `--help` should take, while `transformers/hf_argparser.py` needs only the standard
    library and yaml. So that file is loaded on its own; should a future version need more of its
    package, the ordinary import is used instead (same class, slower `--help`).
    """
    if "transformers" not in sys.modules:
        try:
            return load_hf_argparser_alone()
        except Exception:  # any failure: the ordinary import below
            pass
    from transformers import HfArgumentParser

    return HfArgumentParser


def load_hf_argparser_alone() -> type:
    spec = importlib.util.find_spec("transformers")  # finds the package without importing it
    source = Path(spec.origin).with_name("hf_argparser.py")
    file_spec = importlib.util.spec_from_file_location("rlhf_asr.commands._hf_argparser", source)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module.HfArgumentParser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except for required options and where the help says what None means."""

    def _get_help_string(self, action):
        if action.required or (action.default is None and "None" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


def options_parser(
    prog: str,
    classes: Sequence[type],
    description: str,
    names: Mapping[str, str] | None = None,
    older: Mapping[str, str] | None = None,
):
    """An HfArgumentParser over `classes` with one-line errors.

    names: cross-command option names for fields named otherwise (listed first in `--help`);
    older: older spellings still accepted. Both map the option name to the field name.
    """
    parser = hf_argument_parser()(list(classes), prog=prog, description=description, formatter_class=_HelpFormatter)
    make_one_line(parser)
    _none_values(parser)
    parser.comma_lists = _comma_lists(parser)
    add_aliases(parser, names or {}, first=True)
    add_aliases(parser, older or {})
    _explain(parser)
    return parser


def parse_options(parser, argv: Sequence[str]) -> tuple:
    """(one instance per dataclass, ..., namespace of the other arguments); every error one line."""
    positionals = any(not action.option_strings for action in parser._actions)
    # Files and options in any order (`transcribe a.wav --model M b.wav`), as a shell user expects.
    parse = parser.parse_known_intermixed_args if positionals else parser.parse_known_args
    namespace, unknown = parse(list(argv))
    if unknown:
        raise one_line_error(parser.prog, f"unrecognized arguments: {' '.join(unknown)}")
    values = vars(namespace)
    for dest in getattr(parser, "comma_lists", ()):
        if isinstance(values.get(dest), list):
            values[dest] = [item for part in values[dest] for item in (part if isinstance(part, list) else [part])]
    instances = []
    for cls in parser.dataclass_types:
        names = {field.name for field in dataclasses.fields(cls) if field.init}
        inputs = {name: values.pop(name) for name in list(values) if name in names}
        instances.append(build_options(cls, inputs, converted=True))
    return (*instances, argparse.Namespace(**values))


def take_positionals(options, given: Sequence[str], names: Sequence[str], usage: str):
    """Accepts the older positional form (`merge ADAPTER_DIR OUTPUT_DIR`) for options `names`."""
    if not given:
        return options
    if len(given) != len(names):
        raise UserInputError(f"expected {usage} or {' '.join(f'--{name}' for name in names)}; got {' '.join(given)}")
    twice = [f"--{name}" for name in names if getattr(options, name) is not None]
    if twice:
        raise UserInputError(f"{' '.join(twice)} given both as option and as positional argument")
    return dataclasses.replace(options, **dict(zip(names, given)))


def require(options, *names: str) -> None:
    missing = [f"--{name}" for name in names if getattr(options, name) in (None, [], "")]
    if missing:
        raise UserInputError(f"the following arguments are required: {', '.join(missing)}")
