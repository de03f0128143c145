"""Endpoint configurations and endpoints through the control plane.

Creating → InService | Failed; UpdateEndpoint: Updating → InService (on the new
configuration, or still on the old one with a FailureReason when the new one cannot
start, as SageMaker rolls back); DeleteEndpoint: Deleting, then gone. The rows say what
should serve; `EndpointManager` runs the model processes that do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchform.endpoints.hosting import VariantSpec
from batchform.endpoints.manager import EndpointAnswer, EndpointManager
from batchform.endpoints.manager import log_path as endpoint_log_path
from batchform.engine.executors import ExecutorSettings
from batchform.errors import EndpointNotFound, InvalidRequest
from batchform.jobs import resources
from batchform.jobs.resources import DEFAULT_ACCOUNT, required_name
from batchform.jobs.store import ENDPOINT_CONFIGS, ENDPOINTS, MODELS, AlreadyExists, Row, Store
from batchform.spec.common import parse_request
from batchform.spec.endpoint import CreateEndpointConfigRequest, CreateEndpointRequest

Operation = Callable[[dict[str, Any]], dict[str, Any]]
ModelResolver = Callable[[dict[str, Any]], Any]

STATUSES = (
    "OutOfService", "Creating", "Updating", "SystemUpdating", "RollingBack",
    "InService", "Deleting", "Failed", "UpdateRollbackFailed",
)  # fmt: skip
#: Endpoints whose processes a starting service brings back.
_SERVING = ("Creating", "Updating", "InService")


class Endpoints:
    def __init__(
        self,
        store: Store,
        model_reference: ModelResolver,
        executor: ExecutorSettings | None = None,
    ) -> None:
        self.store = store
        self.model_reference = model_reference
        self.manager = EndpointManager(self._status_changed, executor)

    def operations(self) -> dict[str, Operation]:
        return {
            "CreateEndpointConfig": self.create_config,
            "DescribeEndpointConfig": self.describe_config,
            "ListEndpointConfigs": self.list_configs,
            "DeleteEndpointConfig": self.delete_config,
            "CreateEndpoint": self.create,
            "DescribeEndpoint": self.describe,
            "ListEndpoints": self.list_endpoints,
            "UpdateEndpoint": self.update,
            "DeleteEndpoint": self.delete,
        }

    def start(self) -> None:
        """Bring back what served before this service started (a server restart)."""
        self.manager.start()
        for row in self.store.select(ENDPOINTS, ENDPOINTS.c.status.in_(_SERVING)):
            name = row["pending_config_name"] or row["config_name"]
            self.store.update(
                ENDPOINTS, row["name"], {"config_name": name, "pending_config_name": None}
            )
            self.manager.deploy(row["name"], self._variants(self._config(name)))

    def close(self) -> None:
        self.manager.close()

    # Endpoint configurations

    def create_config(self, body: dict[str, Any]) -> dict[str, Any]:
        request = parse_request(CreateEndpointConfigRequest, body)
        for variant in request.production_variants:
            self._model(variant.model_name)
        name = request.endpoint_config_name
        arn = resources.arn("endpoint-config", name)
        row = {"name": name, "arn": arn, "request": request.to_request(), "created_at": time.time()}
        try:
            self.store.insert(ENDPOINT_CONFIGS, row)
        except AlreadyExists:
            raise InvalidRequest(
                f'Cannot create already existing endpoint configuration "{arn}".'
            ) from None
        return {"EndpointConfigArn": arn}

    def describe_config(self, body: dict[str, Any]) -> dict[str, Any]:
        row = self._config(required_name(body, "EndpointConfigName"))
        request = dict(row["request"])
        request.pop("Tags", None)
        return {**request, "EndpointConfigArn": row["arn"], "CreationTime": row["created_at"]}

    def list_configs(self, body: dict[str, Any]) -> dict[str, Any]:
        return resources.list_page(
            self.store, ENDPOINT_CONFIGS, body, ("Name", "CreationTime"), "EndpointConfigs",
            _config_summary,
        )  # fmt: skip

    def delete_config(self, body: dict[str, Any]) -> dict[str, Any]:
        name = required_name(body, "EndpointConfigName")
        if not self.store.delete(ENDPOINT_CONFIGS, name):
            raise InvalidRequest(_missing_config(name))
        return {}

    # Endpoints

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        request = parse_request(CreateEndpointRequest, body)
        variants = self._variants(self._config(request.endpoint_config_name))
        name = request.endpoint_name
        arn = resources.arn("endpoint", name)
        now = time.time()
        row = {
            "name": name, "arn": arn, "status": "Creating",
            "config_name": request.endpoint_config_name, "variants": _deployed(variants),
            "created_at": now, "modified_at": now,
        }  # fmt: skip
        try:
            self.store.insert(ENDPOINTS, row)
        except AlreadyExists:
            raise InvalidRequest(f'Cannot create already existing endpoint "{arn}".') from None
        self.manager.deploy(name, variants)
        return {"EndpointArn": arn}

    def describe(self, body: dict[str, Any]) -> dict[str, Any]:
        return describe_endpoint(self._endpoint(required_name(body, "EndpointName")))

    def list_endpoints(self, body: dict[str, Any]) -> dict[str, Any]:
        status = body.get("StatusEquals")
        if status is not None and status not in STATUSES:
            raise InvalidRequest(
                f"1 validation error detected: Value '{status}' at 'statusEquals' failed to "
                f"satisfy constraint: Member must satisfy enum value set: [{', '.join(STATUSES)}]"
            )
        return resources.list_page(
            self.store, ENDPOINTS, body, ("Name", "CreationTime", "Status"), "Endpoints",
            _endpoint_summary,
        )  # fmt: skip

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        name = required_name(body, "EndpointName")
        config_name = required_name(body, "EndpointConfigName")
        row = self._endpoint(name)
        variants = self._variants(self._config(config_name))
        if row["status"] != "InService":
            raise InvalidRequest(
                f'Cannot update in-progress endpoint "{row["arn"]}".'
                if row["status"] in ("Creating", "Updating", "Deleting")
                else f'Cannot update endpoint "{row["arn"]}" in status {row["status"]}.'
            )
        values = {"status": "Updating", "pending_config_name": config_name, "failure_reason": None}
        if not self.store.update(
            ENDPOINTS, name, {**values, "modified_at": time.time()}, status="InService"
        ):
            raise InvalidRequest(f'Cannot update in-progress endpoint "{row["arn"]}".')
        self.manager.deploy(name, variants)
        return {"EndpointArn": row["arn"]}

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        name = required_name(body, "EndpointName")
        self._endpoint(name)
        self.store.update(ENDPOINTS, name, {"status": "Deleting", "modified_at": time.time()})
        self.manager.undeploy(name)
        self.store.delete(ENDPOINTS, name)
        return {}

    def invoke(
        self,
        name: str,
        body: bytes,
        content_type: str | None = None,
        accept: str | None = None,
        custom_attributes: str | None = None,
        target_variant: str | None = None,
    ) -> EndpointAnswer:
        self.check_invocable(name)
        return self.manager.invoke(
            name, body, invocation_headers(content_type, accept, custom_attributes), target_variant
        )

    def live(self, name: str) -> dict[str, Any]:
        """The endpoint's instances and its recent invocations (the console's view)."""
        self._endpoint(name)
        return {"instances": self.manager.instances(name), **self.manager.stats.summary(name)}

    def log_path(self, name: str) -> Path:
        """Where the endpoint's model processes' output and its own lines go."""
        self._endpoint(name)
        return endpoint_log_path(name)

    def check_invocable(self, name: str) -> None:
        if not self.manager.serving(name) and self.store.get(ENDPOINTS, name) is None:
            raise EndpointNotFound(f"Endpoint {name} of account {DEFAULT_ACCOUNT} not found.")

    # Rows

    def _status_changed(self, name: str, status: str, reason: str | None) -> None:
        row = self.store.get(ENDPOINTS, name)
        if row is None:
            return  # deleted while it was starting
        values: dict[str, Any] = {
            "status": status,
            "failure_reason": reason,
            "modified_at": time.time(),
        }
        pending = row["pending_config_name"]
        if pending and status == "InService" and reason is None:
            values["config_name"] = pending
            values["variants"] = _deployed(self._variants(self._config(pending)))
        values["pending_config_name"] = None
        self.store.update(ENDPOINTS, name, values)

    def _variants(self, config: Row) -> list[VariantSpec]:
        variants = []
        for variant in config["request"]["ProductionVariants"]:
            model = self._model(variant["ModelName"])
            variants.append(
                VariantSpec(
                    name=variant["VariantName"],
                    model=self.model_reference(model["request"]),
                    instance_count=int(variant.get("InitialInstanceCount") or 1),
                    weight=float(variant.get("InitialVariantWeight", 1.0)),
                    instance_type=variant.get("InstanceType"),
                )
            )
        return variants

    def _model(self, name: str) -> Row:
        row = self.store.get(MODELS, name)
        if row is None:
            raise InvalidRequest(f'Could not find model "{resources.arn("model", name)}".')
        return row

    def _config(self, name: str) -> Row:
        row = self.store.get(ENDPOINT_CONFIGS, name)
        if row is None:
            raise InvalidRequest(_missing_config(name))
        return row

    def _endpoint(self, name: str) -> Row:
        row = self.store.get(ENDPOINTS, name)
        if row is None:
            raise InvalidRequest(f'Could not find endpoint "{resources.arn("endpoint", name)}".')
        return row


def invocation_headers(
    content_type: str | None, accept: str | None, custom_attributes: str | None
) -> dict[str, str]:
    headers = {"Content-Type": content_type or "application/octet-stream"}
    if accept:
        headers["Accept"] = accept
    if custom_attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    return headers


def _deployed(variants: list[VariantSpec]) -> list[dict[str, Any]]:
    return [
        {
            "VariantName": variant.name,
            "DeployedImages": [{"SpecifiedImage": variant.model.image or variant.model.url or ""}],
            "CurrentWeight": variant.weight,
            "DesiredWeight": variant.weight,
            "CurrentInstanceCount": variant.instance_count,
            "DesiredInstanceCount": variant.instance_count,
        }
        for variant in variants
    ]


def describe_endpoint(row: Row) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "EndpointName": row["name"],
        "EndpointArn": row["arn"],
        "EndpointConfigName": row["config_name"],
        "EndpointStatus": row["status"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["modified_at"],
    }
    if row["status"] in ("InService", "Updating") and row["variants"]:
        answer["ProductionVariants"] = row["variants"]
    if row["failure_reason"]:
        answer["FailureReason"] = row["failure_reason"]
    if row["pending_config_name"]:
        answer["PendingDeploymentSummary"] = {"EndpointConfigName": row["pending_config_name"]}
    return answer


def _endpoint_summary(row: Row) -> dict[str, Any]:
    return {
        "EndpointName": row["name"],
        "EndpointArn": row["arn"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["modified_at"],
        "EndpointStatus": row["status"],
    }


def _config_summary(row: Row) -> dict[str, Any]:
    return {
        "EndpointConfigName": row["name"],
        "EndpointConfigArn": row["arn"],
        "CreationTime": row["created_at"],
    }


def _missing_config(name: str) -> str:
    return f'Could not find endpoint configuration "{resources.arn("endpoint-config", name)}".'
