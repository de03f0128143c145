"""The SDK's remote invocations over real HTTP: what a Predictor sends to
`POST /endpoints/<name>/invocations` (headers, body, a SigV4 signature the server's own
verifier accepts) and how it reads answers and runtime errors. A small stand-in server
answers, so these run whether or not batchform serves endpoints yet."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from batchform import sdk
from batchform.server.sigv4 import SignedRequest, verify


@dataclass
class Runtime:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    state = Runtime("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.seen.append(
                {"path": self.path, "headers": list(self.headers.items()), "body": body}
            )
            status, headers, answer = state.reply
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_predict_sends_the_runtime_request_and_reads_the_answer(runtime: Runtime) -> None:
    answer = {"projections": [{"projection": [0.5, 1.5]}]}
    runtime.reply = (
        200,
        {
            "Content-Type": "application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=abc",
            "x-Amzn-Invoked-Production-Variant": "AllTraffic",
        },
        json.dumps(answer).encode(),
    )
    sess = sdk.Session(endpoint_url=runtime.url, access_key="AKIDTEST", secret_key="s3cret")
    predictor = sdk.Predictor(
        "pca-endpoint",
        sagemaker_session=sess,
        serializer=sdk.serializers.CSVSerializer(),
        deserializer=sdk.deserializers.JSONDeserializer(),
    )
    assert predictor.predict(np.array([[1, 2], [3, 4]]), custom_attributes="trace=abc") == answer
    (request,) = runtime.seen
    assert request["path"] == "/endpoints/pca-endpoint/invocations"
    assert request["body"] == b"1,2\n3,4"
    headers = {name.lower(): value for name, value in request["headers"]}
    assert headers["content-type"] == "text/csv"
    assert headers["accept"] == "application/json"
    assert headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc"
    signed = SignedRequest.from_pairs(
        "POST", request["path"], "", request["headers"], request["body"]
    )
    assert verify(signed, {"AKIDTEST": "s3cret"}) == "AKIDTEST"

    raw = sess.sagemaker_runtime_client.invoke_endpoint(
        EndpointName="pca-endpoint", Body=b"1,2", ContentType="text/csv", TargetVariant="blue"
    )
    assert raw["CustomAttributes"] == "trace=abc"
    assert raw["InvokedProductionVariant"] == "AllTraffic"
    sent = {name.lower(): value for name, value in runtime.seen[1]["headers"]}
    assert sent["x-amzn-sagemaker-target-variant"] == "blue"


def test_runtime_errors_keep_their_codes_and_the_models_own_answer(runtime: Runtime) -> None:
    sess = sdk.Session(endpoint_url=runtime.url)
    predictor = sdk.Predictor("ep", sagemaker_session=sess)
    model_error = {
        "__type": "ModelError",
        "message": 'Received client error (400) from primary with message "bad row"',
        "OriginalStatusCode": 400,
        "OriginalMessage": "bad row",
    }
    runtime.reply = (424, {"Content-Type": "application/json"}, json.dumps(model_error).encode())
    with pytest.raises(sdk.ModelError) as caught:
        predictor.predict(b"x")
    assert caught.value.code == "ModelError"
    assert (caught.value.original_status_code, caught.value.original_message) == (400, "bad row")
    not_found = {"__type": "ValidationError", "message": "Endpoint ep of account x not found."}
    runtime.reply = (400, {}, json.dumps(not_found).encode())
    with pytest.raises(sdk.ApiCallError) as refused:
        predictor.predict(b"x")
    assert refused.value.code == "ValidationError" and "not found" in str(refused.value)
    runtime.reply = (502, {}, b"<html>bad gateway</html>")
    with pytest.raises(sdk.ApiCallError, match="HTTP 502"):
        predictor.predict(b"x")
