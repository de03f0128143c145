"""A user's `inference.py`, run in-process with the SageMaker inference toolkit's semantics.

The contract is the one sagemaker-inference (and the PyTorch and scikit-learn containers
built on it) gives a user module:

- `model_fn(model_dir)` is required and called once; `pre_model_fn(model_dir)` before
  it and `model_warmup_fn(model_dir, model)` after it, when defined.
- Either `transform_fn(model, data, content_type, accept)` alone, or any of
  `input_fn(data, content_type)` → `predict_fn(data, model)` → `output_fn(prediction,
  accept)`, each replaced by a default when absent. Defining transform_fn next to any of
  the three is refused, as the toolkit refuses it.
- The request body reaches user code as str for text/csv and application/json (UTF-8),
  as bytes otherwise. batchform extension: a user function whose data parameter is
  annotated `bytes` always gets the raw bytes, which skips a decode and re-encode.
- A missing or `*/*` Accept becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else
  application/json. A function may return the body (bytes or str) or a (body,
  content_type) tuple; a bare body is answered with the Accept type.
- A function taking one parameter more than the contract gets a context object last,
  as the toolkit passes its model server context.
- `execution_parameters_fn()` may answer GET /execution-parameters (scikit-learn
  container).

Defaults: input_fn decodes by content type (codecs.py), predict_fn calls
`model.predict(data)` when the model has one and `model(data)` otherwise (the scikit-learn
and PyTorch containers' defaults; the base toolkit has none), output_fn encodes by Accept.

Errors while transforming are `ModelError`s, so the engine retries exactly what SageMaker
retries: 415 for a content type or Accept the defaults cannot handle, 400 for a payload
that does not follow its content type, the toolkit error's own status when user code
raises one, and 500 with the exception's type, message and place for anything else.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import itertools
import json
import logging
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, ModuleType, TracebackType
from typing import Any

from batchform.errors import InputFormatError, ModelError, RuntimeStartError
from batchform.runtimes import codecs
from batchform.runtimes.handler_source import (
    DEFAULT_PROGRAM,
    PROGRAM_ENV,
    HandlerSource,
    find_handler,
)

__all__ = [
    "DEFAULT_ACCEPT_ENV",
    "DEFAULT_PROGRAM",
    "PROGRAM_ENV",
    "HandlerContext",
    "HandlerSource",
    "LoadedHandler",
    "find_handler",
    "load_handler",
]

DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"

HandlerFn = Callable[..., Any]

_log = logging.getLogger(__name__)
_module_numbers = itertools.count()
# Every function the toolkit looks up in a user module, with its contract arity.
_HOOKS = {
    "model_fn": 1,
    "transform_fn": 4,
    "input_fn": 2,
    "predict_fn": 2,
    "output_fn": 2,
    "pre_model_fn": 1,
    "model_warmup_fn": 2,
    "execution_parameters_fn": 0,
}


# --- loading ----------------------------------------------------------------------------


@dataclass
class HandlerContext:
    """Stands in for the model server context the toolkit passes to functions that take
    one extra parameter; code reads `context.system_properties["gpu_id"]` and the like."""

    system_properties: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class _Functions:
    """The user's functions, or defaults, each already adapted to its contract arity."""

    model_fn: HandlerFn
    transform_fn: HandlerFn | None
    input_fn: HandlerFn | None  # None: the default, which reads bytes itself
    predict_fn: HandlerFn | None
    output_fn: HandlerFn | None
    pre_model_fn: HandlerFn | None
    model_warmup_fn: HandlerFn | None
    execution_parameters_fn: HandlerFn | None
    raw_body: bool  # the function receiving the body wants bytes, not str


def load_handler(
    source: HandlerSource,
    *,
    default_accept: str | None = None,
    gpu_id: int | None = None,
) -> LoadedHandler:
    """Import the handler once and load its model once.

    Nothing is installed: a requirements.txt next to the code is ignored, since the
    environment is the user's to prepare. `default_accept` overrides the
    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT variable; `gpu_id` is what the context reports.
    """
    module = _import_user_module(source.code_path)
    context = HandlerContext({"model_dir": source.model_dir, "gpu_id": gpu_id})
    functions = _resolve_functions(module, source.code_path, context)
    model = _load_model(functions, source)
    if functions.transform_fn is None and functions.predict_fn is None:
        _require_predictable(model, source.code_path)
    accept = default_accept or os.environ.get(DEFAULT_ACCEPT_ENV) or codecs.JSON
    return LoadedHandler(source, model, functions, accept)


def _import_user_module(path: str) -> ModuleType:
    # Helper modules next to the handler import by plain name, as under the toolkit.
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    name = f"batchform_handler_{next(_module_numbers)}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeStartError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _start_error(path, "importing the handler failed", exc) from exc
    return module


def _resolve_functions(module: ModuleType, path: str, context: HandlerContext) -> _Functions:
    found = _user_hooks(module, path)
    if "model_fn" not in found:
        raise RuntimeStartError(
            f"{path}: defines no model_fn(model_dir); the SageMaker inference toolkit "
            "requires one to load the model (it may return None)"
        )
    if "transform_fn" in found and found.keys() & {"input_fn", "predict_fn", "output_fn"}:
        raise RuntimeStartError(
            f"{path}: transform_fn cannot be combined with input_fn, predict_fn or "
            "output_fn (the SageMaker inference toolkit refuses this too)"
        )
    bound = {name: _bind(fn, name, _HOOKS[name], context, path) for name, fn in found.items()}
    return _Functions(
        model_fn=bound["model_fn"],
        transform_fn=bound.get("transform_fn"),
        input_fn=bound.get("input_fn"),
        predict_fn=bound.get("predict_fn"),
        output_fn=bound.get("output_fn"),
        pre_model_fn=bound.get("pre_model_fn"),
        model_warmup_fn=bound.get("model_warmup_fn"),
        execution_parameters_fn=bound.get("execution_parameters_fn"),
        raw_body=_body_as_bytes(found),
    )


def _user_hooks(module: ModuleType, path: str) -> dict[str, HandlerFn]:
    found: dict[str, HandlerFn] = {}
    for name in _HOOKS:
        value = getattr(module, name, None)
        if value is None:
            continue
        if not callable(value):
            raise RuntimeStartError(f"{path}: {name} is a {type(value).__name__}, not a function")
        found[name] = value
    return found


def _bind(fn: HandlerFn, name: str, arity: int, context: HandlerContext, path: str) -> HandlerFn:
    """Adapt to the toolkit's calling rule: a function with exactly one parameter more
    than the contract gets the context as its last argument."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return fn
    if len(signature.parameters) == arity + 1 and _binds(signature, arity + 1):
        return lambda *args: fn(*args, context)
    if _binds(signature, arity):
        return fn
    raise RuntimeStartError(
        f"{path}: {name} must take {arity} positional arguments (or {arity + 1} with "
        f"context); it takes {len(signature.parameters)}"
    )


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _body_as_bytes(found: dict[str, HandlerFn]) -> bool:
    """Whether the function that receives the body should get bytes: the default
    input_fn decodes bytes itself, a user function may ask for bytes by annotation."""
    if "transform_fn" in found:
        return _annotated_bytes(found["transform_fn"], 1)
    if "input_fn" in found:
        return _annotated_bytes(found["input_fn"], 0)
    return True


def _annotated_bytes(fn: HandlerFn, index: int) -> bool:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if len(parameters) <= index:
        return False
    annotation = parameters[index].annotation
    return annotation is bytes or annotation == "bytes"


def _load_model(functions: _Functions, source: HandlerSource) -> object:
    path, model_dir = source.code_path, source.model_dir
    if functions.pre_model_fn is not None:
        _call_at_start(path, "pre_model_fn", functions.pre_model_fn, model_dir)
    model = _call_at_start(path, "model_fn", functions.model_fn, model_dir)
    if functions.model_warmup_fn is not None:
        _call_at_start(path, "model_warmup_fn", functions.model_warmup_fn, model_dir, model)
    return model


def _call_at_start(path: str, name: str, fn: HandlerFn, *args: object) -> object:
    try:
        return fn(*args)
    except Exception as exc:
        raise _start_error(path, f"{name} failed", exc) from exc


def _require_predictable(model: object, path: str) -> None:
    if callable(getattr(model, "predict", None)) or callable(model):
        return
    raise RuntimeStartError(
        f"{path}: model_fn returned a {type(model).__name__}, which has no predict() and "
        "is not callable; define predict_fn(data, model) or transform_fn"
    )


def _start_error(path: str, what: str, exc: Exception) -> RuntimeStartError:
    # The whole traceback goes to the log (the job's log); the error keeps one line.
    _log.error("%s: %s", path, what, exc_info=exc)
    last_line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    where = _user_frame(exc.__traceback__, os.path.dirname(path))
    suffix = f" ({where})" if where else ""
    return RuntimeStartError(f"{path}: {what}: {last_line}{suffix}")


def _user_frame(tb: TracebackType | None, code_dir: str) -> str | None:
    """The innermost frame in the user's own files: where their code went wrong.

    Walks the frames directly (no source lines read): isolating bad records may ask
    this for thousands of failures.
    """
    found = None
    while tb is not None:
        if _is_under(tb.tb_frame.f_code.co_filename, code_dir):
            found = tb
        tb = tb.tb_next
    return None if found is None else _frame_text(found.tb_frame.f_code, found.tb_lineno)


@functools.lru_cache(maxsize=256)
def _frame_text(code: CodeType, line: int) -> str:
    return f"{os.path.basename(code.co_filename)}, line {line}, in {code.co_name}"


@functools.lru_cache(maxsize=1024)
def _is_under(path: str, folder: str) -> bool:
    return os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), ""))


# --- serving ----------------------------------------------------------------------------


class LoadedHandler:
    """A handler module with its model loaded: answers payloads in the calling thread.

    Holds no per-request state, so one thread at a time may call `transform` without
    locks (each pool worker process has its own handler).
    """

    def __init__(
        self, source: HandlerSource, model: object, functions: _Functions, default_accept: str
    ) -> None:
        self.source = source
        self.model = model
        self.default_accept = default_accept
        self._functions = functions
        self._failures: dict[tuple[str, str | None], int] = {}
        self._code_dir = source.code_dir  # asked for each failure while isolating

    def transform(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> tuple[bytes, str]:
        """One payload → (response body, response content type); ModelError when not."""
        accept = self._accept_or_default(accept)
        try:
            return _response(self._run(body, content_type, accept), accept)
        except ModelError:
            raise
        except InputFormatError as exc:
            raise ModelError(400, str(exc)) from exc
        except Exception as exc:
            raise self._user_error(exc) from exc

    def status_or_body(
        self, body: bytes, content_type: str | None, accept: str | None
    ) -> int | bytes:
        """The response body, or the status of the failure: for a call whose failure
        needs no message (a group test while isolating), so none is made or logged."""
        accept = self._accept_or_default(accept)
        try:
            return _response(self._run(body, content_type, accept), accept)[0]
        except ModelError as exc:
            return exc.status
        except InputFormatError:
            return 400
        except Exception as exc:
            return _chosen_status(exc) or 500

    def execution_parameters(self) -> dict[str, object] | None:
        """What the module's execution_parameters_fn says, as a dict; None without one."""
        ask = self._functions.execution_parameters_fn
        if ask is None:
            return None
        try:
            return _parameters_dict(ask())
        except Exception as exc:
            path = self.source.code_path
            raise _start_error(path, "execution_parameters_fn failed", exc) from exc

    def _accept_or_default(self, accept: str | None) -> str:
        if accept is None or accept.strip() in ("", codecs.ANY):
            return self.default_accept
        return accept

    def _run(self, body: bytes, content_type: str | None, accept: str) -> object:
        functions = self._functions
        data = body if functions.raw_body else _text_if_utf8(body, content_type)
        if functions.transform_fn is not None:
            return functions.transform_fn(self.model, data, content_type, accept)
        input_fn = functions.input_fn or _default_input_fn
        decoded = input_fn(data, content_type)
        predict_fn = functions.predict_fn or _default_predict_fn
        prediction = predict_fn(decoded, self.model)
        if functions.output_fn is not None:
            return functions.output_fn(prediction, accept)
        return self._default_output_fn(prediction, accept)

    def _default_output_fn(self, prediction: object, accept: str) -> tuple[bytes, str]:
        for media in codecs.accepted_media_types(accept):
            if media == codecs.ANY:
                media = codecs.media_type(self.default_accept) or codecs.JSON
            encode = codecs.encoder_for(media)
            if encode is not None:
                return encode(prediction), media
        raise ModelError(
            415,
            f"Accept {accept!r} is not supported by the default output_fn "
            f"(supported: {', '.join(sorted(codecs.ENCODERS))}); define output_fn to write it",
        )

    def _user_error(self, exc: Exception) -> ModelError:
        status, message = _toolkit_error(exc)
        where = _user_frame(exc.__traceback__, self._code_dir)
        self._log_failure(exc, where)
        suffix = f" ({where})" if where else ""
        return ModelError(status, f"{message}{suffix}")

    def _log_failure(self, exc: Exception, where: str | None) -> None:
        """The first failure of a kind at a place is logged with its traceback; repeats
        (one per bad record while isolating them) only as a count, at powers of ten."""
        key = (type(exc).__name__, where)
        seen = self._failures[key] = self._failures.get(key, 0) + 1
        if seen == 1:
            _log.error("%s: transform failed", self.source.code_path, exc_info=exc)
        elif seen == 10 ** round(math.log10(seen)):
            _log.error(
                "%s: transform failed %d times with %s at %s", self.source.code_path, seen, *key
            )


def _default_input_fn(body: bytes | str, content_type: str | None) -> object:
    decode = codecs.decoder_for(content_type)
    if decode is None:
        raise ModelError(
            415,
            f"Content type {content_type!r} is not supported by the default input_fn "
            f"(supported: {', '.join(sorted(codecs.DECODERS))}); define input_fn to read it",
        )
    return decode(body)


def _default_predict_fn(data: object, model: Any) -> object:
    predict = getattr(model, "predict", None)
    return predict(data) if callable(predict) else model(data)


def _text_if_utf8(body: bytes, content_type: str | None) -> bytes | str:
    if codecs.media_type(content_type) not in codecs.UTF8_TYPES:
        return body
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"{content_type} payload is not UTF-8: {exc}") from exc


def _response(result: object, accept: str) -> tuple[bytes, str]:
    content_type: object = None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise TypeError(f"handler returned a {len(result)}-tuple; expected (body, type)")
        result, content_type = result
    return _body_bytes(result), str(content_type) if content_type else accept


def _body_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    raise TypeError(
        f"handler returned a {type(body).__name__}; return bytes or str, or a "
        "(body, content_type) tuple"
    )


def _toolkit_error(exc: Exception) -> tuple[int, str]:
    """(status, message) for a user exception. sagemaker_inference's
    BaseInferenceToolkitError carries the status the user chose; anything else is 500."""
    status = _chosen_status(exc)
    if status is not None:
        return status, str(getattr(exc, "message", exc))
    return 500, f"{type(exc).__name__}: {exc}"


def _chosen_status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    if _is_toolkit_error(type(exc)) and isinstance(status, int) and 400 <= status <= 599:
        return status
    return None


def _is_toolkit_error(kind: type) -> bool:
    # By name: the toolkit itself need not be installed for its errors to be raised.
    known = _TOOLKIT_ERROR_TYPES.get(kind)
    if known is None:
        known = any(cls.__name__ == "BaseInferenceToolkitError" for cls in kind.__mro__)
        _TOOLKIT_ERROR_TYPES[kind] = known
    return known


_TOOLKIT_ERROR_TYPES: dict[type, bool] = {}  # asked once per failure while isolating


def _parameters_dict(answer: object) -> dict[str, object]:
    get_data = getattr(answer, "get_data", None)  # a Flask Response, as the container uses
    if callable(get_data):
        answer = get_data()
    if isinstance(answer, bytes | str):
        answer = json.loads(answer)
    if not isinstance(answer, dict):
        raise TypeError(f"execution_parameters_fn returned {type(answer).__name__}, not a dict")
    return answer
