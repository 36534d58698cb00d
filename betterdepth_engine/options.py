"""Command-line options generated from settings dataclasses, so each default and help text lives in one place.

A field's `metadata` may hold `help`, `choices`, `flag` (the option's name when it is not the field's) and
`cli=False` (not an option). The engine service builds its request models from the same dataclasses.
Light on purpose: the CLI imports this module before any command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from betterdepth_engine.errors import BetterDepthError

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def setting(default, help: str, **cli):  # noqa: A002  (the argparse word)
    """A dataclass field with its help text (and optional `choices`, `flag`, `cli=False`)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


def comma_list(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """'a, b,,a' -> ('a', 'b'): the one parser of comma-separated choices; unknown items are BAD_INPUT."""
    items = tuple(dict.fromkeys(item.strip().lower() for item in text.split(",") if item.strip()))
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise BetterDepthError(BetterDepthError.BAD_INPUT, f"Unknown {what}: {', '.join(unknown)}.",
                               f"Choose from: {', '.join(allowed)} (comma-separated).")
    return items


def _value_type(field: dataclasses.Field):
    if field.default is not None and field.default is not dataclasses.MISSING:
        return type(field.default)
    annotation = field.type if isinstance(field.type, str) else field.type.__name__
    return _TYPES[annotation.split("|")[0].strip()]


def cli_fields(settings_class) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(settings_class) if f.metadata.get("cli", True)]


def flag_of(field: dataclasses.Field, prefix: str = "") -> str:
    return field.metadata.get("flag") or "--" + prefix + field.name.replace("_", "-")


def add_options(parser, settings_class, prefix: str = "", help_texts: Mapping[str, str] | None = None) -> None:
    """One option per field of `settings_class`, named --PREFIX-FIELD-NAME, with the field's default."""
    for field in cli_fields(settings_class):
        help_text = field.metadata.get("help") or (help_texts or {}).get(field.name, "")
        kwargs = {"dest": prefix.replace("-", "_") + field.name}
        if field.default is dataclasses.MISSING:
            kwargs.update(required=True, help=help_text)
        elif field.default is None:
            kwargs.update(default=None, help=help_text)
        else:
            kwargs.update(default=field.default, help=f"{help_text} (default: %(default)s)".lstrip())
        if isinstance(field.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(field.default, tuple):
            kwargs.update(type=type(field.default[0]), nargs="+")
        else:
            kwargs.update(type=_value_type(field), choices=field.metadata.get("choices"))
        if kwargs.get("type") in (int, float):
            kwargs["metavar"] = "N" if kwargs["type"] is int else "X"
        parser.add_argument(flag_of(field, prefix), **kwargs)


def from_options(settings_class, args: argparse.Namespace, prefix: str = "", **extra):
    """The settings the parsed options describe (plus `extra` values for fields that are not options)."""
    values = {field.name: getattr(args, prefix.replace("-", "_") + field.name) for field in cli_fields(settings_class)}
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
    return settings_class(**values, **extra)
