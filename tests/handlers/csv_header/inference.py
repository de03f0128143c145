"""A classic bug: predictions written with a CSV header row (pandas' to_csv default),
so every answer has one record more than its request."""


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return "prediction\n" + body, "text/csv"
