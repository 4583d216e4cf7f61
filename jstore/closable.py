"""`Closable`: `with thing:` hands the thing back and closes it when the block ends."""

from __future__ import annotations

from typing import Self


class Closable:
    """A class whose `close()` releases what it holds (a connection, an HTTP client, a temporary
    file) and that `with` closes however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
