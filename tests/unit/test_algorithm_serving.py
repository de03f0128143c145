"""Serving built-in algorithm models: every request format in, every response format out.

Models are trained on digits through the training contract, then served both by calling
the handler functions and through the Python handler runtime that batch transform uses.
Response shapes follow SageMaker's "Common Data Formats for Inference" and the PCA and
k-means response format pages; RecordIO-protobuf answers are read back with the
SageMaker SDK's own reader.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from batchform.algorithms import SERVING_PROGRAM, kmeans, pca, serving, training
from batchform.algorithms.kmeans import KMeansModel
from batchform.algorithms.pca import PCAModel
from batchform.errors import ConfigurationError, InputFormatError, ModelError
from batchform.runtimes.handler_module import HandlerSource, LoadedHandler, load_handler

DIGITS = load_digits().data
ROWS = DIGITS[:25]
FLOAT32 = 1e-6  # answers are float32, as SageMaker's


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders of a PCA (5 components) and a k-means (k=10) trained on digits."""
    root = tmp_path_factory.mktemp("models")
    jobs = {
        "pca": (pca.train, {"num_components": "5", "mini_batch_size": "500"}),
        "kmeans": (kmeans.train, {"k": "10"}),
    }
    for name, (train, settings) in jobs.items():
        data_dir = training.write_workspace(
            root / name, {"feature_dim": "64", **settings}, {"train": "text/csv"}
        )
        np.savetxt(data_dir / "train" / "digits.csv", DIGITS, delimiter=",", fmt="%g")
        train(root / name)
    return {name: root / name / "model" for name in jobs}


@pytest.fixture
def restore_import_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading a handler extends sys.path
    yield


def expected(model_dir: Path) -> list[list[float]]:
    """Each row's answer as its fields' values in order (the CSV layout)."""
    if "pca" in str(model_dir.parent.name):
        return PCAModel.load(model_dir).project(ROWS).tolist()
    labels, distances = KMeansModel.load(model_dir).assign(ROWS)
    return np.column_stack([labels, distances]).tolist()


# --- requests -----------------------------------------------------------------------------


def csv_body(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%g")
    return buffer.getvalue()


def protobuf_body(rows: np.ndarray) -> bytes:
    common = pytest.importorskip("sagemaker.amazon.common")
    pytest.importorskip("batchform.records.protobuf")
    buffer = io.BytesIO()
    common.write_numpy_to_dense_tensor(buffer, rows.astype(np.float32))
    return buffer.getvalue()


REQUESTS = {
    "csv": ("text/csv", lambda rows: csv_body(rows)),
    "csv-label-size": ("text/csv;label_size=0", lambda rows: csv_body(rows)),
    "json-instances": (
        "application/json",
        lambda rows: json.dumps({"instances": [{"features": r} for r in rows.tolist()]}).encode(),
    ),
    "json-data-values": (
        "application/json",
        lambda rows: json.dumps(
            {"instances": [{"data": {"features": {"values": r}}} for r in rows.tolist()]}
        ).encode(),
    ),
    "json-lists": ("application/json", lambda rows: json.dumps(rows.tolist()).encode()),
    "jsonlines": (
        "application/jsonlines",
        lambda rows: b"".join(json.dumps({"features": r}).encode() + b"\n" for r in rows.tolist()),
    ),
    "protobuf": ("application/x-recordio-protobuf", protobuf_body),
}


def decode_response(body: bytes, content_type: str) -> list[list[float]]:
    """A response back to one row of field values per record."""
    if content_type == "text/csv":
        return np.atleast_2d(np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)).tolist()
    if content_type == "application/x-recordio-protobuf":
        return _protobuf_rows(body)
    records = (
        [json.loads(line) for line in body.splitlines()]
        if content_type == "application/jsonlines"
        else next(iter(json.loads(body).values()))
    )
    return [_flat(record) for record in records]


def _flat(record: dict[str, object]) -> list[float]:
    values: list[float] = []
    for value in record.values():
        values.extend(value if isinstance(value, list) else [value])  # type: ignore[list-item]
    return values


def _protobuf_rows(body: bytes) -> list[list[float]]:
    common = pytest.importorskip("sagemaker.amazon.common")
    rows = []
    for record in common.read_records(io.BytesIO(body)):
        assert not record.features
        values: list[float] = []
        for name in sorted(record.label, key=FIELD_ORDER.index):
            values.extend(record.label[name].float32_tensor.values)
        rows.append(values)
    return rows


FIELD_ORDER = ["projection", "closest_cluster", "distance_to_cluster"]
ACCEPTS = [
    "application/json",
    "application/jsonlines",
    "text/csv",
    "application/x-recordio-protobuf",
]


@pytest.mark.parametrize("algorithm", ["pca", "kmeans"])
@pytest.mark.parametrize("request_format", list(REQUESTS))
def test_every_request_format_gives_one_answer_per_record_in_order(
    models: dict[str, Path], algorithm: str, request_format: str
) -> None:
    content_type, make_body = REQUESTS[request_format]
    model = serving.model_fn(str(models[algorithm]))
    body, response_type = serving.transform(model, make_body(ROWS), content_type, "text/csv")
    assert response_type == "text/csv"
    np.testing.assert_allclose(
        decode_response(body, response_type),
        expected(models[algorithm]),
        rtol=FLOAT32,
        atol=FLOAT32,
    )


@pytest.mark.parametrize("algorithm", ["pca", "kmeans"])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_every_accept_answers_the_same_numbers(
    models: dict[str, Path], algorithm: str, accept: str
) -> None:
    model = serving.model_fn(str(models[algorithm]))
    body, response_type = serving.transform(model, csv_body(ROWS), "text/csv", accept)
    assert response_type == accept
    rows = decode_response(body, accept)
    np.testing.assert_allclose(rows, expected(models[algorithm]), rtol=FLOAT32, atol=FLOAT32)


def test_pca_json_shape(models: dict[str, Path]) -> None:
    model = serving.model_fn(str(models["pca"]))
    body, _ = serving.transform(model, csv_body(ROWS[:2]), "text/csv", None)
    document = json.loads(body)
    assert list(document) == ["projections"]
    assert [list(record) for record in document["projections"]] == [["projection"]] * 2
    assert len(document["projections"][0]["projection"]) == 5


def test_kmeans_json_and_csv_shapes(models: dict[str, Path]) -> None:
    model = serving.model_fn(str(models["kmeans"]))
    body, content_type = serving.transform(model, csv_body(ROWS[:2]), "text/csv", "*/*")
    assert content_type == "application/json"
    records = json.loads(body)["predictions"]
    assert [sorted(record) for record in records] == [
        ["closest_cluster", "distance_to_cluster"]
    ] * 2
    assert all(isinstance(record["closest_cluster"], float) for record in records)  # 3.0
    lines = serving.transform(model, csv_body(ROWS[:2]), "text/csv", "text/csv")[0]
    assert [line.count(b",") for line in lines.splitlines()] == [1, 1]


def test_values_are_float32_written_as_sagemaker_writes_them(models: dict[str, Path]) -> None:
    model = serving.model_fn(str(models["kmeans"]))
    body, _ = serving.transform(model, csv_body(ROWS[:1]), "text/csv", "application/jsonlines")
    distance = json.loads(body)["distance_to_cluster"]
    assert distance == float(np.float32(distance))  # a float32, widened exactly


def test_sparse_json_instances(models: dict[str, Path]) -> None:
    row = ROWS[3]
    keys = np.flatnonzero(row).tolist()
    sparse = {"data": {"features": {"keys": keys, "shape": [64], "values": row[keys].tolist()}}}
    dense = {"features": row.tolist()}
    model = serving.model_fn(str(models["pca"]))
    body = json.dumps({"instances": [sparse, dense]}).encode()
    answers = json.loads(serving.transform(model, body, "application/json", None)[0])
    first, second = (record["projection"] for record in answers["projections"])
    assert first == second


def test_a_bare_instance_and_an_empty_batch(models: dict[str, Path]) -> None:
    model = serving.model_fn(str(models["pca"]))
    one = json.dumps({"features": ROWS[0].tolist()}).encode()
    assert (
        len(json.loads(serving.transform(model, one, "application/json", None)[0])["projections"])
        == 1
    )
    empty = serving.transform(model, b'{"instances": []}', "application/json", None)[0]
    assert json.loads(empty) == {"projections": []}


# --- errors -------------------------------------------------------------------------------


def test_unsupported_content_type_names_the_supported_ones(models: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as caught:
        serving.input_fn(b"\x93NUMPY", "application/x-npy")
    assert caught.value.status == 415
    assert "supported: text/csv, application/json, application/jsonlines" in str(caught.value)


def test_unsupported_accept_names_the_supported_ones(models: dict[str, Path]) -> None:
    model = serving.model_fn(str(models["kmeans"]))
    with pytest.raises(ModelError) as caught:
        serving.transform(model, csv_body(ROWS), "text/csv", "application/x-npy")
    assert caught.value.status == 406
    assert "supported: application/json, application/jsonlines, text/csv" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"1,2,3\n", "text/csv", "records have 3 features; the model expects feature_dim=64"),
        (b"1,2\n3\n", "text/csv", "text/csv payload, line 2: found 1 columns, expected 2"),
        (
            b'{"instances": [{"features": [1, 2]}, {"features": [3]}]}',
            "application/json",
            "instance 0 has 2 features; the model expects feature_dim=64",
        ),
        (
            b'{"instances": [{"features": "1,2"}]}',
            "application/json",
            "instance 0: expected a list",
        ),
        (b"{not json", "application/json", "payload is not valid JSON"),
        (
            b'{"data": {"features": {"keys": [70], "values": [1]}}}\n',
            "application/jsonlines",
            "sparse features do not fit the model's feature_dim=64",
        ),
    ],
)
def test_bad_payloads_are_the_callers_fault(
    models: dict[str, Path], body: bytes, content_type: str, message: str
) -> None:
    model = serving.model_fn(str(models["pca"]))
    with pytest.raises(InputFormatError, match=message):
        serving.transform(model, body, content_type, None)


def test_a_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a batchform built-in algorithm model"):
        serving.model_fn(str(tmp_path))


# --- through the handler runtime ----------------------------------------------------------


@pytest.mark.usefixtures("restore_import_path")
@pytest.mark.parametrize("algorithm", ["pca", "kmeans"])
def test_served_by_the_python_handler_runtime(models: dict[str, Path], algorithm: str) -> None:
    handler: LoadedHandler = load_handler(
        HandlerSource(str(models[algorithm]), str(SERVING_PROGRAM))
    )
    body, content_type = handler.transform(csv_body(ROWS), "text/csv", "application/jsonlines")
    assert content_type == "application/jsonlines"
    assert len(body.splitlines()) == len(ROWS)
    rows = decode_response(body, content_type)
    np.testing.assert_allclose(rows, expected(models[algorithm]), rtol=FLOAT32, atol=FLOAT32)
    with pytest.raises(ModelError) as caught:
        handler.transform(b"1,2\n", "text/csv", None)
    assert caught.value.status == 400  # the caller's data: not retried
