"""`Estimator`: training jobs of any image, as the sagemaker SDK's generic Estimator runs
them, then the trained model deployed or batch-transformed.

The image is a built-in algorithm's registry URI (`image_uris.retrieve("pca")`) or
`builtin:<name>`, or a local folder holding a `train` executable (DESIGN 3.3, 3.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from batchform.sdk import buckets
from batchform.sdk.estimator_config import (
    DEFAULT_MAX_RUN,
    check_options,
    init_params_from_job,
    training_request,
)
from batchform.sdk.jobs import TrainingJob
from batchform.sdk.model import Model
from batchform.sdk.naming import base_name_from_image, name_from_base
from batchform.sdk.predictor import Predictor
from batchform.sdk.requests import Tags, format_tags
from batchform.sdk.session import Session, default_session, model_artifacts
from batchform.sdk.transformer import Transformer

JOB_CLASS_NAME = "training-job"


class Estimator:
    def __init__(
        self,
        image_uri: str,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        volume_size: int = 30,
        volume_kms_key: str | None = None,
        max_run: int = DEFAULT_MAX_RUN,
        input_mode: str = "File",
        output_path: str | None = None,
        output_kms_key: str | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        tags: Tags = None,
        subnets: list[str] | None = None,
        security_group_ids: list[str] | None = None,
        model_uri: str | None = None,
        model_channel_name: str = "model",
        metric_definitions: list[dict[str, str]] | None = None,
        encrypt_inter_container_traffic: bool | None = None,
        use_spot_instances: bool = False,
        max_wait: int | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        enable_network_isolation: bool | None = None,
        environment: Mapping[str, str] | None = None,
        max_retry_attempts: int | None = None,
        container_entry_point: list[str] | None = None,
        container_arguments: list[str] | None = None,
        **options: Any,
    ) -> None:
        """As the sagemaker SDK's Estimator. Options with no meaning here (profiler,
        metrics, warm pools) are accepted and ignored; those batchform cannot honour
        (script mode's source_dir/entry_point, debugger rules, instance groups) are
        refused with a ValueError naming them."""
        check_options(options)
        self.image_uri = image_uri
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.volume_size = volume_size
        self.volume_kms_key = volume_kms_key
        self.max_run = max_run
        self.input_mode = input_mode
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.base_job_name = base_job_name
        self.sagemaker_session = sagemaker_session or default_session()
        self._hyperparameters: dict[str, Any] = dict(hyperparameters or {})
        self.tags = format_tags(tags)
        self.subnets = subnets
        self.security_group_ids = security_group_ids
        self.model_uri = model_uri
        self.model_channel_name = model_channel_name
        self.metric_definitions = metric_definitions
        self.encrypt_inter_container_traffic = encrypt_inter_container_traffic
        self.use_spot_instances = use_spot_instances
        self.max_wait = max_wait
        self.checkpoint_s3_uri = checkpoint_s3_uri
        self.checkpoint_local_path = checkpoint_local_path
        self._enable_network_isolation = enable_network_isolation
        self.environment = dict(environment or {})
        self.max_retry_attempts = max_retry_attempts
        self.container_entry_point = container_entry_point
        self.container_arguments = container_arguments
        self.latest_training_job: TrainingJob | None = None
        self.jobs: list[TrainingJob] = []
        self._current_job_name: str | None = None

    # Configuration

    def training_image_uri(self) -> str:
        return self.image_uri

    def set_hyperparameters(self, **kwargs: Any) -> None:
        """Hyperparameters for the next fit; values are sent as str(value)."""
        self._hyperparameters.update(kwargs)

    def hyperparameters(self) -> dict[str, Any]:
        return self._hyperparameters

    def enable_network_isolation(self) -> bool:
        return bool(self._enable_network_isolation)

    def get_vpc_config(self, vpc_config_override: dict[str, Any] | None = None) -> Any:
        if vpc_config_override is not None:
            return vpc_config_override
        if self.subnets and self.security_group_ids:
            return {"Subnets": self.subnets, "SecurityGroupIds": self.security_group_ids}
        return None

    def _ensure_base_job_name(self) -> str:
        if not self.base_job_name:
            self.base_job_name = base_name_from_image(self.image_uri, JOB_CLASS_NAME)
        return self.base_job_name

    # Training

    def fit(
        self,
        inputs: Any = None,
        wait: bool = True,
        logs: str | bool = "All",
        job_name: str | None = None,
        experiment_config: dict[str, str] | None = None,
    ) -> None:
        """Start a training job on `inputs` (a URL, a TrainingInput, or a dict of channel
        name → either); with `wait`, until it ends, printing its log unless `logs` is
        "None" (UnexpectedStatusException unless it completed)."""
        self._current_job_name = job_name or name_from_base(self._ensure_base_job_name())
        if self.output_path is None:
            self.output_path = self.sagemaker_session.default_bucket_url() + "/"
        body = training_request(self, self._current_job_name, inputs, experiment_config)
        self.sagemaker_session.call("CreateTrainingJob", body)
        self.latest_training_job = TrainingJob(self.sagemaker_session, self._current_job_name)
        self.jobs.append(self.latest_training_job)
        if wait:
            self.latest_training_job.wait(logs=logs)

    def logs(self) -> None:
        """Print the latest training job's log, following it until the job ends."""
        job = self._latest()
        self.sagemaker_session.logs_for_job(job.name, wait=True)

    def _latest(self) -> TrainingJob:
        if self.latest_training_job is None:
            raise ValueError("Estimator is not associated with a training job")
        return self.latest_training_job

    @property
    def model_data(self) -> str | dict[str, Any]:
        """The trained model's URL (a ModelDataSource when written uncompressed)."""
        if self.latest_training_job is not None:
            return model_artifacts(self.latest_training_job.describe())
        if self.output_path is None or self._current_job_name is None:
            raise ValueError("Estimator is not associated with a training job")
        return buckets.join_url(self.output_path, self._current_job_name, "output/model.tar.gz")

    @classmethod
    def attach(
        cls,
        training_job_name: str,
        sagemaker_session: Session | None = None,
        model_channel_name: str = "model",
    ) -> Estimator:
        """An Estimator for an existing training job; waits (silently) until it ends."""
        session = sagemaker_session or default_session()
        job = session.describe_training_job(training_job_name)
        estimator = cls(sagemaker_session=session, **init_params_from_job(job, model_channel_name))
        estimator.latest_training_job = TrainingJob(session, training_job_name)
        estimator._current_job_name = training_job_name
        estimator.latest_training_job.wait(logs="None")
        return estimator

    # The trained model

    def create_model(
        self,
        role: str | None = None,
        image_uri: str | None = None,
        predictor_cls: Any = Predictor,
        vpc_config_override: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Model:
        """A Model of the trained artifacts, served by the training image unless
        `image_uri` is given."""
        kwargs.setdefault("enable_network_isolation", self._enable_network_isolation)
        return Model(
            image_uri or self.image_uri,
            self.model_data,
            role or self.role,
            predictor_cls=predictor_cls,
            vpc_config=self.get_vpc_config(vpc_config_override),
            sagemaker_session=self.sagemaker_session,
            **kwargs,
        )

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        use_compiled_model: bool = False,
        wait: bool = True,
        model_name: str | None = None,
        kms_key: str | None = None,
        data_capture_config: Any = None,
        tags: Tags = None,
        serverless_inference_config: Any = None,
        async_inference_config: Any = None,
        volume_size: int | None = None,
        model_data_download_timeout: int | None = None,
        container_startup_health_check_timeout: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Deploy the trained model to a new endpoint; a Predictor for it. The model and
        endpoint are named `<base job name>-<timestamp>` unless named here; `kwargs` go
        to `create_model`."""
        if use_compiled_model:
            raise ValueError("use_compiled_model: batchform has no compiled (Neo) models")
        self._latest()
        default_name = name_from_base(self._ensure_base_job_name())
        model = self.create_model(**kwargs)
        model.name = model_name or default_name
        return model.deploy(
            initial_instance_count=initial_instance_count,
            instance_type=instance_type,
            serializer=serializer,
            deserializer=deserializer,
            accelerator_type=accelerator_type,
            endpoint_name=endpoint_name or default_name,
            tags=tags or self.tags,
            kms_key=kms_key,
            wait=wait,
            data_capture_config=data_capture_config,
            async_inference_config=async_inference_config,
            serverless_inference_config=serverless_inference_config,
            volume_size=volume_size,
            model_data_download_timeout=model_data_download_timeout,
            container_startup_health_check_timeout=container_startup_health_check_timeout,
        )

    def transformer(
        self,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: Mapping[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Tags = None,
        role: str | None = None,
        volume_kms_key: str | None = None,
        vpc_config_override: dict[str, Any] | None = None,
        enable_network_isolation: bool | None = None,
        model_name: str | None = None,
        **extensions: Any,
    ) -> Transformer:
        """A Transformer of a model created now from the latest training job (named
        `<base job name>-<timestamp>` unless `model_name` is given)."""
        tags = tags or self.tags
        name = model_name or name_from_base(self._ensure_base_job_name())
        if self.latest_training_job is not None:
            model = self.create_model(
                role=role,
                vpc_config_override=vpc_config_override,
                enable_network_isolation=enable_network_isolation,
            )
            model.name = name
            model.create(instance_type, tags)
        return Transformer(
            name,
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            env=env,
            tags=tags,
            base_transform_job_name=self.base_job_name,
            sagemaker_session=self.sagemaker_session,
            volume_kms_key=volume_kms_key,
            **extensions,
        )
