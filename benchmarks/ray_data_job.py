"""Baseline (c): Ray Data `map_batches` running the same handler over the same file.

Two CPUs, one actor per CPU holding the loaded model (Ray Data's recommended pattern for
stateful models), reading with `read_text` and writing the answers with `write_csv`.
"""

from __future__ import annotations

import sys
from typing import Any


def main(model_dir: str, input_path: str, output_dir: str, rows_per_batch: int) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    class Model:
        def __init__(self) -> None:
            from batchform.runtimes.handler_module import (
                HandlerSource,
                find_handler,
                load_handler,
            )

            found = find_handler(model_dir)
            self.handler = load_handler(HandlerSource(model_dir, found.code_path))

        def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
            payload = ("\n".join(batch["text"]) + "\n").encode()
            body, _ = self.handler.transform(payload, "text/csv", "text/csv")
            return {"prediction": body.decode().splitlines()}

    dataset = ray.data.read_text(input_path)
    dataset = dataset.map_batches(
        Model, batch_size=rows_per_batch, concurrency=2, batch_format="numpy"
    )
    dataset.write_csv(output_dir)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
