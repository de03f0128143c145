"""From a model reference (what CreateModel names) to a runtime for each instance."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from batchform.errors import ConfigurationError
from batchform.runtimes.base import Runtime, RuntimeContext

RuntimeFactory = Callable[[RuntimeContext], Runtime]


@dataclass(frozen=True)
class ModelReference:
    """A model as batchform can run it.

    `image` is a folder or file:// URI (a `serve` or `entrypoint` executable: a process
    container; an `inference.py`: a Python handler); `url` a model server already running;
    `model_data_url` the ModelDataUrl tarball; `environment` the model's Environment.
    """

    image: str | None = None
    model_data_url: str | None = None
    url: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeOptions:
    """Request-level values a runtime may need before execution parameters are known."""

    concurrency: int = 1
    max_payload_in_mb: int = 6
    batch_strategy: str = "MultiRecord"
    startup_timeout: float = 600.0


Builder = Callable[[ModelReference, RuntimeContext, RuntimeOptions], Runtime]

# The engine may raise its concurrency after start, from the model's
# /execution-parameters; a pool sized to the request alone would then make the extra
# requests queue for a connection. Idle keep-alive connections cost next to nothing.
MIN_CONNECTIONS = 64


def pool_size(concurrency: int) -> int:
    """Keep-alive connections to open to a model: never fewer than the engine may use."""
    return max(concurrency, MIN_CONNECTIONS)


def _handler(model: ModelReference, context: RuntimeContext, options: RuntimeOptions) -> Runtime:
    from batchform.runtimes.handler import HandlerRuntime
    from batchform.runtimes.handler_source import HandlerSource, find_handler

    program = context.environment.get("SAGEMAKER_PROGRAM")
    code_dir = local_folder(model.image) if model.image else None
    model_dir = code_dir
    if model.model_data_url:
        from batchform.runtimes.modeldata import extract_model_data

        model_dir = os.path.join(context.workspace, "model")
        os.makedirs(model_dir, exist_ok=True)
        extract_model_data(model.model_data_url, model_dir)
    assert model_dir is not None
    found = find_handler(code_dir or model_dir, program)
    source = HandlerSource(model_dir=model_dir, code_path=found.code_path)
    return HandlerRuntime(source, context, startup_timeout=options.startup_timeout)


def _container(model: ModelReference, context: RuntimeContext, options: RuntimeOptions) -> Runtime:
    from batchform.runtimes.process import runtime_for_container

    assert model.image is not None
    return runtime_for_container(
        model.image,
        model_data_url=model.model_data_url,
        context=context,
        concurrency=options.concurrency,
        max_payload_in_mb=options.max_payload_in_mb,
        batch_strategy=options.batch_strategy,
        startup_timeout=options.startup_timeout,
        connections=pool_size(options.concurrency),
    )


def _http(model: ModelReference, context: RuntimeContext, options: RuntimeOptions) -> Runtime:
    from batchform.runtimes.http import HttpRuntime

    assert model.url is not None
    return HttpRuntime(model.url, concurrency=pool_size(options.concurrency))


def _builtin_runtime(
    model: ModelReference, context: RuntimeContext, options: RuntimeOptions
) -> Runtime:
    """A built-in algorithm's model: its trained artifacts served by batchform's handler."""
    from batchform.algorithms import SERVING_PROGRAM
    from batchform.runtimes.handler import HandlerRuntime
    from batchform.runtimes.handler_source import HandlerSource
    from batchform.runtimes.modeldata import extract_model_data

    if not model.model_data_url:
        raise ConfigurationError(
            f"model image {model.image} is a built-in algorithm: it needs ModelDataUrl "
            "(the model.tar.gz its training job wrote)"
        )
    model_dir = os.path.join(context.workspace, "model")
    os.makedirs(model_dir, exist_ok=True)
    extract_model_data(model.model_data_url, model_dir)
    source = HandlerSource(model_dir=model_dir, code_path=str(SERVING_PROGRAM))
    return HandlerRuntime(source, context, startup_timeout=options.startup_timeout)


def _builtin(image: str) -> bool:
    from batchform.algorithms.images import builtin_algorithm

    return builtin_algorithm(image) is not None


_BUILDERS: dict[str, Builder] = {
    "handler": _handler,
    "container": _container,
    "http": _http,
    "builtin": _builtin_runtime,
}
BUILDERS: Mapping[str, Builder] = MappingProxyType(_BUILDERS)


def runtime_kind(model: ModelReference) -> str:
    """Which runtime serves this model; an error lists what batchform can run."""
    if model.url:
        return "http"
    if model.image and _builtin(model.image):
        return "builtin"
    if model.image:
        return _folder_kind(model.image)
    if model.model_data_url:
        return "handler"  # a framework-style tarball carrying code/inference.py
    raise ConfigurationError("no model given: pass a model folder, a model URL or model data")


def _folder_kind(image: str) -> str:
    from batchform.runtimes.process import container_folder, serve_command

    folder = local_folder(str(container_folder(image)))
    try:
        serve_command(Path(folder))
        return "container"
    except ConfigurationError as not_a_container:
        why_not = str(not_a_container)
    if any(os.path.isfile(os.path.join(folder, sub, "inference.py")) for sub in ("", "code")):
        return "handler"
    if os.environ.get("SAGEMAKER_PROGRAM") or os.path.isdir(os.path.join(folder, "code")):
        return "handler"
    # Say why it is not a container too: a `serve` that lost its x bit is the usual case.
    raise ConfigurationError(
        f"cannot run model '{image}': expected a folder with an executable 'serve' or "
        "'entrypoint' (a model container) or an 'inference.py' (a Python handler), or a "
        f"--model-url ({why_not})"
    )


@dataclass(frozen=True)
class ModelRuntimes:
    """Makes one runtime per instance, with the model's Environment beneath the job's.

    A value (not a closure) so that it can travel to an instance on another machine,
    and so that an executor can see which model's files must travel with it.
    """

    model: ModelReference
    options: RuntimeOptions
    kind: str

    def __call__(self, context: RuntimeContext) -> Runtime:
        environment = {**self.model.environment, **context.environment}
        return _BUILDERS[self.kind](
            self.model, replace(context, environment=environment), self.options
        )


def runtime_factory(model: ModelReference, options: RuntimeOptions) -> ModelRuntimes:
    """A factory making one runtime per instance; ConfigurationError if the model cannot run."""
    return ModelRuntimes(model, options, runtime_kind(model))


def local_folder(image: str) -> str:
    path = image.removeprefix("file://")
    if not os.path.isdir(path):
        raise ConfigurationError(f"model folder '{image}' does not exist")
    return os.path.abspath(path)
