"""What every CLI verb shares: settings, the registry, and turning user errors into one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from jstore.config import get_settings
from jstore.registry import NotFound, Registry
from jstore.repo import DefinitionError, definition_error


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except (DefinitionError, NotFound, FileNotFoundError) as e:
        raise UserError(str(e).strip("'\"")) from None
    except ValidationError as e:
        raise UserError(str(definition_error(e, "input"))) from None


@contextmanager
def open_registry() -> Iterator[Registry]:
    registry = Registry(get_settings())
    try:
        with user_errors():
            yield registry
    finally:
        registry.close()
