"""Typed dependencies: the app's settings, registry, lookups and the API-key checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from jstore.config import Settings
from jstore.online.lookup import OnlineLookup
from jstore.online.store import OnlineReader
from jstore.registry import Registry
from serving.auth import KeyChecker
from serving.metrics import Metrics

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> Registry:
    return request.app.state.registry


def get_lookup(request: Request) -> OnlineLookup:
    return request.app.state.lookup


def get_reader(request: Request) -> OnlineReader:
    return request.app.state.reader


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def require_read(request: Request, api_key: str | None = Security(api_key_header)) -> None:
    checker: KeyChecker = request.app.state.keys
    checker.check(api_key, "read")


def require_write(request: Request, api_key: str | None = Security(api_key_header)) -> None:
    checker: KeyChecker = request.app.state.keys
    checker.check(api_key, "write")


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
LookupDep = Annotated[OnlineLookup, Depends(get_lookup)]
ReaderDep = Annotated[OnlineReader, Depends(get_reader)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ReadAccess = Depends(require_read)
WriteAccess = Depends(require_write)
