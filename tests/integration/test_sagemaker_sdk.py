"""The real sagemaker v2 SDK, unchanged, against `batchform server` and a loopback S3.

This is the recipe of docs/sagemaker-sdk.md: the SDK's clients find the server through
botocore's per-service endpoint variables, its data through an S3-compatible server,
and its default bucket through the server's STS GetCallerIdentity.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.serverproc import Server, running_server

REGION = "us-east-1"
FEATURES = 8
COMPONENTS = 3
ROLE = "arn:aws:iam::000000000000:role/batchform"
BUCKET = "sagemaker-batchform"


@pytest.fixture(scope="module")
def sdk_server(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("sdk-home")
    config = home / "sagemaker-config.yaml"
    # The SDK would otherwise report usage to an AWS address this machine cannot reach.
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
        "      TelemetryOptOut: true\n"
    )
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    with (
        running_server(home / "server", env=credentials) as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in credentials.items():
            patch.setenv(name, value)
        for service in ("SAGEMAKER", "SAGEMAKER_RUNTIME", "CLOUDWATCH_LOGS", "STS"):
            patch.setenv(f"AWS_ENDPOINT_URL_{service}", server.url)
        patch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
        patch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        yield server


@pytest.fixture(scope="module")
def session(sdk_server: Server) -> Any:
    import boto3
    import sagemaker

    # The SDK asks STS's regional AWS address (not the endpoint variable) for the account
    # behind its default bucket's name, so the recipe names the bucket.
    return sagemaker.Session(boto_session=boto3.Session(region_name=REGION), default_bucket=BUCKET)


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    rng = np.random.default_rng(11)
    basis = rng.normal(size=(COMPONENTS, FEATURES))
    return rng.normal(size=(300, COMPONENTS)) @ basis + 0.01 * rng.normal(size=(300, FEATURES))


@pytest.fixture(scope="module")
def train_uri(session: Any, features: np.ndarray) -> str:
    text = io.StringIO()
    np.savetxt(text, features, delimiter=",", fmt="%.6f")
    bucket = session.default_bucket()
    session.boto_session.client("s3").put_object(
        Bucket=bucket, Key="pca/train/part-0.csv", Body=text.getvalue().encode()
    )
    return f"s3://{bucket}/pca/train/"


@pytest.fixture(scope="module")
def estimator(session: Any, train_uri: str) -> Any:
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    pca = Estimator(
        image_uri=image_uris.retrieve("pca", REGION),
        role=ROLE,
        instance_count=1,
        instance_type="ml.c4.xlarge",
        output_path=f"s3://{session.default_bucket()}/pca/output",
        sagemaker_session=session,
    )
    pca.set_hyperparameters(
        feature_dim=FEATURES, num_components=COMPONENTS, subtract_mean=True, mini_batch_size=100
    )
    pca.fit({"train": TrainingInput(train_uri, content_type="text/csv;label_size=0")}, logs="All")
    return pca


def test_the_server_answers_sts_caller_identity(session: Any) -> None:
    identity = session.boto_session.client("sts").get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == "arn:aws:iam::000000000000:user/testing"


def test_the_default_bucket_is_created_on_the_s3_server(session: Any) -> None:
    assert session.default_bucket() == BUCKET
    session.boto_session.client("s3").head_bucket(Bucket=BUCKET)


def test_estimator_fit_trains_pca_and_names_its_model_artifacts(estimator: Any) -> None:
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert estimator.model_data == description["ModelArtifacts"]["S3ModelArtifacts"]
    assert estimator.model_data.endswith("/output/model.tar.gz")


def test_transformer_writes_one_projection_per_line(
    estimator: Any, session: Any, train_uri: str, features: np.ndarray
) -> None:
    import json

    output = f"s3://{session.default_bucket()}/pca/transform"
    transformer = estimator.transformer(
        instance_count=1,
        instance_type="ml.c4.xlarge",
        strategy="MultiRecord",
        assemble_with="Line",
        output_path=output,
    )
    transformer.transform(train_uri, content_type="text/csv", split_type="Line", wait=True)
    description = transformer.sagemaker_session.describe_transform_job(
        transformer._current_job_name
    )
    assert description["TransformJobStatus"] == "Completed"
    bucket = session.default_bucket()
    body = (
        session.boto_session.client("s3")
        .get_object(Bucket=bucket, Key="pca/transform/part-0.csv.out")["Body"]
        .read()
    )
    lines = body.decode().splitlines()
    projections = [json.loads(line)["projections"] for line in lines]
    rows = [projection for batch in projections for projection in batch]
    assert len(rows) == len(features)
    assert all(len(row["projection"]) == COMPONENTS for row in rows)


def test_deploy_predict_and_delete_the_endpoint(
    estimator: Any, session: Any, features: np.ndarray
) -> None:
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    predictor = estimator.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    try:
        whole = predictor.predict(features[:40])
        pieces = [predictor.predict(batch) for batch in np.array_split(features[:40], 4)]
    finally:
        predictor.delete_endpoint()
    projections = [row["projection"] for row in whole["projections"]]
    assert len(projections) == 40
    assert all(len(row) == COMPONENTS for row in projections)
    piecewise = [row["projection"] for piece in pieces for row in piece["projections"]]
    np.testing.assert_allclose(piecewise, projections, atol=1e-5)
    endpoints = session.sagemaker_client.list_endpoints()["Endpoints"]
    assert predictor.endpoint_name not in [e["EndpointName"] for e in endpoints]


def test_a_model_created_from_the_job_transforms_new_data(
    estimator: Any, session: Any, train_uri: str
) -> None:
    from sagemaker.transformer import Transformer

    name = session.create_model_from_job(
        estimator.latest_training_job.name, name="pca-from-job", role=ROLE
    )
    transformer = Transformer(
        model_name=name,
        instance_count=1,
        instance_type="ml.m4.xlarge",
        strategy="SingleRecord",
        assemble_with="Line",
        output_path=f"s3://{BUCKET}/pca/from-job",
        sagemaker_session=session,
    )
    transformer.transform(train_uri, content_type="text/csv", split_type="Line", wait=True)
    body = (
        session.boto_session.client("s3")
        .get_object(Bucket=BUCKET, Key="pca/from-job/part-0.csv.out")["Body"]
        .read()
    )
    assert len(body.decode().splitlines()) == 300  # SingleRecord: one answer per row
