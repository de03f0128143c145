"""Echoes payloads, upper-cased, but fails on any payload containing FAIL.

Written as for the SageMaker inference toolkit: text/csv bodies arrive as str.
"""


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    if "FAIL" in body:
        raise ValueError("found the FAIL marker")
    return body.upper(), accept or content_type
