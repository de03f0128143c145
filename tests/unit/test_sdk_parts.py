"""The SDK's small parts: names, image URIs, buckets and uploads, log reading, waiting,
and how the embedded service's refusals reach the user."""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import pytest
from sagemaker import image_uris as sm_image_uris

from batchform.algorithms.images import builtin_algorithm
from batchform.errors import InvalidRequest, ModelError, ResourceNotFound, SpecValidationError
from batchform.sdk import buckets, image_uris, naming
from batchform.sdk.backend import LogLine
from batchform.sdk.embedded import FileLogReader, parse_line, translated_errors
from batchform.sdk.exceptions import ApiCallError
from batchform.sdk.exceptions import ModelError as SdkModelError
from batchform.sdk.waiting import follow_logs

NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def test_names_are_timestamped_valid_and_unique() -> None:
    names = [naming.name_from_base("pca") for _ in range(20)]
    assert len(set(names)) == 20  # even within one millisecond
    assert all(NAME.match(name) for name in names)
    assert re.match(r"^pca-\d{4}(-\d{2}){5}-\d{3}$", names[0])
    long = naming.name_from_base("x" * 80)
    assert len(long) == 63 and NAME.match(long)
    assert naming.base_from_name(names[0]) == "pca"
    assert naming.base_from_name("plain-name") == "plain-name"


@pytest.mark.parametrize(
    ("image", "base"),
    [
        ("382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1", "pca"),
        ("builtin:kmeans", "kmeans"),
        ("/home/me/dbscan_container", "dbscan-container"),
        ("file:///srv/models/echo/", "echo"),
        ("___", "training-job"),
    ],
)
def test_base_names_from_images(image: str, base: str) -> None:
    assert naming.base_name_from_image(image, "training-job") == base


@pytest.mark.parametrize("algorithm", ["pca", "kmeans"])
def test_image_uris_match_sagemakers_and_batchform_runs_them(algorithm: str) -> None:
    for region in ("us-east-1", "us-west-2", "eu-west-1", "cn-north-1", "ap-southeast-2"):
        uri = image_uris.retrieve(algorithm, region)
        assert uri == sm_image_uris.retrieve(algorithm, region)
        assert builtin_algorithm(uri) == algorithm


def test_image_uris_defaults_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert image_uris.retrieve("pca") == "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert image_uris.retrieve("kmeans", version="latest").endswith(
        "us-west-2.amazonaws.com/kmeans:latest"
    )
    with pytest.raises(ValueError, match=r"cannot run SageMaker's 'xgboost' image.*pca, kmeans"):
        image_uris.retrieve("xgboost", "us-east-1", version="1.7-1")
    v1 = image_uris.get_image_uri("us-west-2", "pca", "latest")
    assert v1 == "174872318107.dkr.ecr.us-west-2.amazonaws.com/pca:latest"
    with pytest.raises(ValueError, match="Unsupported pca version: 2"):
        image_uris.retrieve("pca", version="2")
    with pytest.raises(ValueError, match="Unsupported region: mars-1"):
        image_uris.retrieve("pca", "mars-1")


def test_bucket_urls() -> None:
    assert buckets.bucket_url("my-bucket") == "s3://my-bucket"
    assert buckets.bucket_url("/data/bucket/") == "/data/bucket"
    assert buckets.bucket_url("file:///data/bucket") == "/data/bucket"
    with pytest.raises(ValueError, match="S3 bucket name"):
        buckets.bucket_url("s3://my-bucket/key")
    assert buckets.join_url("s3://b", "/a/", None, "", "c") == "s3://b/a/c"
    assert buckets.join_url("/x") == "/x"


def test_upload_and_download_a_folder_and_a_file(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.csv").write_text("1\n")
    (source / "nested" / "b.csv").write_text("2\n")
    bucket = str(tmp_path / "bucket")
    sizes: list[int] = []
    prefix = buckets.upload(str(source), buckets.join_url(bucket, "data"), sizes.append)
    assert prefix == f"{bucket}/data"
    assert (tmp_path / "bucket" / "data" / "nested" / "b.csv").read_text() == "2\n"
    assert sizes == [2, 2]
    single = buckets.upload(str(source / "a.csv"), buckets.join_url(bucket, "one"))
    assert single == f"{bucket}/one/a.csv"
    written = buckets.download(f"{bucket}/data", str(tmp_path / "down"))
    assert sorted(Path(p).relative_to(tmp_path / "down").as_posix() for p in written) == [
        "data/a.csv",
        "data/nested/b.csv",
    ]
    with pytest.raises(FileNotFoundError):
        buckets.upload(str(tmp_path / "missing"), bucket)


def test_file_log_reader_reads_whole_lines_as_the_file_grows(tmp_path: Path) -> None:
    log = tmp_path / "log"
    reader = FileLogReader(log)
    assert reader.read() == []  # not written yet
    log.write_text("2024-05-01T12:30:45.123Z [data-log] starting\n2024-05-01T12:30:46.000Z [inst")
    (first,) = reader.read()
    assert first == LogLine(1714566645123, "data-log", "starting")
    with log.open("a") as file:
        file.write("ance-1] model ready\n")
    assert [line.message for line in reader.read()] == ["model ready"]
    assert reader.read() == []
    assert parse_line("no stamp here") == LogLine(0, "data-log", "no stamp here")


def test_follow_logs_reads_lines_written_before_the_end() -> None:
    class Reader:
        def __init__(self) -> None:
            self.batches = [["a"], [], ["b", "c"], []]

        def read(self) -> list[LogLine]:
            lines = self.batches.pop(0) if self.batches else []
            return [LogLine(0, "s", text) for text in lines]

    ends = iter([False, True])
    printed: list[str] = []
    follow_logs(Reader(), lambda: next(ends), wait=True, poll=0.01, echo=printed.append)
    assert printed == ["a", "b", "c"]


def test_embedded_refusals_become_api_errors_with_sagemakers_codes() -> None:
    cases = [
        (InvalidRequest("bad"), "ValidationException"),
        (ResourceNotFound("gone"), "ResourceNotFound"),
        (
            SpecValidationError([("modelName", "Member must not be null", None)]),
            "ValidationException",
        ),
    ]
    for error, code in cases:
        with pytest.raises(ApiCallError) as caught, translated_errors():
            raise error
        assert caught.value.code == code
    with pytest.raises(SdkModelError) as model_error, translated_errors():
        raise ModelError(400, "feature_dim mismatch")
    assert model_error.value.original_status_code == 400
    assert model_error.value.original_message == "feature_dim mismatch"
