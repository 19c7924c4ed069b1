"""Configuration: vocabulary (allowed words), schema (typed sections), resolve (files, --set,
flags, precedence), overrides (flags as key paths), variants (what compare compares).

Import from the modules themselves; this package stays empty so that light modules
(vocabulary, overrides) can be imported without pydantic, for a fast ``--help``.
"""
