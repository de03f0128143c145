"""The handler inside this container: CSV echoed upper-cased, a line printed per load."""

import os


def model_fn(model_dir):
    print(f"handler container: model loaded in worker {os.getpid()}", flush=True)
    return None


def transform_fn(model, body, content_type, accept):
    return body.upper(), "text/csv"
