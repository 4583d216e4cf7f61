"""The Arrow type of each JStore dtype (`jstore.model.DType`), for every module that builds
Arrow data: the landing zone, the offline store's COPY, the online layout, exports."""

from __future__ import annotations

import pyarrow as pa

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
