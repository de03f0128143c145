"""The Python SDK end to end, as the seed notebook uses the sagemaker SDK: built-in PCA
trained, batch-transformed, a model made from the job for new data, and (once endpoints
exist) deployed and invoked; embedded and against a real `batchform server`, with data
on local folders and on an S3-compatible server on loopback."""

from __future__ import annotations

import json
import re
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchform import sdk
from batchform.sdk.backend import JobKind
from tests.serverproc import running_server

SLOW = Path(__file__).resolve().parents[1] / "handlers" / "slow"
FEATURES, COMPONENTS = 20, 4


def endpoints_served() -> bool:
    """Whether this batchform serves endpoints yet (CreateEndpoint is an operation)."""
    from batchform.service import Service, ServiceSettings

    with tempfile.TemporaryDirectory() as folder:
        service = Service(ServiceSettings(database_url=f"sqlite:///{folder}/probe.db"))
        try:
            return "CreateEndpoint" in service.operations()
        finally:
            service.close()


needs_endpoints = pytest.mark.skipif(
    not endpoints_served(), reason="this batchform does not serve endpoints yet"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def ratings(tmp_path: Path) -> tuple[np.ndarray, Path, Path]:
    """A 0/1 items x users matrix of five taste clusters (so its top principal components
    stand well apart): all of it to train on, its first 50 rows as "new" data."""
    rng = np.random.default_rng(1)
    cluster = rng.integers(0, COMPONENTS + 1, size=300)
    taste = rng.random((COMPONENTS + 1, FEATURES)) < 0.5
    data = (rng.random((300, FEATURES)) < 0.05 + 0.8 * taste[cluster]).astype(int)
    (tmp_path / "data").mkdir()
    np.savetxt(tmp_path / "data" / "train.csv", data, delimiter=",", fmt="%d")
    np.savetxt(tmp_path / "data" / "test.csv", data[:50], delimiter=",", fmt="%d")
    return data, tmp_path / "data" / "train.csv", tmp_path / "data" / "test.csv"


def pca_estimator(sess: sdk.Session, output_path: str, mode: str) -> sdk.Estimator:
    pca = sdk.Estimator(
        image_uri=sdk.image_uris.retrieve("pca", sess.boto_region_name),
        role=sdk.get_execution_role(),
        instance_count=1,
        instance_type="local",
        output_path=output_path,
        sagemaker_session=sess,
    )
    pca.set_hyperparameters(
        feature_dim=FEATURES,
        num_components=COMPONENTS,
        subtract_mean=True,
        algorithm_mode=mode,
        mini_batch_size=100,
    )
    return pca


def projections(text: str) -> np.ndarray:
    """PCA's answers, JSON (`{"projections": [...]}` a batch) or JSON Lines, as rows."""
    rows: list[list[float]] = []
    for line in text.splitlines():
        answer = json.loads(line)
        found = answer.get("projections", [answer])
        rows.extend(record["projection"] for record in found)
    return np.array(rows)


def assert_principal_components(data: np.ndarray, found: np.ndarray, atol: float) -> None:
    centered = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vt[:COMPONENTS][::-1].T  # SageMaker's order: least significant first
    signs = np.sign(np.sum(found * expected, axis=0))
    np.testing.assert_allclose(found * signs, expected, atol=atol)


def test_seed_workflow_embedded(
    home: Path, ratings: tuple[np.ndarray, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data, train_csv, test_csv = ratings
    with sdk.Session() as sess:
        assert sess.default_bucket() == str(home / "bucket")
        train_uri = sess.upload_data(str(train_csv), key_prefix="demo/pca/train")
        test_uri = sess.upload_data(str(test_csv), key_prefix="demo/pca/test")
        assert train_uri == f"{home}/bucket/demo/pca/train/train.csv"
        bucket = sess.default_bucket_url()

        pca = pca_estimator(sess, f"{bucket}/demo/pca/output", "regular")
        train = sdk.inputs.TrainingInput(train_uri, content_type="text/csv;label_size=0")
        pca.fit({"train": train})
        job_name = pca.latest_training_job.name  # type: ignore[union-attr]
        assert Path(str(pca.model_data)).is_file()
        fit_output = capsys.readouterr().out
        assert job_name in fit_output and "Training seconds:" in fit_output

        transformer = pca.transformer(
            instance_count=1,
            instance_type="local",
            strategy="MultiRecord",
            assemble_with="Line",
            output_path=f"{bucket}/demo/pca/transform/train",
        )
        transformer.transform(train_uri, content_type="text/csv", split_type="Line")
        transformer.wait()
        assert "BatchStrategy=MULTI_RECORD" in capsys.readouterr().out
        train_out = Path(f"{bucket}/demo/pca/transform/train/train.csv.out").read_text()
        train_projections = projections(train_out)
        assert train_projections.shape == (300, COMPONENTS)
        assert_principal_components(data, train_projections, atol=1e-4)

        model_name = sess.create_model_from_job(job_name, name=f"{job_name}-test")
        new_data = sdk.Transformer(
            model_name,
            1,
            "local",
            strategy="MultiRecord",
            assemble_with="Line",
            accept="application/jsonlines",
            output_path=f"{bucket}/demo/pca/transform/test",
            sagemaker_session=sess,
        )
        new_data.transform(test_uri, content_type="text/csv", split_type="Line", logs=False)
        test_out = Path(f"{bucket}/demo/pca/transform/test/test.csv.out").read_text()
        np.testing.assert_allclose(projections(test_out), train_projections[:50], atol=1e-6)

        attached = sdk.Estimator.attach(job_name, sagemaker_session=sess)
        assert attached.model_data == pca.model_data
        assert attached.hyperparameters()["num_components"] == str(COMPONENTS)
        job = sdk.Transformer.attach(new_data.latest_transform_job.name, sess)  # type: ignore[union-attr]
        assert job.output_path == f"{bucket}/demo/pca/transform/test"
        assert job.latest_transform_job.describe()["TransformJobStatus"] == "Completed"  # type: ignore[union-attr]


def test_seed_workflow_against_a_server_with_s3(
    tmp_path: Path,
    home: Path,
    s3_client: Any,
    s3_bucket: str,
    ratings: tuple[np.ndarray, Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, train_csv, test_csv = ratings
    bucket = s3_bucket.removeprefix("s3://")
    prefix = "sagemaker/DEMO-batch-transform"
    with running_server(tmp_path / "server") as server:
        sess = sdk.Session(endpoint_url=server.url, default_bucket=bucket)
        assert not sess.embedded and sess.default_bucket() == bucket
        fresh = sdk.Session(endpoint_url=server.url, default_bucket=f"{bucket}-made")
        fresh.default_bucket()  # a default bucket that does not exist yet is created
        s3_client.head_bucket(Bucket=f"{bucket}-made")
        train_s3 = sess.upload_data(str(train_csv), bucket=bucket, key_prefix=f"{prefix}/pca/train")
        test_s3 = sess.upload_data(str(test_csv), key_prefix=f"{prefix}/pca/test")
        assert train_s3 == f"s3://{bucket}/{prefix}/pca/train/train.csv"

        pca = pca_estimator(sess, f"s3://{bucket}/{prefix}/pca/output", "randomized")
        pca.fit({"train": sdk.inputs.TrainingInput(train_s3, content_type="text/csv;label_size=0")})
        job_name = pca.latest_training_job.name  # type: ignore[union-attr]
        assert pca.model_data == f"s3://{bucket}/{prefix}/pca/output/{job_name}/output/model.tar.gz"
        assert job_name in capsys.readouterr().out  # the log, read through CloudWatch Logs

        transformer = pca.transformer(
            instance_count=1,
            instance_type="local",
            strategy="MultiRecord",
            assemble_with="Line",
            output_path=f"s3://{bucket}/{prefix}/pca/transform/train",
        )
        transformer.transform(train_s3, content_type="text/csv", split_type="Line")
        assert "BatchStrategy=MULTI_RECORD" in capsys.readouterr().out
        key = f"{prefix}/pca/transform/train/train.csv.out"
        train_out = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        train_projections = projections(train_out)
        assert_principal_components(data, train_projections, atol=1e-3)

        model_name = sess.create_model_from_job(job_name, name=f"{job_name}-test")
        new_data = sdk.Transformer(
            model_name,
            1,
            "local",
            strategy="MultiRecord",
            assemble_with="Line",
            sagemaker_session=sess,
        )
        new_data.transform(test_s3, content_type="text/csv", split_type="Line", wait=False)
        new_data.wait(logs=False)
        assert new_data.output_path == f"s3://{bucket}/{new_data.latest_transform_job.name}"  # type: ignore[union-attr]
        key = f"{new_data.latest_transform_job.name}/test.csv.out"  # type: ignore[union-attr]
        test_out = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        np.testing.assert_allclose(projections(test_out), train_projections[:50], atol=1e-6)


def test_failures_reach_the_user_with_their_reasons(
    home: Path, ratings: tuple[np.ndarray, Path, Path]
) -> None:
    _, train_csv, _ = ratings
    with sdk.Session() as sess:
        xgboost = sdk.Estimator(
            image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            instance_count=1,
            instance_type="local",
            sagemaker_session=sess,
        )
        with pytest.raises(sdk.ApiCallError, match=re.escape("sagemaker-xgboost:1.7-1")) as refused:
            xgboost.fit(str(train_csv))
        assert refused.value.code == "ValidationException"

        wrong = pca_estimator(sess, f"{sess.default_bucket_url()}/models", "regular")
        wrong.set_hyperparameters(feature_dim=7)
        with pytest.raises(sdk.UnexpectedStatusException, match="feature_dim") as failed:
            csv_input = sdk.inputs.TrainingInput(str(train_csv), content_type="text/csv")
            wrong.fit({"train": csv_input}, logs="None")
        assert failed.value.actual_status == "Failed"
        with pytest.raises(sdk.ApiCallError) as unknown:
            sess.describe_transform_job("no-such-job")
        assert unknown.value.code == "ResourceNotFound"


def test_stop_a_running_transform_job(home: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("".join(f"{i}\n" for i in range(200)))
    with sdk.Session() as sess:
        model = sdk.Model(str(SLOW), env={"SLOW_SECONDS": "600"}, sagemaker_session=sess)
        transformer = model.transformer(
            1, "local", strategy="SingleRecord", output_path=str(tmp_path / "out")
        )
        transformer.transform(
            str(tmp_path / "in"), content_type="text/csv", split_type="Line", wait=False
        )
        job = transformer.latest_transform_job
        assert job is not None
        _wait_until_running(sess, job.name)
        transformer.stop_transform_job()
        assert job.describe()["TransformJobStatus"] == "Stopped"
    assert not (tmp_path / "out" / "rows.csv.out").exists()


def _wait_until_running(sess: sdk.Session, job_name: str) -> None:
    """Until the model has started (the job's log shows its settings line)."""
    reader = sess.backend.log_reader(JobKind.TRANSFORM, job_name)
    seen = ""
    for _ in range(600):
        seen += "".join(line.message for line in reader.read())
        if "BatchStrategy=" in seen:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {job_name} never started its model")


@needs_endpoints
@pytest.mark.parametrize("where", ["embedded", "server"])
def test_deploy_predict_and_delete(
    where: str, tmp_path: Path, home: Path, ratings: tuple[np.ndarray, Path, Path]
) -> None:
    data, train_csv, _ = ratings
    serving = running_server(tmp_path / "server") if where == "server" else nullcontext()
    with serving as server:
        sess = sdk.Session(endpoint_url=server.url if server else None)
        pca = pca_estimator(sess, f"{sess.default_bucket_url()}/models", "regular")
        pca.fit({"train": sdk.inputs.TrainingInput(str(train_csv), content_type="text/csv")})
        predictor = pca.deploy(
            initial_instance_count=1,
            instance_type="local",
            serializer=sdk.serializers.CSVSerializer(),
            deserializer=sdk.deserializers.JSONDeserializer(),
        )
        assert sess.describe_endpoint(predictor.endpoint_name)["EndpointStatus"] == "InService"
        components: list[list[float]] = []
        for array in np.array_split(data, 5):  # the notebook's loop over mini-batches
            result = predictor.predict(array)
            components += [r["projection"] for r in result["projections"]]
        assert_principal_components(data, np.array(components), atol=1e-4)

        with pytest.raises(sdk.ModelError) as model_error:
            predictor.predict(np.ones((2, FEATURES + 3)))
        assert model_error.value.original_status_code is not None

        predictor.delete_model()
        predictor.delete_endpoint()
        with pytest.raises(sdk.ApiCallError):
            _wait_gone(sess, predictor.endpoint_name)
        sess.close()


def _wait_gone(sess: sdk.Session, endpoint_name: str) -> None:
    """Describe until the endpoint is gone (ApiCallError); it may be Deleting for a while."""
    for _ in range(600):
        sess.describe_endpoint(endpoint_name)
        time.sleep(0.1)
