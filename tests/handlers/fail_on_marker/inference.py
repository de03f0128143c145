"""Echoes payloads, upper-cased, but fails on any payload containing FAIL.

A payload containing FLAKY fails the first time this worker sees it, as a model
briefly out of memory does, and is answered when it comes again.
Written as for the SageMaker inference toolkit: text/csv bodies arrive as str.
"""

SEEN_FLAKY = set()


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    if "FAIL" in body:
        raise ValueError("found the FAIL marker")
    if "FLAKY" in body and body not in SEEN_FLAKY:
        SEEN_FLAKY.add(body)
        raise MemoryError("out of memory, this time")
    return body.upper(), accept or content_type
