"""What the SDK's classes ask of the service: the SageMaker requests they send and how
they read the answers, over a scripted backend (no service, no processes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from batchform import sdk
from batchform.sdk.backend import Invocation, InvokeRequest, JobKind, LogLine
from batchform.sdk.exceptions import ApiCallError

PCA_IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"
NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | Exception


class ListReader:
    def __init__(self, lines: list[str]) -> None:
        self.pending = [LogLine(0, "data-log", line) for line in lines]

    def read(self) -> list[LogLine]:
        lines, self.pending = self.pending, []
        return lines


class FakeBackend:
    """Answers operations from a script; records every call and invocation."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.invocations: list[InvokeRequest] = []
        self.answer = Invocation(b'{"ok": true}', "application/json", "trace=1", "AllTraffic")
        self.log_lines = ["line one", "line two"]
        self.closed = False

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, body))
        answer = self.answers.get(operation, {})
        if isinstance(answer, Exception):
            raise answer
        return answer(body) if callable(answer) else answer

    def invoke_endpoint(self, request: InvokeRequest) -> Invocation:
        self.invocations.append(request)
        return self.answer

    def log_reader(self, kind: JobKind, job_name: str) -> ListReader:
        return ListReader(self.log_lines)

    def close(self) -> None:
        self.closed = True

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == operation]

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]


def training_job(status: str = "Completed", **extra: Any) -> Callable[[dict[str, Any]], Any]:
    def describe(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "TrainingJobName": body["TrainingJobName"],
            "TrainingJobStatus": status,
            "AlgorithmSpecification": {"TrainingImage": PCA_IMAGE, "TrainingInputMode": "File"},
            "ModelArtifacts": {"S3ModelArtifacts": f"/models/{body['TrainingJobName']}.tar.gz"},
            "OutputDataConfig": {"S3OutputPath": "/models"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "local", "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "HyperParameters": {"feature_dim": "20"},
            "TrainingTimeInSeconds": 3,
            **extra,
        }

    return describe


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATCHFORM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def session(backend: FakeBackend, printed: list[str] | None = None) -> sdk.Session:
    sess = sdk.Session(backend=backend)
    sess.echo = (printed if printed is not None else []).append
    return sess


def estimator(sess: sdk.Session, **options: Any) -> sdk.Estimator:
    return sdk.Estimator(
        image_uri=PCA_IMAGE,
        instance_count=1,
        instance_type="local",
        output_path="/models",
        sagemaker_session=sess,
        **options,
    )


# Training ------------------------------------------------------------------------------


def test_fit_sends_the_training_job_sagemaker_would(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob=training_job())
    printed: list[str] = []
    pca = estimator(session(backend, printed), role="arn:aws:iam::111111111111:role/R")
    pca.set_hyperparameters(feature_dim=20, num_components=4, subtract_mean=True)
    train = sdk.inputs.TrainingInput("/data/train", content_type="text/csv;label_size=0")
    pca.fit({"train": train})
    (body,) = backend.bodies("CreateTrainingJob")
    name = body.pop("TrainingJobName")
    assert NAME.match(name) and name.startswith("pca-")
    assert body == {
        "AlgorithmSpecification": {"TrainingImage": PCA_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::111111111111:role/R",
        "HyperParameters": {"feature_dim": "20", "num_components": "4", "subtract_mean": "True"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "/data/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "text/csv;label_size=0",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "/models"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "local", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "EnableNetworkIsolation": False,
    }
    assert printed == ["line one", "line two", "Training seconds: 3", "Billable seconds: 3"]
    assert pca.latest_training_job is not None and pca.latest_training_job.name == name
    assert pca.model_data == f"/models/{name}.tar.gz"


def test_fit_inputs_a_url_a_model_channel_and_a_single_input_mode(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob=training_job())
    pca = estimator(session(backend), model_uri="/models/start.tar.gz")
    pca.fit("/data/train", wait=False)
    channels = backend.bodies("CreateTrainingJob")[0]["InputDataConfig"]
    assert [c["ChannelName"] for c in channels] == ["training", "model"]
    assert channels[1]["ContentType"] == "application/x-sagemaker-model"
    pca.fit(sdk.inputs.TrainingInput("/data", input_mode="Pipe"), wait=False, job_name="given")
    second = backend.bodies("CreateTrainingJob")[1]
    assert second["TrainingJobName"] == "given"
    assert second["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert backend.bodies("DescribeTrainingJob") == []  # wait=False does not wait


def test_a_failed_training_job_raises_with_its_reason(home: Path) -> None:
    backend = FakeBackend(
        DescribeTrainingJob=training_job("Failed", FailureReason="bad feature_dim")
    )
    pca = estimator(session(backend))
    with pytest.raises(sdk.UnexpectedStatusException, match="bad feature_dim") as caught:
        pca.fit("/data", logs="None")
    assert caught.value.actual_status == "Failed"
    assert isinstance(caught.value, ValueError)  # as the sagemaker SDK's


def test_estimator_options_it_cannot_honour_are_refused(home: Path) -> None:
    backend = FakeBackend()
    with pytest.raises(ValueError, match="entry_point, source_dir"):
        estimator(session(backend), source_dir="src", entry_point="train.py")
    estimator(session(backend), disable_profiler=True, enable_sagemaker_metrics=True)
    with pytest.raises(ValueError, match="instance_count and instance_type"):
        sdk.Estimator(PCA_IMAGE, sagemaker_session=session(backend)).fit("/d", wait=False)


def test_attach_rebuilds_the_estimator_and_waits(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob=training_job())
    attached = sdk.Estimator.attach(
        "pca-2024-01-02-03-04-05-678", sagemaker_session=session(backend)
    )
    assert attached.base_job_name == "pca"
    assert attached.image_uri == PCA_IMAGE
    assert attached.hyperparameters() == {"feature_dim": "20"}
    assert attached.model_data == "/models/pca-2024-01-02-03-04-05-678.tar.gz"


def test_estimator_transformer_creates_a_model_of_the_job(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob=training_job())
    pca = estimator(session(backend))
    pca.fit("/data", logs=False)
    transformer = pca.transformer(1, "local", strategy="MultiRecord", assemble_with="Line")
    (model,) = backend.bodies("CreateModel")
    assert model["ModelName"] == transformer.model_name and model["ModelName"].startswith("pca-")
    assert model["PrimaryContainer"] == {
        "Image": PCA_IMAGE,
        "Environment": {},
        "ModelDataUrl": pca.model_data,
    }
    assert transformer.base_transform_job_name == "pca"


# Transform -----------------------------------------------------------------------------


def test_transform_sends_every_option(home: Path) -> None:
    backend = FakeBackend(DescribeTransformJob={"TransformJobStatus": "Completed"})
    transformer = sdk.Transformer(
        "my-model",
        2,
        "ml.m5.large",
        strategy="SingleRecord",
        assemble_with="Line",
        output_path="s3://bucket/out",
        output_kms_key="key",
        accept="application/jsonlines",
        max_concurrent_transforms=4,
        max_payload=1,
        tags={"team": "ml"},
        env={"MODEL_MODE": "fast"},
        base_transform_job_name="base",
        sagemaker_session=session(backend),
        volume_kms_key="vkey",
        on_error="isolate",
        max_errors="1%",
        split_objects_over_mb=64,
    )
    transformer.transform(
        "s3://bucket/manifest",
        data_type="ManifestFile",
        content_type="application/json",
        compression_type="Gzip",
        split_type="Line",
        job_name="job-1",
        input_filter="$.features",
        output_filter="$['id','SageMakerOutput']",
        join_source="Input",
        model_client_config={"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1},
        wait=False,
    )
    assert backend.bodies("CreateTransformJob") == [
        {
            "TransformJobName": "job-1",
            "ModelName": "my-model",
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://bucket/manifest"}
                },
                "ContentType": "application/json",
                "CompressionType": "Gzip",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": "s3://bucket/out",
                "KmsKeyId": "key",
                "AssembleWith": "Line",
                "Accept": "application/jsonlines",
            },
            "TransformResources": {
                "InstanceCount": 2,
                "InstanceType": "ml.m5.large",
                "VolumeKmsKeyId": "vkey",
            },
            "BatchStrategy": "SingleRecord",
            "MaxConcurrentTransforms": 4,
            "MaxPayloadInMB": 1,
            "Environment": {
                "MODEL_MODE": "fast",
                "BATCHFORM_ON_ERROR": "isolate",
                "BATCHFORM_MAX_ERRORS": "1%",
                "BATCHFORM_SPLIT_OBJECTS_OVER_MB": "64",
            },
            "Tags": [{"Key": "team", "Value": "ml"}],
            "DataProcessing": {
                "InputFilter": "$.features",
                "OutputFilter": "$['id','SageMakerOutput']",
                "JoinSource": "Input",
            },
            "ModelClientConfig": {"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1},
        }
    ]


def test_transform_defaults_name_and_output_path(home: Path) -> None:
    model = {"PrimaryContainer": {"Image": "builtin:kmeans"}}
    backend = FakeBackend(
        DescribeModel=model, DescribeTransformJob={"TransformJobStatus": "Completed"}
    )
    transformer = sdk.Transformer("m", 1, "local", sagemaker_session=session(backend))
    transformer.transform("/data", logs=False)
    (body,) = backend.bodies("CreateTransformJob")
    assert body["TransformJobName"].startswith("kmeans-")
    assert body["TransformOutput"] == {"S3OutputPath": f"{home}/bucket/{body['TransformJobName']}"}
    assert (home / "bucket").is_dir()  # the default bucket is made on first use
    transformer.transform("/data", logs=False)
    second = backend.bodies("CreateTransformJob")[1]
    assert second["TransformOutput"]["S3OutputPath"].endswith(second["TransformJobName"])


def test_a_failed_transform_job_raises_and_stopping_an_ended_one_is_quiet(home: Path) -> None:
    statuses = iter(["InProgress", "Failed"])
    backend = FakeBackend(
        DescribeTransformJob=lambda _: {
            "TransformJobStatus": next(statuses, "Failed"),
            "FailureReason": "object a.csv: model returned HTTP status 500",
        }
    )
    transformer = sdk.Transformer(
        "m", 1, "local", output_path="/o", sagemaker_session=session(backend)
    )
    with pytest.raises(sdk.UnexpectedStatusException, match=r"Transform job .*a\.csv"):
        transformer.transform("/data", job_name="t1")
    backend.answers["StopTransformJob"] = ApiCallError("ValidationException", "already ended")
    transformer.stop_transform_job(wait=False)  # an ended job: nothing to stop, no error
    assert backend.bodies("StopTransformJob") == [{"TransformJobName": "t1"}]
    with pytest.raises(ValueError, match="No transform job"):
        sdk.Transformer("m", 1, "local", sagemaker_session=session(backend)).wait()


def test_transformer_attach(home: Path) -> None:
    described = {
        "TransformJobName": "job-9",
        "ModelName": "m",
        "TransformJobStatus": "Completed",
        "BatchStrategy": "MultiRecord",
        "TransformOutput": {"S3OutputPath": "/out", "AssembleWith": "Line"},
        "TransformResources": {"InstanceCount": 2, "InstanceType": "local"},
        "MaxPayloadInMB": 6,
    }
    backend = FakeBackend(DescribeTransformJob=described)
    attached = sdk.Transformer.attach("job-9", sagemaker_session=session(backend))
    assert (attached.model_name, attached.instance_count, attached.strategy) == (
        "m",
        2,
        "MultiRecord",
    )
    assert attached.output_path == "/out" and attached.max_payload == 6
    attached.wait(logs=False)


# Models and endpoints ------------------------------------------------------------------


def endpoint_statuses(*statuses: str, reason: str = "") -> Callable[[dict[str, Any]], Any]:
    remaining = list(statuses)

    def describe(body: dict[str, Any]) -> dict[str, Any]:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        answer = {"EndpointName": body["EndpointName"], "EndpointStatus": status}
        answer["EndpointConfigName"] = body["EndpointName"]
        return {**answer, "FailureReason": reason} if reason else answer

    return describe


def test_model_deploy_creates_model_config_and_endpoint(home: Path) -> None:
    backend = FakeBackend(DescribeEndpoint=endpoint_statuses("Creating", "InService"))
    model = sdk.Model(
        PCA_IMAGE, "/models/m.tar.gz", env={"A": "1"}, sagemaker_session=session(backend)
    )
    predictor = model.deploy(
        initial_instance_count=2,
        instance_type="ml.m5.large",
        serializer=sdk.serializers.CSVSerializer(),
        deserializer=sdk.deserializers.JSONDeserializer(),
    )
    assert backend.operations()[:3] == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint"]
    assert backend.operations()[3:] == ["DescribeEndpoint", "DescribeEndpoint"]
    assert model.name is not None and model.name.startswith("pca-")
    assert model.endpoint_name is not None and model.endpoint_name != model.name
    (config,) = backend.bodies("CreateEndpointConfig")
    assert config == {
        "EndpointConfigName": model.endpoint_name,
        "ProductionVariants": [
            {
                "ModelName": model.name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 2,
                "VariantName": "AllTraffic",
                "InitialVariantWeight": 1,
            }
        ],
    }
    assert backend.bodies("CreateEndpoint") == [
        {"EndpointName": model.endpoint_name, "EndpointConfigName": model.endpoint_name}
    ]
    assert isinstance(predictor, sdk.Predictor)
    assert predictor.endpoint_name == model.endpoint_name
    assert predictor.content_type == "text/csv" and predictor.accept == ("application/json",)


def test_deploy_of_a_failing_endpoint_raises_its_reason(home: Path) -> None:
    backend = FakeBackend(DescribeEndpoint=endpoint_statuses("Failed", reason="ping failed"))
    model = sdk.Model(PCA_IMAGE, "/m.tar.gz", sagemaker_session=session(backend))
    with pytest.raises(sdk.UnexpectedStatusException, match="ping failed"):
        model.deploy(1, "local")
    with pytest.raises(ValueError, match="serverless_inference_config"):
        model.deploy(1, "local", serverless_inference_config=object())
    with pytest.raises(ValueError, match="instance type and instance count"):
        model.deploy()


def test_estimator_deploy_names_model_and_endpoint_alike(home: Path) -> None:
    backend = FakeBackend(
        DescribeTrainingJob=training_job(), DescribeEndpoint=endpoint_statuses("InService")
    )
    pca = estimator(session(backend))
    pca.fit("/data", logs=False)
    predictor = pca.deploy(1, "local", endpoint_name="pca-endpoint")
    (model,) = backend.bodies("CreateModel")
    assert predictor.endpoint_name == "pca-endpoint"
    assert model["ModelName"].startswith("pca-")
    assert (
        backend.bodies("CreateEndpointConfig")[0]["ProductionVariants"][0]["ModelName"]
        == (model["ModelName"])
    )


def test_predict_serializes_invokes_and_deserializes(home: Path) -> None:
    backend = FakeBackend()
    predictor = sdk.Predictor(
        "ep",
        sagemaker_session=session(backend),
        serializer=sdk.serializers.CSVSerializer(),
        deserializer=sdk.deserializers.JSONDeserializer(),
    )
    assert predictor.predict(np.array([[1, 2], [3, 4]]), custom_attributes="trace=1") == {
        "ok": True
    }
    predictor.predict([5, 6], initial_args={"ContentType": "text/plain"}, target_variant="v2")
    first, second = backend.invocations
    assert first == InvokeRequest("ep", b"1,2\n3,4", "text/csv", "application/json", "trace=1")
    assert (second.body, second.content_type, second.target_variant) == (b"5,6", "text/plain", "v2")
    with pytest.raises(ValueError, match="multi-model"):
        predictor.predict(b"x", target_model="m.tar.gz")


def test_default_predictor_sends_and_returns_bytes(home: Path) -> None:
    backend = FakeBackend()
    predictor = sdk.Predictor("ep", sagemaker_session=session(backend))
    assert predictor.endpoint == "ep"
    assert predictor.predict(b"\x00raw") == b'{"ok": true}'
    assert backend.invocations[0].content_type == "application/octet-stream"
    assert backend.invocations[0].accept == "*/*"


def test_delete_endpoint_config_and_models(home: Path) -> None:
    config = {"ProductionVariants": [{"ModelName": "m1"}, {"ModelName": "m2"}]}
    backend = FakeBackend(
        DescribeEndpoint={"EndpointConfigName": "cfg"}, DescribeEndpointConfig=config
    )
    predictor = sdk.Predictor("ep", sagemaker_session=session(backend))
    predictor.delete_endpoint()
    predictor.delete_model()  # after the endpoint is gone: the models were looked up before
    assert backend.bodies("DeleteEndpoint") == [{"EndpointName": "ep"}]
    assert backend.bodies("DeleteEndpointConfig") == [{"EndpointConfigName": "cfg"}]
    assert backend.bodies("DeleteModel") == [{"ModelName": "m1"}, {"ModelName": "m2"}]


# Session -------------------------------------------------------------------------------


def test_create_model_from_job_and_an_existing_model(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob=training_job(RoleArn="arn:aws:iam::1:role/R"))
    sess = session(backend)
    assert sess.create_model_from_job("pca-train", name="pca-test") == "pca-test"
    (body,) = backend.bodies("CreateModel")
    assert body == {
        "ModelName": "pca-test",
        "ExecutionRoleArn": "arn:aws:iam::1:role/R",
        "PrimaryContainer": {
            "Image": PCA_IMAGE,
            "Environment": {},
            "ModelDataUrl": "/models/pca-train.tar.gz",
        },
    }
    backend.answers["CreateModel"] = ApiCallError(
        "ValidationException", 'Cannot create already existing model "arn:...".'
    )
    assert sess.create_model("pca-test", primary_container={"Image": PCA_IMAGE}) == "pca-test"
    backend.answers["CreateModel"] = ApiCallError("ValidationException", "bad image")
    with pytest.raises(ApiCallError, match="bad image"):
        sess.create_model("other", primary_container={"Image": "x"})


def test_create_model_from_an_unfinished_job_says_so(home: Path) -> None:
    backend = FakeBackend(
        DescribeTrainingJob=training_job("InProgress", ModelArtifacts={"S3ModelArtifacts": ""})
    )
    with pytest.raises(ValueError, match=r"no model artifacts.*InProgress"):
        session(backend).create_model_from_job("pca-train")


def test_boto3_shaped_clients(home: Path) -> None:
    backend = FakeBackend(DescribeTrainingJob={"TrainingJobStatus": "Completed"})
    sess = session(backend)
    answer = sess.sagemaker_client.describe_training_job(TrainingJobName="j")
    assert answer == {"TrainingJobStatus": "Completed"}
    sess.sagemaker_client.list_transform_jobs(MaxResults=5)
    assert backend.calls[-1] == ("ListTransformJobs", {"MaxResults": 5})
    response = sess.sagemaker_runtime_client.invoke_endpoint(
        EndpointName="ep", Body="1,2", ContentType="text/csv"
    )
    assert response["Body"].read() == b'{"ok": true}'
    assert response["CustomAttributes"] == "trace=1"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_session_as_a_context_manager_closes_its_backend(home: Path) -> None:
    backend = FakeBackend()
    with sdk.Session(backend=backend) as sess:
        assert sess.embedded
    assert backend.closed
