"""Command-line options made from the settings schemas, so flags, defaults and help are written once.

`@settings_options(TrainConfig, into="training")` appends one option per field of the schema to
a command (`--learning-rate`, with the field's default and description) and hands the values to
the command as one dict, which the command validates through the same schema a sweep uses.
Options shared by every command (the model argument, --output, --overwrite) live here too.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo

from layerdrop.settings import Settings, flag

F = TypeVar("F", bound=Callable[..., Any])
SIMPLE = (str, int, float, bool)

ModelArg = Annotated[str, typer.Argument(help="Hugging Face hub name, local checkpoint directory, or bundled:NAME")]
Output = Annotated[Path, typer.Option("--output", "-o", help="folder to write the result to")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="replace an existing output")]
ResultFile = Annotated[
    Path | None, typer.Option("--result", help="write the JSON result to this file (default: print it)")
]
Head = Annotated[
    str | None,
    typer.Option(
        help="model head: base, sequence-classification, token-classification, question-answering, multiple-choice, "
        "masked-lm, causal-lm (default: what the checkpoint's config says)"
    ),
]


def settings_options(
    *schemas: type[Settings],
    into: str,
    optional: bool = False,
    include: Collection[str] | None = None,
    exclude: Collection[str] = (),
    panel: str | None = None,
) -> Callable[[F], F]:
    """Add one option per field of `schemas` to a command.

    The first schema naming a field wins; `include` or `exclude` pick fields by name. The command
    receives the values as the dict parameter `into`. With `optional`, every option defaults to None
    and unset ones are left out of the dict, so the schema's own defaults and cross-field checks
    decide (strategy options differ per strategy). `panel` groups the options under a heading of
    their own in --help.
    """
    fields: dict[str, FieldInfo] = {}
    for schema in schemas:
        for name, info in schema.model_fields.items():
            wanted = name in include if include is not None else name not in exclude
            if wanted and _cli_type(info.annotation) is not None:
                fields.setdefault(name, info)

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != into]
        taken = {p.name for p in kept}
        added = [_parameter(name, info, optional, panel) for name, info in fields.items() if name not in taken]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {p.name: kwargs.pop(p.name) for p in added}
            if optional:
                values = {name: value for name, value in values.items() if value is not None}
            return command(*args, **{into: values}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {}
        return wrapper  # type: ignore[return-value]

    return decorate


def _parameter(name: str, info: FieldInfo, optional: bool, panel: str | None) -> inspect.Parameter:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    cli_type = _cli_type(info.annotation)
    if optional:
        default = None  # unset stays out of the dict; a boolean gets both --x and --no-x
    elif info.is_required():
        default = ...
    else:
        default = info.get_default(call_default_factory=True)
    if isinstance(default, list):  # parsed from "1,8,32" by the schema
        default = ",".join(map(str, default))
    declared = (
        f"{flag(name)}/--no-{flag(name)[2:]}" if cli_type is bool and (optional or default is True) else flag(name)
    )
    if default is None:
        cli_type = cli_type | None
    option = typer.Option(
        declared,
        *extra.get("flags", ()),
        help=info.description,
        show_default=default not in (None, ...),
        rich_help_panel=panel,
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[cli_type, option]
    )


def _cli_type(annotation: Any) -> Any:
    """The type typer parses a field as, or None for what has no command-line form.

    A simple type (or a Literal) is kept; str when the schema parses text itself (layer lists); None for
    mappings and nested schemas.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        return _cli_type(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _cli_type(members[0]) if len(members) == 1 else None
    if annotation in SIMPLE or origin is Literal:
        return annotation
    if origin is list:
        return str
    return None
