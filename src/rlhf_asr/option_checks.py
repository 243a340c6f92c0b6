"""Checks of option values, shared by the commands' option dataclasses and the Python API.

The command line's parser converts every value to its option's type, so a command only checks
ranges (`check_positive` in its dataclass's `__post_init__`). The Python API takes values as they
are given (`batch_size="2"`, `max_rows="1"`), so it checks their types first, against its own
signature or the dataclass's fields (`check_types`), then the same ranges with the same words: an
API call fails with the very line the command prints, never a TypeError deep in decoding.
A renamed option keeps its older name (`older_names`). Library, no command imports: `api.py` sits
below the commands.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import numbers
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path

from rlhf_asr.errors import UserInputError

# What each simple type is called in an error line.
_KINDS = {bool: "True or False", int: "a whole number", float: "a number", str: "text", type(None): "None"}


def older_names(**renamed: str):
    """Class decorator: each `old=new` keeps a renamed dataclass field working under its older name.

    `Cls(old=value)` and `dataclasses.replace(obj, old=value)` set the field (the older name decides
    when both are given, since `replace` passes every field), `obj.old` reads and writes it, and an
    object pickled under the older name unpickles into the new one. `Cls.older_names` ({old: new})
    is what the command line (`options_parser(older=...)`) and the Python API accept besides.
    A subclass that is a dataclass of its own needs the decorator too (`@older_names()`): the
    dataclass writes its own `__init__`.
    """

    def decorate(cls: type) -> type:
        older = {**getattr(cls, "older_names", {}), **renamed}
        init, setstate = cls.__init__, getattr(cls, "__setstate__", None)

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            for old, new in older.items():
                if old in kwargs:
                    kwargs[new] = kwargs.pop(old)
            init(self, *args, **kwargs)

        def __setstate__(self, state):
            if isinstance(state, dict):
                state = {older.get(name, name): value for name, value in state.items()}
            if setstate is not None:
                return setstate(self, state)
            self.__dict__.update(state)

        cls.__init__, cls.__setstate__, cls.older_names = __init__, __setstate__, older
        for old, new in older.items():
            setattr(cls, old, _same_as(new))
        return cls

    return decorate


def _same_as(name: str) -> property:
    """An attribute that reads and writes the attribute `name`."""
    return property(lambda self: getattr(self, name), lambda self, value: setattr(self, name, value))


def check_positive(options, *names: str) -> None:
    """Counts of at least 1 (0 would mean 'nothing' or divide by zero later), named as options."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value < 1:
            raise UserInputError(f"--{name} {value}: must be at least 1")


def check_finite_positive(options, *names: str) -> None:
    for name in names:
        value = getattr(options, name)
        if not (value > 0 and value != float("inf")):
            raise UserInputError(f"--{name} {value}: must be a finite number above 0")


def build_options(cls: type, values: Mapping[str, object], options: Mapping[str, str] | None = None, converted=False):
    """`cls(**values)` checked as the command line checks it: types first (unless `converted`), then
    the dataclass's own `__post_init__`; every error one UserInputError line.

    options: a field's option name where it differs (base_model -> --model). converted: values from
    the parser, whose types are its own (HfArgumentParser turns a few Trainer defaults into None, e.g.
    `--debug`, against their annotations): only `__post_init__` checks them.
    """
    values = dict(values)
    if not converted:
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        given = {name: value for name, value in values.items() if value is not defaults.get(name)}
        values |= check_types(typing.get_type_hints(cls), given, options)
    try:
        return cls(**values)
    except ValueError as error:  # a check in __post_init__ (UserInputError passes through as is)
        if isinstance(error, UserInputError):
            raise
        raise UserInputError(" ".join(str(error).split())) from None


def check_arguments(function: Callable, arguments: Mapping[str, object], options: Mapping[str, str] | None = None):
    """`arguments` of `function` (its `locals()` on entry) checked against its annotations."""
    names = inspect.signature(function).parameters
    return check_types(typing.get_type_hints(function), {k: v for k, v in arguments.items() if k in names}, options)


def check_types(hints: Mapping[str, object], values: Mapping[str, object], options: Mapping[str, str] | None = None):
    """`values` with paths as text where an option takes text; UserInputError naming the first value
    whose type its annotation rules out. Types this cannot judge (enums, dicts, Any) pass."""
    checked = dict(values)
    for name, value in values.items():
        annotation = hints.get(name)
        if isinstance(value, os.PathLike) and _fits(annotation, "") is True and _fits(annotation, value) is not True:
            checked[name] = os.fspath(value)  # a Path where the option takes a path as text
        elif _fits(annotation, value) is False:
            option = (options or {}).get(name, f"--{name}")
            kind = "" if typing.get_origin(annotation) is typing.Literal else f", not {type(value).__name__}"
            raise UserInputError(f"{option} {value!r}: must be {_describe(annotation)}{kind}")
    return checked


def _fits(annotation, value) -> bool | None:
    """Whether `value` is what the parser makes of an option of type `annotation`; None: a type
    (an enum, a dict of some kind, Any) that this does not judge, left to the callee."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (int, float):  # True is an int to Python, not to the parser; numpy's ints are ints
        number = numbers.Real if annotation is float else numbers.Integral
        return isinstance(value, number) and not isinstance(value, bool)
    if annotation in _KINDS:
        return isinstance(value, annotation)
    if origin is typing.Literal:
        return value in args
    if origin is list and len(args) == 1:
        found = [_fits(args[0], item) for item in value] if isinstance(value, (list, tuple)) else [False]
        return None if None in found else all(found)
    if origin in (typing.Union, types.UnionType):
        found = [_fits(arg, value) for arg in args]
        return True if True in found else (None if None in found else False)
    if annotation is Path:
        return isinstance(value, os.PathLike)
    if isinstance(annotation, type) and annotation is not typing.Any and not issubclass(annotation, enum.Enum):
        return isinstance(value, annotation)  # a class such as LongFormOptions or DataSource
    return None


def _describe(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if origin is list and len(args) == 1:
        return f"a list of {_describe(args[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if annotation is Path:
        return "a path"
    return _KINDS.get(annotation) or f"a {getattr(annotation, '__name__', annotation)}"
