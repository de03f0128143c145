"""DBSCAN for the example container: reading rows, fitting, the model files, predicting.

Shared by `train` and `serve`, so both read the same formats: CSV rows of numbers, and
JSON Lines as SageMaker's built-in PCA writes them (`{"projection": [...]}` a line, or
the `{"projections": [{"projection": [...]}, ...]}` envelope its default
application/json answer puts on one line per MultiRecord batch).
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any


def _missing(name: str) -> str:
    return (
        f"{name} is not importable by {sys.executable}, the interpreter "
        "'#!/usr/bin/env python3' found on PATH; run batchform from a Python environment "
        "with numpy and scikit-learn (activate its virtualenv, or put its bin folder first "
        "on PATH)"
    )


# Checked now, imported where used: importing scikit-learn takes seconds, and `serve`
# needs only scipy's k-d tree (scikit-learn's own dependency).
try:
    import numpy as np
except ImportError as exc:
    raise ImportError(_missing("numpy")) from exc
for _module in ("scipy", "sklearn"):
    if find_spec(_module) is None:
        raise ImportError(_missing(_module))

#: The model folder's files: the core samples with their cluster ids, and the settings.
ARRAYS_FILE = "dbscan.npz"
PARAMS_FILE = "dbscan.json"

DEFAULT_MIN_PTS = 5
DEFAULT_EPS_PERCENTILE = 90.0

CSV = "text/csv"
JSONLINES = "application/jsonlines"

_CSV_TYPES = frozenset({"text/csv", "text/plain"})
_JSON_TYPES = frozenset(
    {"application/jsonlines", "application/x-jsonlines", "application/jsonl", "application/json"}
)
# A row is a list of numbers under one of these keys (PCA's output; the built-in
# algorithms' request format), and an envelope a list of such records.
_ROW_KEYS = ("projection", "features")
_ENVELOPE_KEYS = ("projections", "instances")
_GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """The data is not rows of numbers in a format this container reads: the client's
    error (HTTP 400, `ClientError:` in a training failure)."""


class UnsupportedMediaType(DataError):
    """A Content-Type this container does not read (HTTP 415)."""


# Reading rows ---------------------------------------------------------------------------


def input_format(content_type: str | None) -> str | None:
    """'csv' or 'json' for a Content-Type, None (look at the data) when there is none."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media or media == "*/*":
        return None
    if media in _CSV_TYPES:
        return "csv"
    if media in _JSON_TYPES:
        return "json"
    raise UnsupportedMediaType(
        f"Content-Type {content_type!r} is not supported: send text/csv or application/jsonlines"
    )


@dataclass(frozen=True)
class Records:
    """The rows of a payload or file, and how they were grouped into records (lines).

    `batches` is None when every record is one row (a CSV line, a `{"projection": ...}`
    line). Otherwise it has an entry per record: None for a one-row record, the number
    of rows for a record that holds a batch of them (a PCA `{"projections": [...]}` line,
    a list of rows), so that an answer can keep one line per record.
    """

    matrix: Any
    batches: list[int | None] | None = None


def read_matrix(data: bytes, content_type: str | None = None, source: str = "payload") -> Any:
    """The rows in `data` as an (n, d) float64 array (see read_records)."""
    return read_records(data, content_type, source).matrix


def read_records(data: bytes, content_type: str | None = None, source: str = "payload") -> Records:
    """The rows in `data` and their records; DataError naming `source` and the line when
    they cannot be read. The format comes from `content_type`, or from the data itself
    (JSON when the first character is `{` or `[`, CSV otherwise). Blank lines are skipped."""
    kind = input_format(content_type)
    text = _text(data, source)
    if kind is None:
        kind = "json" if text.lstrip()[:1] in ("{", "[") else "csv"
    records = _csv_records(text, source) if kind == "csv" else _json_records(text, source)
    rows = [row for record, _ in records for row in record]
    width = 0
    for index, row in enumerate(rows):
        if width and len(row) != width:
            raise DataError(
                f"{source}: row {index + 1} has {len(row)} values, the rows before it {width}"
            )
        width = len(row)
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite)) + 1
        raise DataError(f"{source}: row {bad} holds NaN or infinity; DBSCAN needs numbers")
    batched = any(is_batch for _, is_batch in records)
    batches = [len(r) if is_batch else None for r, is_batch in records] if batched else None
    return Records(matrix, batches)


def _text(data: bytes, source: str) -> str:
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{source}: broken gzip data: {exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source}: not UTF-8 text (byte {exc.start}); expected CSV rows of numbers or "
            "JSON Lines (RecordIO-protobuf is not supported)"
        ) from exc


# A record: its rows, and whether it is a batch of rows rather than one row.
_Record = tuple[list[list[float]], bool]


def _csv_records(text: str, source: str) -> list[_Record]:
    records: list[_Record] = []
    width = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = [float(field.strip().strip('"')) for field in line.split(",")]
        except ValueError:
            raise DataError(
                f"{source}, line {number}: {_clip(line)!r} is not a CSV row of numbers"
            ) from None
        if width and len(row) != width:
            raise DataError(
                f"{source}, line {number}: {len(row)} values, but earlier rows have {width}"
            )
        width = len(row)
        records.append(([row], False))
    return records


def _json_records(text: str, source: str) -> list[_Record]:
    records: list[_Record] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as exc:
            if not records:  # perhaps one JSON document over several lines
                try:
                    return [_document_record(json.loads(text), source)]
                except json.JSONDecodeError:
                    pass
            raise DataError(f"{where}: not JSON ({exc.msg}): {_clip(line)!r}") from None
        records.append(_document_record(document, where))
    return records


def _document_record(document: Any, where: str) -> _Record:
    """The rows of one JSON value: a record, an envelope of records, or lists of numbers."""
    if isinstance(document, dict):
        for key in _ROW_KEYS:
            if key in document:
                return [_numbers(document[key], f"{where}: {key!r}")], False
        for key in _ENVELOPE_KEYS:
            if isinstance(document.get(key), list):
                return _batch(document[key], where), True
    elif isinstance(document, list):
        if document and all(map(_is_number, document)):
            return [_numbers(document, where)], False
        return _batch(document, where), True
    raise DataError(
        f'{where}: expected {{"projection": [...]}}, {{"projections": [...]}} '
        f"or a list of numbers, got {_clip(json.dumps(document))}"
    )


def _batch(items: list[Any], where: str) -> list[list[float]]:
    return [row for item in items for row in _document_record(item, where)[0]]


def _numbers(values: Any, where: str) -> list[float]:
    if not isinstance(values, list) or not values or not all(map(_is_number, values)):
        raise DataError(f"{where}: expected a non-empty list of numbers")
    return [float(value) for value in values]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# The model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The hyperparameters. `eps` None: chosen from the k-distance curve (see choose_eps)."""

    min_pts: int = DEFAULT_MIN_PTS
    eps: float | None = None
    eps_percentile: float = DEFAULT_EPS_PERCENTILE


def parse_settings(hyperparameters: dict[str, Any]) -> Settings:
    """Settings from hyperparameters.json, whose values SageMaker writes as strings."""
    min_pts = _integer(hyperparameters, "minPts", DEFAULT_MIN_PTS)
    if min_pts < 1:
        raise DataError(f"hyperparameter minPts must be at least 1, got {min_pts}")
    eps = _real(hyperparameters, "eps", None)
    if eps is not None and eps <= 0:
        raise DataError(f"hyperparameter eps must be positive, got {eps:g}")
    percentile = _real(hyperparameters, "epsPercentile", DEFAULT_EPS_PERCENTILE)
    assert percentile is not None
    if not 0 < percentile <= 100:
        raise DataError(f"hyperparameter epsPercentile must be in (0, 100], got {percentile:g}")
    return Settings(min_pts=min_pts, eps=eps, eps_percentile=percentile)


def _integer(hyperparameters: dict[str, Any], name: str, default: int) -> int:
    value = hyperparameters.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise DataError(f"hyperparameter {name} must be an integer, got {value!r}")
    return int(number)


def _real(hyperparameters: dict[str, Any], name: str, default: float | None) -> float | None:
    value = hyperparameters.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"hyperparameter {name} must be a number, got {value!r}")
    return number


def choose_eps(matrix: Any, min_pts: int, percentile: float) -> float:
    """eps from the k-distance curve: each row's distance to its minPts-th nearest row,
    counting the row itself (as DBSCAN's minPts does), is the smallest eps that makes
    it a core point; eps is the `percentile` (90 by default) of those distances, so
    about that share of the rows would be core points and the sparsest rest noise."""
    from sklearn.neighbors import NearestNeighbors

    if len(matrix) < min_pts:
        raise DataError(
            f"{len(matrix)} rows are fewer than minPts={min_pts}: no row can be a core point"
        )
    distances, _ = NearestNeighbors(n_neighbors=min_pts).fit(matrix).kneighbors(matrix)
    eps = float(np.percentile(distances[:, -1], percentile))
    if eps <= 0:
        raise DataError(
            f"the {percentile:g}th percentile of the distances to the minPts-th neighbour "
            "is 0 (many identical rows); give the hyperparameter eps"
        )
    return eps


class Model:
    """The core samples of a fitted DBSCAN with their cluster ids. A new row belongs to
    the cluster of its nearest core sample when that is within eps (as a border point
    would), and is noise (-1) otherwise."""

    def __init__(
        self, eps: float, min_pts: int, core_samples: Any, core_labels: Any, dimension: int
    ) -> None:
        self.eps = float(eps)
        self.min_pts = int(min_pts)
        self.core_samples = np.asarray(core_samples, dtype=np.float64).reshape(-1, dimension)
        self.core_labels = np.asarray(core_labels, dtype=np.int64)
        self.dimension = int(dimension)
        self._index = None
        if len(self.core_samples):
            from scipy.spatial import KDTree

            self._index = KDTree(self.core_samples)

    @property
    def clusters(self) -> int:
        return len(np.unique(self.core_labels))

    def predict(self, matrix: Any) -> Any:
        """Cluster ids of the rows of `matrix`, -1 for noise."""
        if len(matrix) == 0:
            return np.empty(0, dtype=np.int64)
        if matrix.shape[1] != self.dimension:
            raise DataError(
                f"rows have {matrix.shape[1]} values, the model was trained on {self.dimension}"
            )
        if self._index is None:  # training found no core points: all is noise
            return np.full(len(matrix), -1, dtype=np.int64)
        distance, nearest = self._index.query(matrix, k=1)
        return np.where(distance <= self.eps, self.core_labels[nearest], -1)

    def save(self, model_dir: Path, **summary: Any) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        np.savez(
            model_dir / ARRAYS_FILE, core_samples=self.core_samples, core_labels=self.core_labels
        )
        params = {"eps": self.eps, "minPts": self.min_pts, "dimension": self.dimension}
        params.update(summary)
        (model_dir / PARAMS_FILE).write_text(json.dumps(params, indent=2) + "\n")


def fit(matrix: Any, settings: Settings) -> tuple[Model, Any, str]:
    """The model, the training rows' labels, and how eps was set."""
    from sklearn.cluster import DBSCAN

    if len(matrix) == 0:
        raise DataError("no training rows")
    if settings.eps is not None:
        eps, rule = settings.eps, "given"
    else:
        eps = choose_eps(matrix, settings.min_pts, settings.eps_percentile)
        rule = f"{settings.eps_percentile:g}th percentile of the minPts-nearest-neighbour distances"
    fitted = DBSCAN(eps=eps, min_samples=settings.min_pts).fit(matrix)
    core = fitted.core_sample_indices_
    model = Model(eps, settings.min_pts, matrix[core], fitted.labels_[core], matrix.shape[1])
    return model, fitted.labels_, rule


def load_model(model_dir: Path) -> Model:
    """The model `train` wrote to `model_dir`; DataError saying what is missing."""
    params_path, arrays_path = model_dir / PARAMS_FILE, model_dir / ARRAYS_FILE
    for path in (params_path, arrays_path):
        if not path.is_file():
            raise DataError(f"no {path.name} in {model_dir}: is it a model this train made?")
    params = json.loads(params_path.read_text())
    with np.load(arrays_path, allow_pickle=False) as arrays:
        return Model(
            params["eps"],
            params["minPts"],
            arrays["core_samples"],
            arrays["core_labels"],
            params["dimension"],
        )
