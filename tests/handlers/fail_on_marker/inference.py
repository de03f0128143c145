"""Echoes payloads, upper-cased, but fails on any payload containing FAIL."""


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    if b"FAIL" in body:
        raise ValueError("found the FAIL marker")
    return body.upper(), accept or content_type
