"""The key dictionary of a point-in-time join: dense integer codes of the key tuples seen.

The join codes each entity row's key tuple once, in its first pass, and works on the codes
afterwards (spans, ranges, the as-of match), so that text keys are hashed once per batch and
never compared again.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class KeyDictionary:
    """Dense codes of the key tuples seen in the entity rows, growing as they are read.

    Each key column has a dictionary of its distinct values (Arrow hash lookups); with more
    than one key column, the tuple's code so far and the next column's code are packed into one
    int64 and coded by a dictionary of those, so codes stay dense and no product overflows.
    Memory grows with the distinct key tuples, not with the entity rows.
    """

    def __init__(self, dtypes: list[pa.DataType]):
        self._columns = [_ValueCodes(dtype) for dtype in dtypes]
        self._pairs = [_ValueCodes(pa.int64()) for _ in dtypes[1:]]

    def encode(self, keys: list[pa.Array]) -> np.ndarray:
        """The code of each row's key tuple, coding the tuples not seen before; -1 for a row
        with a null key."""
        code = self._columns[0].encode(keys[0])
        for column, pairs, key in zip(self._columns[1:], self._pairs, keys[1:], strict=True):
            code = pairs.encode(_pack(code, column.encode(key)))
        return code

    def lookup(self, keys: list[pa.Array]) -> np.ndarray:
        """The code of each row's key tuple; -1 for a tuple never coded (or a null key). Codes
        nothing new, so threads may look up at once once the coding is done."""
        code = self._columns[0].lookup(keys[0])
        for column, pairs, key in zip(self._columns[1:], self._pairs, keys[1:], strict=True):
            code = pairs.lookup(_pack(code, column.lookup(key)))
        return code

    def keys(self, codes: np.ndarray) -> list[pa.Array]:
        """The key columns of the tuples coded `codes` (all >= 0)."""
        columns: list[pa.Array] = []
        for column, pairs in zip(self._columns[:0:-1], self._pairs[::-1], strict=True):
            packed = pairs.values.take(pa.array(codes)).to_numpy()
            columns.append(column.values.take(pa.array(packed & _LOW)))
            codes = packed >> 32
        columns.append(self._columns[0].values.take(pa.array(codes)))
        return columns[::-1]


_LOW = (1 << 32) - 1


def pack_pair(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """(high, low) as one int64 that sorts as the pair does: `high` below 2**31, `low` in
    [0, 2**32). A key code and a second number (a value code, a period, a time's rank) sort
    together in one numpy sort this way."""
    return (high << 32) | (low & _LOW)


def _pack(code: np.ndarray, part: np.ndarray) -> pa.Array:
    """(code, part) as one int64 (both below 2**31); null where either is -1."""
    return pa.array(pack_pair(code, part), mask=(code < 0) | (part < 0))


class _ValueCodes:
    """Dense codes of the distinct values of one column, in the order first seen."""

    def __init__(self, dtype: pa.DataType):
        self.values = pa.array([], dtype)

    def encode(self, column: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(column)  # this batch's distinct values, nulls apart
        code = _found(pc.index_in(encoded.dictionary, value_set=self.values))
        new = np.flatnonzero(code < 0)
        if len(new):
            code[new] = len(self.values) + np.arange(len(new))
            self.values = pa.concat_arrays(
                [self.values, encoded.dictionary.take(pa.array(new)).cast(self.values.type)]
            )
        rows = _found(encoded.indices)
        return np.append(code, -1)[rows]  # a null key (index -1) gets -1

    def lookup(self, column: pa.Array) -> np.ndarray:
        """Each value's code, -1 for a value not coded or null."""
        return _found(pc.index_in(column, value_set=self.values))


def _found(indices: pa.Array) -> np.ndarray:
    """Arrow indices as int64, -1 where null."""
    return indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
