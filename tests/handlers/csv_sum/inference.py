"""A CSV model: each row of numbers is answered with its sum and its largest value.

Written as for the SageMaker inference toolkit (model_fn + transform_fn; text/csv bodies
arrive as str). Integers stay integers, so tests can compare output bytes exactly.
A row whose first field is `skip` gets no answer: a model that drops a record, which a
JoinSource=Input job must catch rather than shift every later prediction by one row.
"""


def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    answers = []
    for line in body.splitlines():
        fields = line.split(",")
        if fields[0] == "skip":
            continue
        numbers = [int(field) for field in fields]
        answers.append(f"{sum(numbers)},{max(numbers)}\n")
    return "".join(answers), "text/csv"
