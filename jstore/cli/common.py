"""What every CLI verb shares: settings, the registry, and turning user errors into one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

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
        raise UserError(str(e)) from None
    except ValidationError as e:
        if e.title == "Settings":
            err = e.errors()[0]
            field = "_".join(str(p) for p in err["loc"]).upper()
            raise UserError(f"setting JSTORE_{field}: {err['msg']}") from None
        raise UserError(str(definition_error(e, "input"))) from None
    except ConnectionFailure:
        raise UserError(
            f"the registry's MongoDB does not answer at {get_settings().mongo_uri} "
            "(start the local servers with `make services`)"
        ) from None


@contextmanager
def open_registry() -> Iterator[Registry]:
    with user_errors():
        registry = Registry(get_settings())
    try:
        with user_errors():
            yield registry
    finally:
        registry.close()
