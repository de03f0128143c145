"""Baseline (a): the handler called directly, in one process, over 6 MB chunks of the file.

This is the limit for one core: no batchform engine, no processes, no copies beyond
reading the file and writing the answers.
"""

from __future__ import annotations

import sys

from batchform.records.batching import make_batcher
from batchform.runtimes.handler_module import HandlerSource, find_handler, load_handler
from batchform.spec.enums import BatchStrategy, SplitType


def main(model_dir: str, input_path: str, output_path: str, chunk_mb: int = 6) -> None:
    found = find_handler(model_dir)
    handler = load_handler(HandlerSource(model_dir=model_dir, code_path=found.code_path))
    batcher = make_batcher(SplitType.LINE, BatchStrategy.MULTI_RECORD, chunk_mb)
    with open(input_path, "rb") as source, open(output_path, "wb") as sink:
        while True:
            chunk = source.read(chunk_mb * 1024 * 1024)
            if chunk:
                batcher.add(chunk)
            else:
                batcher.done_adding()
            while batcher.has_batch():
                body, _ = handler.transform(batcher.next_batch().payload, "text/csv", "text/csv")
                sink.write(body)
            if not chunk:
                return


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
