"""The Session's endpoint operations (endpoint configs, endpoints), as the sagemaker SDK
has them: CreateEndpointConfig, CreateEndpoint (waiting until InService by default),
UpdateEndpoint, Describe*, Delete*."""

from __future__ import annotations

from typing import Any

from batchform.sdk.requests import Tags, format_tags, production_variant, refuse_unsupported
from batchform.sdk.waiting import ENDPOINT_BUSY, check_endpoint_status, poll_until

#: Endpoints start one model process an instance: asked for often while they come up.
ENDPOINT_POLL_SECONDS = 2.0


class HostingOperations:
    """Mixed into Session, whose `call` runs an operation."""

    def call(self, operation: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def create_endpoint_config(
        self,
        name: str,
        model_name: str,
        initial_instance_count: int,
        instance_type: str,
        accelerator_type: str | None = None,
        tags: Tags = None,
        kms_key: str | None = None,
        data_capture_config_dict: dict[str, Any] | None = None,
        volume_size: int | None = None,
        model_data_download_timeout: int | None = None,
        container_startup_health_check_timeout: int | None = None,
        **unsupported: Any,
    ) -> str:
        """An endpoint config of one variant "AllTraffic" serving `model_name`."""
        refuse_unsupported(
            "create_endpoint_config",
            {"accelerator_type": accelerator_type, **unsupported},
        )
        variant = production_variant(
            model_name,
            instance_type,
            initial_instance_count,
            volume_size=volume_size,
            model_data_download_timeout=model_data_download_timeout,
            container_startup_health_check_timeout=container_startup_health_check_timeout,
        )
        return self._create_endpoint_config(
            name, [variant], tags, kms_key, data_capture_config_dict
        )

    def _create_endpoint_config(
        self,
        name: str,
        variants: list[dict[str, Any]],
        tags: Tags,
        kms_key: str | None,
        data_capture_config_dict: dict[str, Any] | None,
    ) -> str:
        body: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": variants}
        optional = {
            "Tags": format_tags(tags),
            "KmsKeyId": kms_key,
            "DataCaptureConfig": data_capture_config_dict,
        }
        body.update({key: value for key, value in optional.items() if value})
        self.call("CreateEndpointConfig", body)
        return name

    def create_endpoint(
        self,
        endpoint_name: str,
        config_name: str,
        tags: Tags = None,
        wait: bool = True,
        live_logging: bool = False,
    ) -> str:
        """CreateEndpoint; with `wait`, until it is InService (UnexpectedStatusException
        when it fails, with the FailureReason)."""
        body: dict[str, Any] = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
        if tags:
            body["Tags"] = format_tags(tags)
        self.call("CreateEndpoint", body)
        if wait:
            self.wait_for_endpoint(endpoint_name)
        return endpoint_name

    def endpoint_from_production_variants(
        self,
        name: str,
        production_variants: list[dict[str, Any]],
        tags: Tags = None,
        kms_key: str | None = None,
        wait: bool = True,
        data_capture_config_dict: dict[str, Any] | None = None,
        **unsupported: Any,
    ) -> str:
        """An endpoint config and an endpoint, both named `name`, for these variants."""
        refuse_unsupported("endpoint_from_production_variants", unsupported)
        self._create_endpoint_config(
            name, production_variants, tags, kms_key, data_capture_config_dict
        )
        return self.create_endpoint(name, name, tags=tags, wait=wait)

    def update_endpoint(
        self, endpoint_name: str, endpoint_config_name: str, wait: bool = True
    ) -> str:
        """Move an endpoint to another config; with `wait`, until it is InService again."""
        self.call(
            "UpdateEndpoint",
            {"EndpointName": endpoint_name, "EndpointConfigName": endpoint_config_name},
        )
        if wait:
            self.wait_for_endpoint(endpoint_name)
        return endpoint_name

    def describe_endpoint(self, endpoint_name: str) -> dict[str, Any]:
        return self.call("DescribeEndpoint", {"EndpointName": endpoint_name})

    def describe_endpoint_config(self, endpoint_config_name: str) -> dict[str, Any]:
        return self.call("DescribeEndpointConfig", {"EndpointConfigName": endpoint_config_name})

    def delete_endpoint(self, endpoint_name: str) -> None:
        self.call("DeleteEndpoint", {"EndpointName": endpoint_name})

    def delete_endpoint_config(self, endpoint_config_name: str) -> None:
        self.call("DeleteEndpointConfig", {"EndpointConfigName": endpoint_config_name})

    def wait_for_endpoint(
        self, endpoint: str, poll: float = ENDPOINT_POLL_SECONDS, live_logging: bool = False
    ) -> dict[str, Any]:
        """Wait while the endpoint is Creating or Updating; UnexpectedStatusException
        unless it ends InService. Returns its description."""
        description = poll_until(
            lambda: self.describe_endpoint(endpoint),
            lambda answer: answer["EndpointStatus"] not in ENDPOINT_BUSY,
            poll,
        )
        check_endpoint_status(endpoint, description)
        return description
