"""A handler for serve-handler tests, written as for the SageMaker inference toolkit.

- text/csv payloads are echoed upper-cased (so a test sees the handler really ran);
- the payload `pid` is answered with the worker's process id, a moment later, so that
  requests sent together overlap and land on different workers;
- the payload `exit` makes the worker process exit on the spot, as a crash would;
- any other content type is refused with 415, the way toolkit users refuse it;
- every invocation prints a line, so tests can count what reached the model.
"""

import os
import time


class BaseInferenceToolkitError(Exception):
    """Stands in for sagemaker_inference.errors.BaseInferenceToolkitError."""

    def __init__(self, status_code, message, phrase):
        self.status_code = status_code
        self.message = message
        self.phrase = phrase
        super().__init__(message)


def model_fn(model_dir):
    print(f"serving handler: model loaded in {os.getpid()}", flush=True)
    return None


def transform_fn(model, body, content_type, accept):
    print(f"serving handler: invocation as {content_type}", flush=True)
    if content_type != "text/csv":
        raise BaseInferenceToolkitError(415, f"{content_type} is not supported", "Unsupported")
    if body == "exit":
        os._exit(1)
    if body == "pid":
        time.sleep(0.3)
        return str(os.getpid()), "text/plain"
    return body.upper(), "text/csv"
