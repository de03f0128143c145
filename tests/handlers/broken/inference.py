"""model_fn fails: the job must fail at start with the reason."""


def model_fn(model_dir):
    raise FileNotFoundError("model.bin is missing")


def transform_fn(model, body, content_type, accept):
    return body
