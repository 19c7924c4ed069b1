"""The search space of ``bilstm tune``: one dimension per config key, parsed from one syntax.

A dimension is ``KEY=SPEC`` on the command line (``--search``) or ``KEY: SPEC`` under
``tune.space`` in YAML, with SPEC one of::

    int:LOW:HIGH[:log]       integers LOW..HIGH (both included), log-uniform with :log
    float:LOW:HIGH[:log]     reals LOW..HIGH, log-uniform with :log
    choice:A,B,...           one of the listed values (YAML scalars: 16, 1e-3, true, sum)

Every bound and choice is checked by the same schema as ``train`` before anything trains
(:func:`check_space`), so a bad key or value exits 2 naming the dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config.resolve import with_overrides
from ..config.schema import Config
from ..config.variants import NOT_VARIABLE, parse_scalar, value_text
from ..errors import ConfigError, UsageError

# keys a search cannot vary (as a comparison's grid cannot), with the reason
NOT_SEARCHABLE = {
    **NOT_VARIABLE,
    "train.seed": "every trial trains with the search seed (--seed); the confirmation draws fresh ones",
    "tune": "tune.* settings are the search's own",
}
SYNTAX = "int:LOW:HIGH[:log], float:LOW:HIGH[:log] or choice:A,B,..."


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``kind`` is int, float or choice."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The dimension in the one syntax (what ``tune.space`` records)."""
        if self.kind == "choice":
            return "choice:" + ",".join(value_text(value) for value in self.choices)
        return f"{self.kind}:{value_text(self.low)}:{value_text(self.high)}" + (":log" if self.log else "")

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial (the parameter is named by the key)."""
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)
        return trial.suggest_categorical(self.key, list(self.choices))

    def examples(self) -> list[Any]:
        """Values that stand for the whole dimension when checking it against the schema."""
        if self.kind == "choice":
            return list(self.choices)
        middle = (self.low + self.high) / 2
        values = [self.low, self.high, int(round(middle)) if self.kind == "int" else middle]
        return [int(v) for v in values] if self.kind == "int" else values


def parse_search_option(option: str) -> tuple[str, str]:
    """``--search model.units=int:16:128:log`` -> ("model.units", "int:16:128:log")."""
    if "=" not in option:
        raise UsageError(f"--search {option!r}: expected KEY=SPEC, e.g. --search model.units=int:16:128:log")
    key, spec = option.split("=", 1)
    return key.strip(), spec.strip()


def parse_dimension(key: str, spec: Any, where: str) -> Dimension:
    """A dimension from its spec text; ``where`` names its source in errors."""
    if not key or "." not in key:
        raise UsageError(f"{where}: the key must be a config key path such as model.units or train.learning_rate")
    if not isinstance(spec, str) or ":" not in spec:
        raise UsageError(f"{where}: {spec!r} is not a search spec", f"use {SYNTAX}")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "choice":
        values = [parse_scalar(part) for part in rest.split(",")]
        if not rest.strip() or any(value is None for value in values):
            raise UsageError(f"{where}: choice with an empty value", "list the values: choice:A,B,...")
        if len({repr(v) for v in values}) != len(values):
            raise UsageError(f"{where}: a choice is listed twice", "give each value once")
        return Dimension(key, "choice", choices=tuple(values))
    if kind not in ("int", "float"):
        raise UsageError(f"{where}: unknown kind {kind!r}", f"use {SYNTAX}")
    parts = rest.split(":")
    log = len(parts) == 3 and parts[2].strip().lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise UsageError(f"{where}: expected {kind}:LOW:HIGH or {kind}:LOW:HIGH:log, got {spec!r}")
    try:
        low, high = (int(p) if kind == "int" else float(p) for p in parts[:2])
    except ValueError:
        raise UsageError(f"{where}: bounds of {spec!r} are not {'integers' if kind == 'int' else 'numbers'}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UsageError(f"{where}: bounds must be finite, got {spec!r}")
    if low >= high:
        raise UsageError(f"{where}: empty range {low}..{high}", "give LOW < HIGH")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs LOW > 0, got {low}", f"e.g. {kind}:1e-4:1e-2:log")
    return Dimension(key, kind, low, high, log)


def search_space(config: Config, options: tuple[str, ...] = ()) -> list[Dimension]:
    """The dimensions of ``tune.space`` and ``--search`` options (which replace a key of the
    config's space), checked against the schema."""
    specs: dict[str, tuple[str, str]] = {key: (spec, f"tune.space.{key}") for key, spec in config.tune.space.items()}
    seen = set()
    for option in options:
        key, spec = parse_search_option(option)
        if key in seen:
            raise UsageError(f"--search {key} is given twice", "give each key once")
        seen.add(key)
        specs[key] = (spec, f"--search {key}")
    if not specs:
        raise UsageError(
            "nothing to search: the search space is empty",
            "add --search KEY=SPEC (e.g. --search model.units=int:8:64:log) or tune.space in the config",
        )
    dimensions = [parse_dimension(key, spec, where) for key, (spec, where) in specs.items()]
    check_space(config, dimensions, {d.key: where for d, (_, where) in zip(dimensions, specs.values())})
    return dimensions


def check_space(config: Config, dimensions: list[Dimension], sources: dict[str, str]) -> None:
    """Every bound and choice validated by the schema, one key at a time (exit 2 naming it)."""
    for dimension in dimensions:
        where = sources.get(dimension.key, f"--search {dimension.key}")
        reason = NOT_SEARCHABLE.get(dimension.key) or NOT_SEARCHABLE.get(dimension.key.split(".", 1)[0])
        if reason:
            raise UsageError(f"{where}: cannot be searched; {reason}")
        for value in dimension.examples():
            try:
                with_overrides(config, {dimension.key: value}, where)
            except ConfigError as exc:
                hint = None if "unknown key" in exc.message else "change the search spec's bounds or choices"
                raise ConfigError(exc.message, hint) from None


def params_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as config overrides (parameters are named by their key path)."""
    return dict(params)


def grid_space(dimensions: list[Dimension]) -> dict[str, list[Any]]:
    """The grid sampler's space: every dimension must be a choice."""
    ranges = [d.key for d in dimensions if d.kind != "choice"]
    if ranges:
        raise UsageError(
            f"--sampler grid needs every dimension to be a choice; {ranges[0]} is a range",
            "use choice:A,B,... for it, or --sampler tpe|random",
        )
    return {d.key: list(d.choices) for d in dimensions}
