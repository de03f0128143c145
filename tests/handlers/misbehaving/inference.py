"""A handler that misbehaves on request: crashes, hangs or prints, chosen by the payload."""

import os
import sys
import time


def model_fn(model_dir):
    print("loading model", flush=True)
    return None


def transform_fn(model, body: bytes, content_type, accept):
    if body.startswith(b"CRASH"):
        os._exit(3)
    if body.startswith(b"HANG"):
        time.sleep(60)
    if body.startswith(b"PRINT"):
        print("hello from the handler", file=sys.stderr, flush=True)
    if body.startswith(b"PID"):
        return str(os.getpid()).encode(), "text/plain"
    return body, content_type
