"""Which runs can train as copies of one compiled program.

A program's copies share everything that shapes the computation (data, sizes, cell, layers,
optimizer rule and schedule, reduce-on-plateau, epochs, batch size...). Per copy are the model
variant (merge mode or direction: each variant is a segment of the program, see
:mod:`bilstm_cli.engine.network`),
the learning rate (an input of the program) and the seed.
"""

from __future__ import annotations

import json

from .schema import Config

PER_RUN_KEYS = (
    ("train", "learning_rate"),
    ("train", "seed"),
    ("model", "kind"),
    ("model", "direction"),
    ("model", "merge"),
)


def program_key(config: Config) -> str:
    """What a run's program depends on: runs with equal keys can train together."""
    settings = config.model_dump(mode="json")
    for section, key in PER_RUN_KEYS:
        settings[section].pop(key, None)
    settings.pop("compare", None)
    settings.pop("output", None)
    return json.dumps(settings, sort_keys=True)
