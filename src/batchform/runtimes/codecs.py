"""Array codecs for the content types the SageMaker inference toolkit decodes by default.

Pure functions, bytes in and out, so the Python handler runtime, serializers and
benchmarks share one implementation. Decoders raise `InputFormatError` when the payload
does not follow its content type (the caller's data is wrong); encoders raise
`ValueError`/`TypeError` when a prediction cannot be written in the asked format (the
model's output is wrong). Unknown content types are not errors here: `decoder_for` and
`encoder_for` return None and the caller decides (the handler answers 415).

Deliberate differences from the toolkit (sagemaker_inference.decoder/encoder):
- CSV always decodes to a 2-D float64 array (one row per line, also for one line or one
  column), which is what a batch of records means; the toolkit's `np.genfromtxt` returns
  1-D arrays for those and infers int columns. Text or missing values still fall back to
  `np.genfromtxt` with the toolkit's settings.
- NPY payloads are loaded with `allow_pickle=False` (as the scikit-learn container does):
  a request body must not be able to run code in the model process.
- JSON is written compactly by orjson; NaN and infinities become null, not the invalid
  JSON literals `json.dumps` writes.
- application/jsonlines is supported both ways (the toolkit answers 415).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from batchform.errors import InputFormatError

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
ANY = "*/*"

# The toolkit hands these to user functions as str, everything else as bytes.
UTF8_TYPES = frozenset({CSV, JSON})

_JSONLINES_ALIASES = ("application/jsonl", "application/x-jsonlines")

Array = npt.NDArray[Any]
Decoder = Callable[[bytes | str], Array]
Encoder = Callable[[object], bytes]


def media_type(content_type: str | None) -> str | None:
    """'Text/CSV; charset=utf-8' → 'text/csv'; parameters never change the format."""
    if content_type is None:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return media or None


def accepted_media_types(accept: str) -> list[str]:
    """The media types of an Accept header, in the client's order (q-values ignored, as
    the toolkit ignores them)."""
    return [media for part in accept.split(",") if (media := media_type(part))]


# --- decoders ---------------------------------------------------------------------------

# Bytes a CSV of plain JSON-style numbers can hold; anything else goes the slow way.
_NUMERIC_CSV_BYTES = b"0123456789.,-+eE \t\r\n"
_NON_FINITE_LETTERS = b"nanifityNANIFITY"  # nan, inf, infinity in any case
# JSON reads the integer literal -0 as 0; only a float parse keeps the sign.
_NEGATIVE_ZERO_INT = re.compile(rb"-0(?![0-9.eE])")
# Deleting every other byte leaves a CSV's field separators, to check its shape.
_NOT_SEPARATORS = bytes(byte for byte in range(256) if byte not in b",\n")


def csv_to_array(body: bytes | str) -> Array:
    """CSV rows → 2-D array, float64 unless some field is not a number.

    The fast path reads the numbers with orjson (2-3x np.loadtxt, with the same correctly
    rounded values) and is taken only when every line has the same number of fields.
    """
    data = _as_bytes(body).rstrip(b"\r\n")
    if not data.strip():
        return np.empty((0, 0), dtype=np.float64)
    fast = _numeric_csv_fast(data)
    if fast is not None:
        return fast
    try:
        return np.loadtxt(io.BytesIO(data), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        return _csv_like_toolkit(data)


def _numeric_csv_fast(data: bytes) -> Array | None:
    if data.translate(None, _NUMERIC_CSV_BYTES):
        return None
    try:
        # join, not +: one allocation instead of two copies of a 6 MB payload.
        values = orjson.loads(b"".join((b"[", data.replace(b"\n", b","), b"]")))
        flat = np.array(values, dtype=np.float64)
    except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        return None
    # Only zeros can have lost their sign; the text scan is skipped when there are none.
    if not flat.all() and _NEGATIVE_ZERO_INT.search(data):
        return None
    return _rows_if_rectangular(data, flat)


def _rows_if_rectangular(data: bytes, flat: Array) -> Array | None:
    """Reshape to (lines, fields per line), or None when lines differ in field count."""
    rows = data.count(b"\n") + 1
    if flat.size % rows:
        return None
    columns = flat.size // rows
    if rows > 1:
        one_line = b"," * (columns - 1)
        if data.translate(None, _NOT_SEPARATORS) != b"\n".join([one_line] * rows):
            return None
    return flat.reshape(rows, columns)


def _csv_like_toolkit(data: bytes) -> Array:
    """np.genfromtxt, as the toolkit parses: numbers with gaps → float64 with nan there;
    text → the toolkit's inferred per-column types (dtype=None). Numbers alone are not
    left to dtype=None, which would fill gaps in integer columns with -1."""
    numbers_only = not data.translate(None, _NUMERIC_CSV_BYTES + _NON_FINITE_LETTERS)
    dtype = np.float64 if numbers_only else None
    try:
        return np.genfromtxt(
            io.BytesIO(data), delimiter=",", dtype=dtype, encoding="utf-8", ndmin=2
        )
    except ValueError as exc:
        raise InputFormatError(f"payload is not valid text/csv: {exc}") from exc


def json_to_array(body: bytes | str) -> Array:
    """A JSON document → np.array of it (the toolkit's np.array(json.loads(body)))."""
    return _to_array(_load_json(_as_bytes(body)))


def jsonlines_to_array(body: bytes | str) -> Array:
    """One JSON value a line → np.array of the list of values."""
    data = _as_bytes(body).strip()
    if not data:
        return np.empty((0,), dtype=np.float64)
    try:
        # A comma in place of a newline is valid JSON only between complete values, so
        # this one parse accepts exactly the payloads a line-by-line parse would.
        values = orjson.loads(b"[" + data.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        values = [_load_json(line) for line in data.splitlines() if line.strip()]
    return _to_array(values)


def _to_array(values: object) -> Array:
    try:
        return np.array(values)
    except ValueError as exc:  # ragged nesting: no array shape fits
        raise InputFormatError(f"JSON payload is not array-shaped: {exc}") from exc


def _load_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        # Python's json also reads NaN and Infinity, which the toolkit accepts.
        return json.loads(data)
    except ValueError as exc:
        raise InputFormatError(f"payload is not valid JSON: {exc}") from exc


def npy_to_array(body: bytes | str) -> Array:
    try:
        loaded = np.load(io.BytesIO(_as_bytes(body)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFormatError(f"payload is not a valid .npy array: {exc}") from exc
    if not isinstance(loaded, np.ndarray):
        raise InputFormatError("payload is an .npz archive, not a .npy array")
    return loaded


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


# --- encoders ---------------------------------------------------------------------------

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# orjson writes these dtypes with the same shortest round-trip digits as str() does.
_ORJSON_CSV_KINDS = frozenset("iu")
_ORJSON_CSV_FLOATS = frozenset({np.dtype(np.float64), np.dtype(np.float32)})


def array_to_json(prediction: object) -> bytes:
    return orjson.dumps(prediction, default=_json_default, option=_JSON_OPTIONS)


def _json_default(value: object) -> object:
    """What orjson cannot write itself: tensors, non-contiguous arrays, odd dtypes."""
    tolist = getattr(_host_array(value), "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def array_to_jsonlines(prediction: object) -> bytes:
    """One JSON line per row (first axis) of the prediction; a scalar is one line."""
    value = _host_array(prediction)
    rows: Iterable[object]
    if isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim):
        rows = value
    else:
        rows = [value]
    return b"".join(array_to_json(row) + b"\n" for row in rows)


def array_to_csv(prediction: object) -> bytes:
    """One line per row, fields joined by commas (the toolkit's np.savetxt(fmt='%s'))."""
    array = np.asarray(_host_array(prediction))
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim > 2:
        raise ValueError(f"text/csv holds 1-D or 2-D predictions, got shape {array.shape}")
    if array.size == 0:
        return b"\n" * array.shape[0] if array.ndim == 2 else b""
    if _orjson_writes_like_str(array):
        return _csv_by_orjson(np.ascontiguousarray(array))
    return _csv_by_str(array)


def _orjson_writes_like_str(array: Array) -> bool:
    if array.dtype.kind in _ORJSON_CSV_KINDS:
        return True
    # orjson writes nan and inf as null, which CSV readers would not read back.
    return array.dtype in _ORJSON_CSV_FLOATS and bool(np.isfinite(array).all())


def _csv_by_orjson(array: Array) -> bytes:
    text = orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY)
    if array.ndim == 1:
        return text[1:-1].replace(b",", b"\n") + b"\n"
    return text[2:-2].replace(b"],[", b"\n") + b"\n"


def _csv_by_str(array: Array) -> bytes:
    rows = array.reshape(-1, 1) if array.ndim == 1 else array
    lines = [",".join(map(str, row)) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def array_to_npy(prediction: object) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(_host_array(prediction)))
    return buffer.getvalue()


def _host_array(value: object) -> object:
    """A framework tensor as a numpy array (torch: detach → cpu → numpy; TF: numpy)."""
    detach = getattr(value, "detach", None)
    if callable(detach) and hasattr(value, "cpu"):
        return detach().cpu().numpy()
    to_numpy = getattr(value, "numpy", None)
    if callable(to_numpy) and not isinstance(value, np.ndarray | np.generic):
        return to_numpy()
    return value


# --- lookup -----------------------------------------------------------------------------

_DECODERS: dict[str, Decoder] = {
    CSV: csv_to_array,
    JSON: json_to_array,
    JSONLINES: jsonlines_to_array,
    NPY: npy_to_array,
}
_ENCODERS: dict[str, Encoder] = {
    JSON: array_to_json,
    CSV: array_to_csv,
    JSONLINES: array_to_jsonlines,
    NPY: array_to_npy,
}
for _alias in _JSONLINES_ALIASES:
    _DECODERS[_alias] = jsonlines_to_array
    _ENCODERS[_alias] = array_to_jsonlines

DECODERS: Mapping[str, Decoder] = MappingProxyType(_DECODERS)
ENCODERS: Mapping[str, Encoder] = MappingProxyType(_ENCODERS)


def decoder_for(content_type: str | None) -> Decoder | None:
    media = media_type(content_type)
    return None if media is None else _DECODERS.get(media)


def encoder_for(content_type: str | None) -> Encoder | None:
    media = media_type(content_type)
    return None if media is None else _ENCODERS.get(media)
