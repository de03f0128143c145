"""`Model`: a model to deploy to an endpoint or to batch-transform with, as the sagemaker
SDK's Model. The SageMaker model is created when first needed, named after its image
(`pca-<timestamp>`) unless given a name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from batchform.sdk.naming import base_from_name, base_name_from_image, name_from_base
from batchform.sdk.predictor import Predictor
from batchform.sdk.requests import (
    Tags,
    container_def,
    format_tags,
    production_variant,
    refuse_unsupported,
)
from batchform.sdk.session import Session, default_session
from batchform.sdk.transformer import Transformer

JOB_CLASS_NAME = "model"
PredictorFactory = Callable[[str, Session], Any]


class Model:
    def __init__(
        self,
        image_uri: str,
        model_data: str | dict[str, Any] | None = None,
        role: str | None = None,
        predictor_cls: PredictorFactory | None = Predictor,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        vpc_config: dict[str, Any] | None = None,
        sagemaker_session: Session | None = None,
        enable_network_isolation: bool | None = None,
        model_kms_key: str | None = None,
    ) -> None:
        self.image_uri = image_uri
        self.model_data = model_data
        self.role = role
        self.predictor_cls = predictor_cls
        self.env = dict(env or {})
        self.name = name
        self.vpc_config = vpc_config
        self.sagemaker_session = sagemaker_session or default_session()
        self._enable_network_isolation = enable_network_isolation
        self.model_kms_key = model_kms_key
        self.endpoint_name: str | None = None
        self._base_name: str | None = None
        self._created = False

    def enable_network_isolation(self) -> bool:
        return bool(self._enable_network_isolation)

    def prepare_container_def(self, instance_type: str | None = None, **_: Any) -> dict[str, Any]:
        return container_def(self.image_uri, self.model_data, self.env)

    def create(self, instance_type: str | None = None, tags: Tags = None, **_: Any) -> None:
        """Create the SageMaker model (once; an existing model of that name is kept)."""
        if self._created:
            return
        if self._base_name is None:
            self._base_name = base_name_from_image(self.image_uri, JOB_CLASS_NAME)
        if self.name is None:
            self.name = name_from_base(self._base_name)
        self.sagemaker_session.create_model(
            self.name,
            self.role,
            self.prepare_container_def(instance_type),
            vpc_config=self.vpc_config,
            enable_network_isolation=self._enable_network_isolation,
            tags=tags,
        )
        self._created = True

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        tags: Tags = None,
        kms_key: str | None = None,
        wait: bool = True,
        data_capture_config: Any = None,
        async_inference_config: Any = None,
        serverless_inference_config: Any = None,
        volume_size: int | None = None,
        model_data_download_timeout: int | None = None,
        container_startup_health_check_timeout: int | None = None,
        **unsupported: Any,
    ) -> Any:
        """Create the model, an endpoint config and an endpoint serving it; with `wait`,
        until InService. Returns a Predictor (from `predictor_cls`) for the endpoint."""
        refuse_unsupported(
            "Model.deploy",
            {
                "accelerator_type": accelerator_type,
                "data_capture_config": data_capture_config,
                "async_inference_config": async_inference_config,
                "serverless_inference_config": serverless_inference_config,
                **unsupported,
            },
        )
        if not (instance_type and initial_instance_count):
            raise ValueError("Must specify instance type and instance count")
        self.create(instance_type, tags)
        assert self.name is not None
        variant = production_variant(
            self.name,
            instance_type,
            initial_instance_count,
            volume_size=volume_size,
            model_data_download_timeout=model_data_download_timeout,
            container_startup_health_check_timeout=container_startup_health_check_timeout,
        )
        self.endpoint_name = endpoint_name or name_from_base(
            self._base_name or base_from_name(self.name)
        )
        self.sagemaker_session.endpoint_from_production_variants(
            self.endpoint_name, [variant], tags=format_tags(tags), kms_key=kms_key, wait=wait
        )
        return self._predictor(serializer, deserializer)

    def _predictor(self, serializer: Any, deserializer: Any) -> Any:
        if self.predictor_cls is None:
            return None
        assert self.endpoint_name is not None
        predictor = self.predictor_cls(self.endpoint_name, self.sagemaker_session)
        if serializer is not None:
            predictor.serializer = serializer
        if deserializer is not None:
            predictor.deserializer = deserializer
        return predictor

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
        volume_kms_key: str | None = None,
        **extensions: Any,
    ) -> Transformer:
        """A Transformer of this model (created now if it is not yet); `extensions` are
        Transformer's batchform options (on_error, max_errors, split_objects_over_mb)."""
        self.create(instance_type, tags)
        assert self.name is not None
        return Transformer(
            self.name,
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            env=None if self.enable_network_isolation() else env,
            tags=tags,
            base_transform_job_name=self._base_name or self.name,
            sagemaker_session=self.sagemaker_session,
            volume_kms_key=volume_kms_key,
            **extensions,
        )

    def delete_model(self) -> None:
        if self.name is None:
            raise ValueError("The SageMaker model must be created first")
        self.sagemaker_session.delete_model(self.name)
