"""Model variants: the names ``compare`` compares, and the config each one stands for.

A variant is a readable name plus the config key paths it sets. The named model variants are
``lstm-<direction>`` and ``bilstm-<merge mode>`` (:data:`~bilstm_cli.config.vocabulary.MODEL_VARIANTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    """Short name such as ``bilstm-concat`` or ``lstm-backward``."""
    return f"bilstm-{settings.merge}" if settings.kind == "bilstm" else f"lstm-{settings.direction}"


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
