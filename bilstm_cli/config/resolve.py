"""Building the one typed config of a command: YAML files, ``--set``, flags and precedence.

One function, :func:`resolve_config`, implements the precedence used by every command:

    built-in defaults < --config FILE < --set section.key=value < dedicated flags

Validation is strict: unknown keys, wrong types, out-of-range values and combinations
that make no sense raise :class:`~bilstm_cli.errors.ConfigError` naming the key path,
the source (file and line, the --set option, or the variant) and what is allowed.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .recipe import file_recipe, wants_split
from .schema import Config

# ---------------------------------------------------------------------------- key paths


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(_key_paths(annotation, path + "."))
    return paths


VALID_KEYS: tuple[str, ...] = tuple(_key_paths(Config))


def allowed_values(path: str) -> list[str]:
    """The values a key accepts when they are a fixed set (a Literal or a bool), else [].

    Example:
        >>> allowed_values("model.cell")
        ['lstm', 'gru', 'rnn']
    """
    model: type[BaseModel] = Config
    *sections, name = path.split(".")
    for section in sections:
        field = model.model_fields.get(section)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    field = model.model_fields.get(name)
    if field is None:
        return []
    values: list[str] = []
    pending = [field.annotation]
    while pending:  # through Optional[...] and unions
        annotation = pending.pop()
        if annotation is bool:
            values += ["true", "false"]
        elif typing.get_origin(annotation) is typing.Literal:
            values += [str(v) for v in typing.get_args(annotation)]
        else:
            pending.extend(typing.get_args(annotation))
    return values


def closest_key(path: str) -> str | None:
    """The valid key path nearest to a misspelt one, for 'did you mean' hints."""
    matches = difflib.get_close_matches(path, VALID_KEYS, n=1, cutoff=0.6)
    if not matches:  # a right key in the wrong section: compare the last part only
        leaf = path.rsplit(".", 1)[-1]
        by_leaf = {key.rsplit(".", 1)[-1]: key for key in VALID_KEYS}
        leaf_match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
        matches = [by_leaf[leaf_match[0]]] if leaf_match else []
    return matches[0] if matches else None


# ---------------------------------------------------------------------------- YAML


class _Source:
    """Where a value came from, so errors can point at it."""

    def __init__(self, label: str, lines: dict[str, int] | None = None):
        self.label = label
        self.lines = lines or {}

    def where(self, path: str) -> str:
        line = self.lines.get(path)
        return f"{self.label}, line {line}" if line else self.label


def _line_numbers(node: yaml.Node, where: str, prefix: str = "") -> dict[str, int]:
    """Line of every key path; a key given twice in one mapping is an error (YAML would
    silently keep the last one)."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}{key_node.value}"
            line = key_node.start_mark.line + 1
            if path in lines:
                raise ConfigError(f"{where}, line {line}: '{path}' is given twice (first on line {lines[path]})")
            lines[path] = line
            lines.update(_line_numbers(value_node, where, path + "."))
    return lines


def load_yaml_file(path: str | Path) -> tuple[dict[str, Any], _Source]:
    """Read a config file into a plain mapping; every failure is one clear ConfigError."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"config file not found: {file}", "check the path given to --config")
    if file.is_dir():
        raise ConfigError(f"config path is a directory, not a file: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{file}: the config file is empty", "give at least one section, e.g. 'train: {epochs: 100}'")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: the config must be a mapping of sections (data, model, train, compare, output), "
            f"not a {type(data).__name__}"
        )
    return data, _Source(str(file), _line_numbers(node, str(file)))


def parse_set_option(assignment: str) -> dict[str, Any]:
    """Turn ``train.learning_rate=0.01`` into a nested mapping; the value is a YAML scalar."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. --set train.epochs=100")
    path, raw = assignment.split("=", 1)
    path = path.strip()
    if not path or any(not part for part in path.split(".")):
        raise ConfigError(f"--set {assignment!r}: empty key; expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not valid YAML: keep it as a plain string and let validation judge it
    return nest(path, value)


def nest(path: str, value: Any) -> dict[str, Any]:
    result: Any = value
    for part in reversed(path.split(".")):
        result = {part: result}
    return result


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flatten(mapping: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict):
            keys |= _flatten(value, path + ".")
    return keys


# ---------------------------------------------------------------------------- resolve


def resolve_config(
    config_file: str | Path | None = None,
    assignments: tuple[str, ...] | list[str] = (),
    flags: dict[str, Any] | None = None,
    clear: tuple[str, ...] | list[str] = (),
) -> Config:
    """Build the one typed config for a command, applying the documented precedence.

    Args:
        config_file: optional YAML file (``--config``).
        assignments: ``--set section.key=value`` strings, applied in order.
        flags: dedicated flags as ``{"train.epochs": 5, ...}``; ``None`` values are ignored.
        clear: key paths that flags set to null (``--merge`` clears ``model.direction``).

    Example:
        >>> resolve_config(assignments=["train.epochs=5"], flags={"model.units": 8}).train.epochs
        5
    """
    layers: list[tuple[dict[str, Any], _Source]] = []
    if config_file is not None:
        layers.append(load_yaml_file(config_file))
    for assignment in assignments:
        layers.append((parse_set_option(assignment), _Source(f"--set {assignment}")))
    flag_values: dict[str, Any] = {}
    for path, value in (flags or {}).items():
        if value is not None or path in clear:
            flag_values = deep_merge(flag_values, nest(path, value))
    if flag_values:
        layers.append((flag_values, _Source("command-line flags")))

    merged: dict[str, Any] = {}
    for mapping, _ in layers:
        merged = deep_merge(merged, mapping)
    explicit = frozenset(_flatten(merged))  # every key path the user gave, whatever its source
    data = merged.get("data") if isinstance(merged.get("data"), dict) else {}
    if data.get("train_path") is not None:  # training reads a file: the dataset recipe fills the rest
        recipe: dict[str, Any] = {}
        train = merged.get("train") if isinstance(merged.get("train"), dict) else {}
        refit = train.get("refit") if isinstance(train.get("refit"), dict) else {}
        split = wants_split(explicit, refit.get("enabled"), data.get("validation_split"))
        for path, value in file_recipe(explicit, data.get("val_path") is not None, split).items():
            recipe = deep_merge(recipe, nest(path, value))
        layers.insert(0, (recipe, _Source("the recipe for dataset files")))
        merged = deep_merge(recipe, merged)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        raise _explain(exc, layers) from None
    config._explicit = explicit
    return config


def _source_of(path: str, layers: list[tuple[dict[str, Any], _Source]]) -> str:
    """The last layer that set ``path`` (or, failing that, its closest parent)."""
    parts = path.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        for mapping, source in reversed(layers):
            if prefix in _flatten(mapping):
                return source.where(prefix)
    return "built-in defaults"


def _explain(exc: ValidationError, layers: list[tuple[dict[str, Any], _Source]]) -> ConfigError:
    """Turn pydantic's report into one line per problem a person can act on."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors():
        # drop pydantic's union-branch tags ('bool', "literal['auto']", ...) from the location
        parts = [str(p) for p in error["loc"] if not _is_union_tag(str(p))]
        path = ".".join(parts)
        if error["type"] == "value_error":  # a combination check names its own key
            match = re.search(r"\b(\w+\.\w+)=", str(error["msg"]))
            path = match.group(1) if match else path
        by_path.setdefault(path, []).append(error)

    messages = []
    for path, errors in by_path.items():
        where = _source_of(path, layers)
        first = errors[0]
        kind = first["type"]
        if kind == "extra_forbidden":
            suggestion = closest_key(path)
            hint = f" (did you mean {suggestion}?)" if suggestion else ""
            messages.append(f"{where}: unknown key '{path}'{hint}")
        elif kind == "value_error":
            reason = str(first.get("ctx", {}).get("error", first["msg"]))
            messages.append(f"{where}: invalid combination: {reason}")
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            messages.append(f"{where}: '{path}' must be a mapping of keys, got {first['input']!r}")
        else:
            allowed = " or ".join(dict.fromkeys(_allowed(error) for error in errors))
            messages.append(f"{where}: {path}={first.get('input')!r} is not allowed: {allowed}")
    more = f"\n(and {len(messages) - 5} more)" if len(messages) > 5 else ""
    return ConfigError("\n".join(messages[:5]) + more)


def _is_union_tag(part: str) -> bool:
    return part in {"bool", "str", "int", "float", "none"} or part.startswith(
        ("literal[", "dict[", "function-", "constrained-")
    )


def _allowed(error: dict[str, Any]) -> str:
    context = error.get("ctx") or {}
    kind = error["type"]
    if kind == "literal_error":
        return f"expected one of {context.get('expected')}"
    if kind == "bool_parsing" or kind == "bool_type":
        return "expected true or false"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return error["msg"].lower()
    if kind == "string_pattern_mismatch":
        return "expected auto, cpu, gpu or gpu:N"
    return error["msg"].lower()


def with_overrides(config: Config, overrides: dict[str, Any], label: str) -> Config:
    """``config`` with some key paths replaced, validated like any other layer.

    Used for a comparison's variants: an invalid value is reported as coming from ``label``
    (e.g. ``variant 'big'``), before anything trains.

    Example:
        >>> with_overrides(Config(), {"model.units": 64}, "variant 'big'").model.units
        64
    """
    layer: dict[str, Any] = {}
    for path, value in overrides.items():
        layer = deep_merge(layer, nest(path, value))
    base = config.model_dump(mode="json")
    layers = [(base, _Source("the resolved config")), (layer, _Source(label))]
    try:
        result = Config.model_validate(deep_merge(base, layer))
    except ValidationError as exc:
        raise _explain(exc, layers) from None
    result._explicit = config._explicit | set(overrides)
    return result
