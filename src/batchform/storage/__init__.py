"""Where inputs are listed and read and outputs are written, for any fsspec URL.

URLs are passed straight through (plain paths and ``file://`` locally, ``s3://`` via
s3fs, any other fsspec protocol); failures surface as ``batchform.errors.StorageError``.
"""

from batchform.storage.filesystems import filesystem, read_bytes, remove
from batchform.storage.inputs import InputObject, list_inputs
from batchform.storage.reading import object_crc32c, open_input
from batchform.storage.writing import (
    append_object,
    atomic_output,
    join_objects,
    output_url,
    write_bytes,
)

__all__ = [
    "InputObject",
    "append_object",
    "atomic_output",
    "filesystem",
    "join_objects",
    "list_inputs",
    "object_crc32c",
    "open_input",
    "output_url",
    "read_bytes",
    "remove",
    "write_bytes",
]
