"""Echoes each payload after a pause, so a job runs long enough to be interrupted."""

import os
import time


def model_fn(model_dir):
    return float(os.environ.get("SLOW_SECONDS", "0.05"))


def transform_fn(model, body: bytes, content_type, accept):
    time.sleep(model)
    return body, content_type
