"""`Predictor`: requests to an endpoint, as the sagemaker SDK's Predictor makes them.

The serializer turns `data` into the request body (its CONTENT_TYPE the Content-Type),
the deserializer turns the answer back (its ACCEPT the Accept header) and is given a
readable stream and the answer's content type, as the sagemaker SDK gives it.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from batchform.errors import BatchformError
from batchform.sdk.backend import InvokeRequest
from batchform.sdk.clients import as_bytes
from batchform.sdk.deserializers import BaseDeserializer, BytesDeserializer
from batchform.sdk.exceptions import ApiCallError
from batchform.sdk.serializers import BaseSerializer, IdentitySerializer
from batchform.sdk.session import Session, default_session


class Predictor:
    def __init__(
        self,
        endpoint_name: str,
        sagemaker_session: Session | None = None,
        serializer: BaseSerializer | None = None,
        deserializer: BaseDeserializer | None = None,
        component_name: str | None = None,
    ) -> None:
        if component_name is not None:
            raise ValueError("component_name: batchform endpoints have no inference components")
        self.endpoint_name = endpoint_name
        self.sagemaker_session = sagemaker_session or default_session()
        self.serializer: BaseSerializer = serializer or IdentitySerializer()
        self.deserializer: BaseDeserializer = deserializer or BytesDeserializer()
        self._endpoint_config_name: str | None = None
        self._model_names: list[str] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint's name (the sagemaker SDK's older spelling of endpoint_name)."""
        return self.endpoint_name

    @property
    def content_type(self) -> str:
        return self.serializer.CONTENT_TYPE

    @property
    def accept(self) -> tuple[str, ...]:
        return self.deserializer.ACCEPT

    def predict(
        self,
        data: Any,
        initial_args: dict[str, str] | None = None,
        target_model: str | None = None,
        target_variant: str | None = None,
        inference_id: str | None = None,
        custom_attributes: str | None = None,
        component_name: str | None = None,
    ) -> Any:
        """The endpoint's answer to `data`, deserialized. `initial_args` may set
        ContentType, Accept, CustomAttributes or TargetVariant. `inference_id` only
        labels captured data, which batchform does not capture: it is ignored."""
        if target_model is not None:
            raise ValueError("target_model: batchform has no multi-model endpoints")
        if component_name is not None:
            raise ValueError("component_name: batchform endpoints have no inference components")
        args = dict(initial_args or {})
        request = InvokeRequest(
            args.get("EndpointName", self.endpoint_name),
            as_bytes(self.serializer.serialize(data)),
            args.get("ContentType", self.content_type),
            args.get("Accept", ", ".join(self.accept)),
            args.get("CustomAttributes", custom_attributes),
            args.get("TargetVariant", target_variant),
        )
        answer = self.sagemaker_session.backend.invoke_endpoint(request)
        return self.deserializer.deserialize(io.BytesIO(answer.body), answer.content_type)

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Delete the endpoint, and its endpoint config unless told not to."""
        config = self._endpoint_config() if delete_endpoint_config else None
        with contextlib.suppress(ApiCallError):
            self._models()  # remembered, so delete_model still works afterwards
        self.sagemaker_session.delete_endpoint(self.endpoint_name)
        if config is not None:
            self.sagemaker_session.delete_endpoint_config(config)

    def delete_predictor(self) -> None:
        self.delete_endpoint()

    def delete_model(self) -> None:
        """Delete the models the endpoint's variants serve (before or after
        delete_endpoint)."""
        failed = []
        for name in self._models():
            try:
                self.sagemaker_session.delete_model(name)
            except BatchformError:
                failed.append(name)
        if failed:
            raise RuntimeError(f"One or more models cannot be deleted: {', '.join(failed)}")

    def _endpoint_config(self) -> str:
        if self._endpoint_config_name is None:
            endpoint = self.sagemaker_session.describe_endpoint(self.endpoint_name)
            self._endpoint_config_name = str(endpoint["EndpointConfigName"])
        return self._endpoint_config_name

    def _models(self) -> list[str]:
        if self._model_names is None:
            config = self.sagemaker_session.describe_endpoint_config(self._endpoint_config())
            variants = config.get("ProductionVariants", [])
            self._model_names = [v["ModelName"] for v in variants if "ModelName" in v]
        return self._model_names

    def __repr__(self) -> str:
        return f"Predictor({self.endpoint_name!r})"
