"""Baseline (c): Ray Data `map_batches` running the same handler over the same file.

Two CPUs; a task-based map whose worker processes each load the model once (cached at
module level), so Ray fuses reading and inference into one task and keeps both CPUs
busy. Answers are written with `write_csv`.
"""

from __future__ import annotations

import sys
from typing import Any

_HANDLERS: dict[str, Any] = {}


def _handler(model_dir: str) -> Any:
    if model_dir not in _HANDLERS:
        from batchform.runtimes.handler_module import HandlerSource, find_handler, load_handler

        found = find_handler(model_dir)
        _HANDLERS[model_dir] = load_handler(HandlerSource(model_dir, found.code_path))
    return _HANDLERS[model_dir]


def main(model_dir: str, input_path: str, output_dir: str, rows_per_batch: int) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    def predict(batch: dict[str, Any]) -> dict[str, Any]:
        payload = ("\n".join(batch["text"]) + "\n").encode()
        body, _ = _handler(model_dir).transform(payload, "text/csv", "text/csv")
        return {"prediction": body.decode().splitlines()}

    dataset = ray.data.read_text(input_path)
    dataset = dataset.map_batches(predict, batch_size=rows_per_batch, batch_format="numpy")
    dataset.write_csv(output_dir)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
