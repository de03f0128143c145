"""The inference.py contract: a module written for SageMaker's toolkit behaves the same here."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from batchform.errors import ModelError, RuntimeStartError
from batchform.runtimes.handler_module import (
    HandlerSource,
    LoadedHandler,
    find_handler,
    load_handler,
)
from batchform.runtimes.handler_worker import call_with_retries

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

DOUBLER = """
class Doubler:
    def predict(self, data):
        return data * 2

def model_fn(model_dir):
    return Doubler()
"""


@pytest.fixture(autouse=True)
def restore_import_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Loading a handler puts its folder on sys.path; keep tests from seeing each other's.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", raising=False)
    yield


def model_with(tmp_path: Path, source: str, *, where: str = "code", **files: str) -> Path:
    """A model folder holding `source` as <where>/inference.py, plus helper files."""
    model_dir = tmp_path / "model"
    code_dir = model_dir / where if where else model_dir
    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "inference.py").write_text(textwrap.dedent(source))
    for name, text in files.items():
        (code_dir / name).write_text(textwrap.dedent(text))
    return model_dir


def load(tmp_path: Path, source: str, **kwargs: str) -> LoadedHandler:
    return load_handler(find_handler(str(model_with(tmp_path, source, **kwargs))))


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- default input_fn / predict_fn / output_fn ---


def test_csv_in_json_out_by_default(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    body, content_type = handler.transform(b"1,2\n3,4\n", "text/csv", None)
    assert content_type == "application/json"
    assert json.loads(body) == [[2.0, 4.0], [6.0, 8.0]]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/csv", b"2.0,4.0\n6.0,8.0\n"),
        ("application/json", b"[[2.0,4.0],[6.0,8.0]]"),
        ("application/jsonlines", b"[2.0,4.0]\n[6.0,8.0]\n"),
    ],
)
def test_default_output_follows_accept(tmp_path: Path, accept: str, expected: bytes) -> None:
    handler = load(tmp_path, DOUBLER)
    assert handler.transform(b"1,2\n3,4\n", "text/csv", accept) == (expected, accept)


def test_json_and_npy_in(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    body, _ = handler.transform(b"[[1, 2]]", "application/json", "text/csv")
    assert body == b"2,4\n"
    body, content_type = handler.transform(
        npy(np.array([1.5, 2.5])), "application/x-npy", "application/x-npy"
    )
    assert content_type == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), [3.0, 5.0])


def test_content_type_and_accept_parameters_are_ignored(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    body, content_type = handler.transform(
        b"1,2\n", "text/csv; charset=utf-8", "text/csv;label_size=0"
    )
    assert (body, content_type) == (b"2.0,4.0\n", "text/csv")


def test_first_supported_accept_wins(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    assert handler.transform(b"1\n", "text/csv", "text/html, text/csv")[1] == "text/csv"


def test_any_accept_means_the_default_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load(tmp_path, DOUBLER).transform(b"1\n", "text/csv", "*/*")[1] == "application/json"
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    handler = load_handler(find_handler(str(tmp_path / "model")))
    assert handler.transform(b"1\n", "text/csv", None) == (b"2.0\n", "text/csv")
    overridden = load_handler(find_handler(str(tmp_path / "model")), default_accept="text/csv")
    assert overridden.transform(b"1\n", "text/csv", "*/*")[1] == "text/csv"


def test_callable_model_is_called(tmp_path: Path) -> None:
    handler = load(tmp_path, "def model_fn(model_dir):\n    return lambda data: data + 1\n")
    assert handler.transform(b"1,2\n", "text/csv", "text/csv")[0] == b"2.0,3.0\n"


def test_model_without_predict_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError, match="no predict"):
        load(tmp_path, "def model_fn(model_dir):\n    return 42\n")


# --- user functions ---


def test_transform_fn_alone_and_its_return_shapes(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir):
            return "m"

        def transform_fn(model, data, content_type, accept):
            if data.startswith("tuple"):
                return data.upper().encode(), "text/x-upper"
            return f"{model}:{data}:{content_type}:{accept}"
        """,
    )
    assert handler.transform(b"x", "text/csv", None) == (
        b"m:x:text/csv:application/json",
        "application/json",
    )
    assert handler.transform(b"tuple", "text/csv", "text/csv") == (b"TUPLE", "text/x-upper")


def test_user_functions_get_str_for_csv_and_json_bytes_otherwise(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def input_fn(data, content_type):
            return type(data).__name__

        def predict_fn(data, model):
            return data

        def output_fn(prediction, accept):
            return prediction
        """,
    )
    assert handler.transform(b"1", "text/csv", None)[0] == b"str"
    assert handler.transform(b"1", "application/json; charset=utf-8", None)[0] == b"str"
    assert handler.transform(b"1", "application/octet-stream", None)[0] == b"bytes"


def test_bytes_annotation_gets_raw_bytes(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, body: bytes, content_type, accept):
            return type(body).__name__
        """,
    )
    assert handler.transform(b"1", "text/csv", None)[0] == b"bytes"


def test_output_fn_tuple_sets_the_content_type(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        DOUBLER
        + """
def output_fn(prediction, accept):
    return bytearray(b"n=%d" % prediction.size), "text/plain"
""",
    )
    assert handler.transform(b"1,2\n", "text/csv", "text/csv") == (b"n=2", "text/plain")


def test_functions_taking_a_context_get_one(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir, context):
            return context.system_properties["model_dir"]

        def transform_fn(model, data, content_type, accept, context=None):
            return f"{model == context.system_properties['model_dir']}"
        """,
    )
    assert handler.model == str(tmp_path / "model")
    assert handler.transform(b"", "text/csv", None)[0] == b"True"


def test_model_is_loaded_once_with_hooks_in_order(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        calls = []

        def pre_model_fn(model_dir):
            calls.append("pre")

        def model_fn(model_dir):
            calls.append("model")
            return calls

        def model_warmup_fn(model_dir, model):
            calls.append("warmup")

        def transform_fn(model, data, content_type, accept):
            return ",".join(model)
        """,
    )
    handler.transform(b"", None, None)
    assert handler.transform(b"", None, None)[0] == b"pre,model,warmup"


def test_helper_module_next_to_inference_imports(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        from scaling_helper_for_test import FACTOR

        def model_fn(model_dir):
            return lambda data: data * FACTOR
        """,
        **{"scaling_helper_for_test.py": "FACTOR = 10\n"},
    )
    assert handler.transform(b"1\n", "text/csv", "text/csv")[0] == b"10.0\n"


def test_execution_parameters_fn_is_exposed(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        DOUBLER
        + """
def execution_parameters_fn():
    return '{"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD"}'
""",
    )
    assert handler.execution_parameters() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
    }
    assert load(tmp_path / "other", DOUBLER).execution_parameters() is None


# --- start errors ---


def test_missing_model_fn_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError, match="no model_fn"):
        load(tmp_path, "def predict_fn(data, model):\n    return data\n")


def test_import_error_names_the_file_and_the_cause(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError) as caught:
        load(tmp_path, "import surely_not_an_installed_module\n")
    message = str(caught.value)
    assert "inference.py" in message
    assert "No module named 'surely_not_an_installed_module'" in message
    assert "line 1" in message


def test_model_fn_failure_is_a_start_error(tmp_path: Path) -> None:
    source = "def model_fn(model_dir):\n    raise FileNotFoundError('model.pt is missing')\n"
    with pytest.raises(RuntimeStartError, match=r"model_fn failed.*model\.pt is missing.*line 2"):
        load(tmp_path, source)


def test_transform_fn_with_input_fn_is_refused(tmp_path: Path) -> None:
    source = """
    def model_fn(model_dir): return None
    def transform_fn(model, data, content_type, accept): return data
    def input_fn(data, content_type): return data
    """
    with pytest.raises(RuntimeStartError, match="transform_fn cannot be combined"):
        load(tmp_path, source)


def test_wrong_arity_is_a_start_error(tmp_path: Path) -> None:
    source = "def model_fn(model_dir): return None\ndef transform_fn(model, data): return data\n"
    with pytest.raises(RuntimeStartError, match="transform_fn must take 4"):
        load(tmp_path, source)


# --- errors while transforming ---


def test_user_exception_is_a_retriable_500_naming_the_line(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def predict_fn(data, model):
            raise ValueError("shape mismatch")
        """,
    )
    with pytest.raises(ModelError) as caught:
        handler.transform(b"1,2\n", "text/csv", None)
    assert caught.value.status == 500 and caught.value.retriable
    assert caught.value.message == (
        "ValueError: shape mismatch (inference.py, line 6, in predict_fn)"
    )


def test_unsupported_content_type_and_accept_are_415(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    with pytest.raises(ModelError) as caught:
        handler.transform(b"\x89PNG", "image/png", None)
    assert caught.value.status == 415 and not caught.value.retriable
    assert "image/png" in caught.value.message
    with pytest.raises(ModelError) as caught:
        handler.transform(b"1\n", "text/csv", "text/html")
    assert caught.value.status == 415


def test_malformed_payload_is_400(tmp_path: Path) -> None:
    handler = load(tmp_path, DOUBLER)
    with pytest.raises(ModelError) as caught:
        handler.transform(b"1,2\n3\n", "text/csv", None)
    assert caught.value.status == 400


def test_non_utf8_text_for_user_code_is_400(tmp_path: Path) -> None:
    handler = load(
        tmp_path, "def model_fn(d): return None\ndef transform_fn(m, b, c, a): return b\n"
    )
    with pytest.raises(ModelError) as caught:
        handler.transform(b"\xff\xfe", "text/csv", None)
    assert caught.value.status == 400


def test_toolkit_errors_keep_their_status(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        class BaseInferenceToolkitError(Exception):
            def __init__(self, status_code, message, phrase):
                self.status_code, self.message, self.phrase = status_code, message, phrase
                super().__init__(status_code, message, phrase)

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            raise BaseInferenceToolkitError(422, "label column missing", "Unprocessable")
        """,
    )
    with pytest.raises(ModelError) as caught:
        handler.transform(b"", "text/csv", None)
    assert caught.value.status == 422
    assert caught.value.message.startswith("label column missing")
    assert handler.status_or_body(b"", "text/csv", None) == 422


def test_a_status_or_body_call_gives_the_status_of_a_failure_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = load(tmp_path, DOUBLER)
    assert handler.status_or_body(b"1\n2\n", "text/csv", "text/csv") == b"2.0\n4.0\n"
    assert handler.status_or_body(b"1,2\n3\n", "text/csv", None) == 400
    crashing = load(
        tmp_path / "crash", "def model_fn(d): return None\ndef transform_fn(m, b, c, a): 1 / 0\n"
    )
    with caplog.at_level("ERROR"):
        assert crashing.status_or_body(b"1\n", "text/csv", None) == 500
    assert caplog.records == []


def test_returning_a_non_body_is_a_500(tmp_path: Path) -> None:
    handler = load(
        tmp_path, "def model_fn(d): return None\ndef transform_fn(m, b, c, a): return [1]\n"
    )
    with pytest.raises(ModelError, match="return bytes or str") as caught:
        handler.transform(b"", "text/csv", None)
    assert caught.value.status == 500


# --- finding the handler ---


def test_code_folder_comes_before_the_model_folder(tmp_path: Path) -> None:
    model_dir = model_with(tmp_path, "# in code/\n")
    (model_dir / "inference.py").write_text("# at the top\n")
    source = find_handler(str(model_dir))
    assert source == HandlerSource(str(model_dir), str(model_dir / "code" / "inference.py"))


def test_model_folder_itself_is_searched(tmp_path: Path) -> None:
    model_dir = model_with(tmp_path, "# top\n", where="")
    assert find_handler(str(model_dir)).code_path == str(model_dir / "inference.py")


def test_sagemaker_program_names_the_script(tmp_path: Path) -> None:
    model_dir = model_with(tmp_path, "", **{"serve_me.py": "# chosen\n"})
    expected = str(model_dir / "code" / "serve_me.py")
    assert find_handler(str(model_dir), "serve_me.py").code_path == expected
    assert find_handler(str(model_dir), "serve_me").code_path == expected


def test_program_may_be_a_path(tmp_path: Path) -> None:
    script = tmp_path / "elsewhere" / "handler.py"
    script.parent.mkdir()
    script.write_text("")
    source = find_handler(str(tmp_path / "model"), str(script))
    assert source.code_path == str(script)
    assert source.model_dir == str(tmp_path / "model")


def test_missing_handler_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError) as caught:
        find_handler(str(tmp_path), "predictor.py")
    message = str(caught.value)
    assert str(tmp_path / "code" / "predictor.py") in message
    assert str(tmp_path / "predictor.py") in message


# --- the examples ---


def test_echo_example_returns_the_exact_bytes() -> None:
    handler = load_handler(find_handler(str(EXAMPLES / "echo_handler")))
    payload = bytes(range(256)) * 3
    assert handler.transform(payload, "application/octet-stream", None) == (
        payload,
        "application/octet-stream",
    )
    assert handler.transform(b"a,b\n\xff", "text/csv", "text/csv") == (b"a,b\n\xff", "text/csv")


def test_numpy_example_projects_each_line(tmp_path: Path) -> None:
    handler = load_handler(find_handler(str(EXAMPLES / "numpy_handler")))
    rows = np.random.default_rng(7).standard_normal((50, 5))
    payload = "".join(",".join(map(repr, row)) + "\n" for row in rows.tolist()).encode()

    body, content_type = handler.transform(payload, "text/csv", "application/json")

    assert content_type == "text/csv"
    assert body.count(b"\n") == payload.count(b"\n") == 50
    matrix = np.random.default_rng(0).standard_normal((5, 8))
    got = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
    np.testing.assert_array_equal(got, rows @ matrix)


def test_numpy_example_single_record(tmp_path: Path) -> None:
    handler = load_handler(find_handler(str(EXAMPLES / "numpy_handler")))
    body, _ = handler.transform(b"1,2\n", "text/csv", None)
    assert body.count(b"\n") == 1 and len(body.split(b",")) == 8


def test_repeated_failures_log_one_traceback_then_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handler = load(
        tmp_path,
        """
        def model_fn(model_dir):
            return None

        def transform_fn(model, body, content_type, accept):
            raise ValueError("bad record")
        """,
    )
    for _ in range(12):
        with pytest.raises(ModelError) as caught:
            handler.transform(b"x", "text/csv", "text/csv")
        assert caught.value.message == (
            "ValueError: bad record (inference.py, line 6, in transform_fn)"
        )
    logged = [record for record in caplog.records if "transform failed" in record.getMessage()]
    assert len(logged) == 2
    assert logged[0].exc_info is not None
    assert "10 times with ValueError at inference.py, line 6" in logged[1].getMessage()


def test_isolating_calls_retry_server_errors_and_never_client_errors(tmp_path: Path) -> None:
    handler = load(
        tmp_path,
        """
        calls = []

        def model_fn(model_dir):
            return None

        def transform_fn(model, data, content_type, accept):
            calls.append(data)
            if data.startswith("bad"):
                raise ValueError("bad input")  # a 500 every time
            if data.startswith("flaky") and calls.count(data) == 1:
                raise MemoryError("this time only")
            return data, "text/csv"
        """,
    )
    for alone in (True, False):
        answer, retries = call_with_retries(
            handler, b"flaky-%d" % alone, "text/csv", None, 2, alone=alone
        )
        assert (answer, retries) == (b"flaky-%d" % alone, 1)
        failure, retries = call_with_retries(handler, b"bad", "text/csv", None, 2, alone=alone)
        assert retries == 2
        assert failure == 500 if not alone else isinstance(failure, ModelError)
    answer, retries = call_with_retries(handler, b"\xff", "text/csv", None, 2, alone=False)
    assert (answer, retries) == (400, 0)  # not UTF-8: the client's fault, not retried
