"""A JSON Lines model: each record is a list of numbers, answered with {"score": sum}.

Written as for the SageMaker inference toolkit with input_fn / predict_fn / output_fn.
application/jsonlines bodies arrive as bytes and application/json bodies as str, as the
toolkit passes them. An application/json request (SingleRecord, or SplitType None) holds
one value; a JSON Lines request one value per line. An empty list gets no answer: a model
that drops a record, which a JoinSource=Input job must catch.
"""

import json


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if content_type == "application/json":
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def predict_fn(records, model):
    return [{"score": sum(features)} for features in records if features]


def output_fn(predictions, accept):
    lines = "".join(json.dumps(prediction) + "\n" for prediction in predictions)
    return lines, "application/jsonlines"
