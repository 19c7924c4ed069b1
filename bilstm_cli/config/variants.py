"""Model variants: the names ``compare`` compares, and the config each one stands for.

A variant is a readable name plus the config key paths it sets. The named model variants are
``lstm-<direction>`` and ``bilstm-<merge mode>`` (:data:`~bilstm_cli.config.vocabulary.MODEL_VARIANTS`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import UsageError
from .resolve import with_overrides
from .schema import Config, ModelSettings
from .vocabulary import MERGE_MODES, MODEL_VARIANTS


@dataclass(frozen=True)
class Variant:
    """A named set of config values that one comparison arm trains with.

    Args:
        name: what tables, files and plots call it, e.g. ``bilstm-sum``.
        overrides: config key path to value, e.g. ``{"model.kind": "bilstm", "model.merge": "sum"}``.
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def apply(self, config: Config) -> Config:
        """``config`` with this variant's values (validated; errors name the variant)."""
        return with_overrides(config, self.overrides, f"variant {self.name!r}")


def model_variant_name(settings: ModelSettings) -> str:
    """Short name such as ``bilstm-concat`` or ``lstm-backward`` (other cells: ``bigru-sum``,
    ``rnn-forward``)."""
    cell = settings.cell
    return f"bi{cell}-{settings.merge}" if settings.kind == "bilstm" else f"{cell}-{settings.direction}"


def model_variant(name: str) -> Variant:
    """The variant for a name such as ``lstm-forward`` or ``bilstm-sum``."""
    if name not in MODEL_VARIANTS:
        raise UsageError(f"unknown variant {name!r}", f"valid variants: {', '.join(MODEL_VARIANTS)}")
    kind, _, detail = name.partition("-")
    if kind == "bilstm":
        return Variant(name, {"model.kind": "bilstm", "model.merge": detail, "model.direction": None})
    return Variant(name, {"model.kind": "lstm", "model.direction": detail, "model.merge": None})


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated option value as a list (None when the option was not given)."""
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def parse_variants(variants: list[str] | None, modes: list[str] | None, default: list[str]) -> list[Variant]:
    """Variants from ``--variants`` and ``--modes`` (shorthand for ``bilstm-<mode>``), validated."""
    chosen: list[str] = []
    for mode in modes or []:
        if mode not in MERGE_MODES:
            raise UsageError(f"unknown merge mode {mode!r}", f"valid modes: {', '.join(MERGE_MODES)}")
        chosen.append(f"bilstm-{mode}")
    chosen = list(variants or []) + chosen if (variants or modes) else list(default)
    parsed = [model_variant(name) for name in chosen]
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"a variant is listed twice: {', '.join(chosen)}")
    if not parsed:
        raise UsageError("no variants to compare")
    return parsed


# ---------------------------------------------------------------------------- grids

# Short names for common keys in variant names (``bilstm-concat units=64 lr=0.003``).
LABELS = {"learning_rate": "lr", "batch_size": "batch", "samples_per_epoch": "samples", "validation_split": "split"}


def label(path: str) -> str:
    """The short name of a key path in variant names: its last part, abbreviated."""
    leaf = path.rsplit(".", 1)[-1]
    return LABELS.get(leaf, leaf)


def value_text(value: Any) -> str:
    """A value as variant names show it: ``0.003``, ``64``, ``true``, ``concat``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_vary(option: str) -> tuple[str, list[Any]]:
    """``model.units=20,64`` -> ("model.units", [20, 64]); values are YAML scalars, like --set's."""
    if "=" not in option:
        raise UsageError(f"--vary {option!r}: expected KEY=V1,V2,..., e.g. --vary model.units=20,64")
    path, raw = option.split("=", 1)
    path = path.strip()
    values = [parse_scalar(part) for part in raw.split(",")]
    if not path or "." not in path:
        raise UsageError(
            f"--vary {option!r}: the key must be a config key path such as model.units or train.learning_rate"
        )
    if not values or any(value is None for value in values):
        raise UsageError(f"--vary {option!r}: empty value; give KEY=V1,V2,...")
    return path, values


def parse_scalar(text: str) -> Any:
    """One value as typed on the command line: YAML (``0.003``, ``true``, ``sum``), empty -> None."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()  # not valid YAML: a plain string for the schema to judge


def flatten(overrides: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``{model: {units: 20}}`` and ``{model.units: 20}`` both as ``{"model.units": 20}``."""
    flat: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def base_variants(config: Config, names: list[str] | None, modes: list[str] | None, grid: dict) -> list[Variant]:
    """The variants a grid is crossed with.

    ``--variants`` / ``--modes`` if given; else ``compare.variants`` (names, or a mapping
    ``name -> {key.path: value}``) when the config sets it or there is no grid; else, with a
    grid and no variants, the config's own model.
    """
    if names or modes:
        return parse_variants(names, modes, [])
    variants = config.compare.variants
    if grid and "variants" not in config.compare.model_fields_set:
        return [Variant(model_variant_name(config.model))]
    if isinstance(variants, dict):
        if not variants:
            raise UsageError("compare.variants is an empty mapping; name at least one variant")
        return [Variant(str(name), flatten(overrides)) for name, overrides in variants.items()]
    return parse_variants(None, None, list(variants))


def expand_grid(variants: list[Variant], grid: dict[str, list[Any]]) -> list[Variant]:
    """Every variant crossed with every combination of the grid's values (the cartesian product).

    Example:
        >>> [v.name for v in expand_grid([Variant("bilstm-sum")], {"model.units": [20, 64]})]
        ['bilstm-sum units=20', 'bilstm-sum units=64']
    """
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [{}]
    expanded = []
    for variant in variants:
        for combination in combinations:
            suffix = " ".join(f"{label(path)}={value_text(value)}" for path, value in combination.items())
            name = f"{variant.name} {suffix}".strip()
            expanded.append(Variant(name, {**variant.overrides, **combination}))
    names = [v.name for v in expanded]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"two variants would both be called {repeated[0]!r}", "give the variants distinct names")
    return expanded


def comparison_variants(
    config: Config, names: list[str] | None = None, modes: list[str] | None = None, vary: tuple[str, ...] = ()
) -> list[Variant]:
    """All the variants of a comparison, validated against the schema before anything trains.

    Args:
        config: the resolved config (``compare.variants``, ``compare.grid``).
        names, modes: ``--variants`` and ``--modes``.
        vary: ``--vary KEY=V1,V2`` options; they add to (and override keys of) ``compare.grid``.
    """
    varied = [parse_vary(option) for option in vary]
    keys = [path for path, _ in varied]
    twice = sorted({path for path in keys if keys.count(path) > 1})
    if twice:
        raise UsageError(f"--vary {twice[0]} is given twice", f"give all its values once: --vary {twice[0]}=V1,V2,...")
    grid = {**config.compare.grid, **dict(varied)}
    for path in grid:
        _check_variable(path, f"--vary {path}")
    bases = base_variants(config, names, modes, grid)
    for variant in bases:  # compare.variants as a mapping sets keys too
        for path in variant.overrides:
            _check_variable(path, f"variant {variant.name!r} sets {path}")
    variants = expand_grid(bases, grid)
    applied = [variant.apply(config) for variant in variants]  # a bad key or value fails here, naming the variant
    _check_grid_against_variants(grid, bases, config)
    _refuse_identical(variants, applied)
    return variants


# keys a grid cannot vary: each run's value comes from elsewhere, or the key is not the run's
NOT_VARIABLE = {
    "train.seed": "seeds come from --seed and --repeats (repeat r trains with seed + r, the same for every variant)",
    "train.backend": "a comparison trains every variant on one backend (--backend)",
    "compare": "compare.* settings are the comparison's own, the same for every variant",
    "output": "output.* settings say where results go, the same for every variant",
}
# keys that make a model variant (its name): compared with --variants / --modes, not a grid
MODEL_VARIANT_KEYS = ("model.kind", "model.merge", "model.direction")


def _check_variable(path: str, where: str) -> None:
    reason = NOT_VARIABLE.get(path) or NOT_VARIABLE.get(path.split(".", 1)[0])
    if reason:
        raise UsageError(f"{where}: cannot be varied; {reason}")


def _check_grid_against_variants(grid: dict[str, list[Any]], bases: list[Variant], config: Config) -> None:
    """A grid key that a variant sets (or that names it) would train under a wrong name."""
    for path in grid:
        setters = [variant.name for variant in bases if path in variant.overrides]
        if setters or path in MODEL_VARIANT_KEYS:
            owner = f"variant {setters[0]!r} sets it" if setters else f"it decides the variant ({bases[0].name})"
            raise UsageError(
                f"--vary {path}: {owner}, so its variants would train under wrong names",
                "compare model variants with --variants or --modes (e.g. --modes sum,mul), and vary other keys",
            )


def _refuse_identical(variants: list[Variant], applied: list[Config]) -> None:
    """Two variants whose runs are the same (e.g. learning_rate=0.001,1e-3) compare nothing."""
    seen: dict[str, str] = {}
    for variant, settings in zip(variants, applied):
        key = yaml.safe_dump([settings.model.model_dump(), settings.train.model_dump(), settings.data.model_dump()])
        if key in seen:
            raise UsageError(
                f"variants {seen[key]!r} and {variant.name!r} train the same runs (their settings are equal)",
                "give each value once",
            )
        seen[key] = variant.name


def recorded_variants(variants: list[Variant]) -> list[str] | dict[str, dict[str, Any]]:
    """How a comparison's config.yaml records its variants, so ``--resume`` rebuilds them exactly:
    a list of names when they are all named model variants, else the full mapping."""
    if all(v.name in MODEL_VARIANTS and v.overrides == model_variant(v.name).overrides for v in variants):
        return [v.name for v in variants]
    return {v.name: dict(v.overrides) for v in variants}
