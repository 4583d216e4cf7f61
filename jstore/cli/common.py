"""What every CLI verb shares: settings, the registry, and turning errors into one line.

Two kinds of error end a command with one line on stderr instead of a traceback: bad input
(`UserError`, exit code 2) and a server that is down or refuses the connection
(`unreachable_server`, exit code 1), whichever verb met it and however deep.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from pydantic import ValidationError

from jstore.config import get_settings
from jstore.durations import parse_timestamp
from jstore.errors import InputError
from jstore.registry import NotFound, Registry
from jstore.registry.leases import SourceBusy
from jstore.repo import definition_error

SERVER_DOWN_EXIT_CODE = 1
MONGO_AUTH_FAILURE_CODES = {18}  # AuthenticationFailed


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


@contextmanager
def user_errors(*refusals: type[Exception]) -> Iterator[None]:
    """Bad input met in the block, a source whose lease another process holds, and `refusals`
    (a verb's own), as one line: a UserError."""
    try:
        yield
    except (InputError, NotFound, FileNotFoundError, SourceBusy, *refusals) as e:
        raise UserError(str(e)) from None
    except ValidationError as e:
        if e.title == "Settings":
            err = e.errors()[0]
            field = "_".join(str(p) for p in err["loc"]).upper()
            raise UserError(f"setting JSTORE_{field}: {err['msg']}") from None
        raise UserError(str(definition_error(e, "input"))) from None


def timestamp_option(text: str, field: str) -> datetime:
    """An ISO-8601 option (`--start`, `--end`); a bad one is a UserError naming the option."""
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise UserError(f"{field}: {e}") from None


@contextmanager
def open_registry(*refusals: type[Exception]) -> Iterator[Registry]:
    """The registry, closed after the block; bad input and `refusals` in the block end the
    command with one line (`user_errors`)."""
    with user_errors():
        registry = Registry(get_settings())
    try:
        with user_errors(*refusals):
            yield registry
    finally:
        registry.close()


def unreachable_server(error: BaseException) -> str | None:
    """`<what> is not reachable at <url>: <reason>` when `error`, or an error it was raised
    from or while handling, says that PostgreSQL, Redis, MongoDB or Kafka is down or refused
    the connection (a wrong password, say); None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _server_of(current)
        if found is not None:
            what, reason = found
            return f"{what} is not reachable at {without_password(_url_of(what))}: {reason}"
        current = current.__cause__ or current.__context__
    return None


def _server_of(error: BaseException) -> tuple[str, str] | None:
    """Which server `error` says is unreachable, and why in a few words."""
    import adbc_driver_manager
    import kafka.errors
    import psycopg
    import redis.exceptions
    from pymongo.errors import ConnectionFailure, OperationFailure

    text = str(error)
    if type(error) is psycopg.OperationalError or (  # subclasses: SQL errors of a live server
        isinstance(error, adbc_driver_manager.OperationalError) and "[libpq] Failed to" in text
    ):
        reason = text.splitlines()[0].rpartition("failed: ")[2] or text
        return "PostgreSQL", _tidy(reason)
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        reason = re.sub(r"^Error \d+ connecting to \S+?\. ", "", text)
        return "Redis", _tidy(reason)
    if isinstance(error, ConnectionFailure) or (
        isinstance(error, OperationFailure) and error.code in MONGO_AUTH_FAILURE_CODES
    ):
        reason = re.sub(r"^\S+:\d+: ", "", text.partition(" (configured timeouts")[0])
        return "MongoDB", _tidy(reason.partition(", Timeout: ")[0])
    if isinstance(error, kafka.errors.KafkaTimeoutError):
        return "Kafka", "no broker answered in time"
    if isinstance(
        error,
        kafka.errors.KafkaConnectionError
        | kafka.errors.SaslAuthenticationFailedError
        | kafka.errors.IllegalSaslStateError,
    ):
        return "Kafka", _tidy(text.removeprefix(type(error).__name__))
    return None


def _url_of(server: str) -> str:
    settings = get_settings()  # valid: a server was reached for, so the settings were read
    return {
        "PostgreSQL": settings.postgres_dsn.get_secret_value(),
        "Redis": settings.redis_url,
        "MongoDB": settings.mongo_uri,
        "Kafka": settings.kafka_bootstrap,
    }[server]


def without_password(url: str) -> str:
    """`url` (or a libpq `key=value` DSN) with any password left out."""
    url = re.sub(r"//([^/@:]*):[^/@]*@", lambda m: f"//{m[1]}@" if m[1] else "//", url)
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def _tidy(reason: str) -> str:
    """The reason as a short phrase: no errno, no `FATAL:`, one line, no final full stop."""
    reason = re.sub(r"\[Errno -?\d+\]\s*|^FATAL:\s*|^:\s*", "", reason.strip())
    return reason.splitlines()[0].strip().rstrip(".") if reason else "no answer"
