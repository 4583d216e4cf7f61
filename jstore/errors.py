"""The one error of bad input from a user."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user: an entity file or its rows, an output path, feature references, a
    definition (`jstore.repo.DefinitionError`). The message starts with the field it names; the
    CLI prints it as one line (exit 2), the API answers 422 with it."""
