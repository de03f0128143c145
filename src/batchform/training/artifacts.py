"""A training job's results: `model/` and `output/data/` as tarballs in S3OutputPath.

SageMaker writes `<S3OutputPath>/<job>/output/model.tar.gz` (DescribeTrainingJob's
ModelArtifacts.S3ModelArtifacts, what CreateModel's ModelDataUrl then names) and
`output.tar.gz` next to it. Members sit at the top of the archive (`model.pth`, not
`model/model.pth`), since serving extracts the tarball into its own `model/`.
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path

from batchform.storage import atomic_output

MODEL_TARBALL = "model.tar.gz"
#: Where the model goes with OutputDataConfig.CompressionType NONE: its files, unpacked.
MODEL_FOLDER = "model"
OUTPUT_TARBALL = "output.tar.gz"
# zlib's default: close to level 9's size at a fraction of its time on large weights.
_COMPRESS_LEVEL = 6
_COPY_CHUNK = 1 << 20


def artifact_url(output_path: str, job_name: str, tarball: str) -> str:
    """`<output_path>/<job_name>/output/<tarball>`, joined with exactly one '/'."""
    return f"{output_path.rstrip('/')}/{job_name}/output/{tarball}"


def upload_folder(folder: Path, url: str) -> None:
    """Stream `folder`'s contents as a gzipped tarball to `url`; nothing appears there
    unless the whole archive was written (StorageError otherwise)."""
    # mtime=0: the same folder gives the same bytes, whenever it is packed.
    with (
        atomic_output(url) as sink,
        gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=_COMPRESS_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|") as archive,
    ):
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            archive.add(entry, arcname=entry.name)


def upload_files(folder: Path, prefix_url: str) -> None:
    """Copy every file below `folder` to `<prefix_url><relative path>`, each atomically."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            with path.open("rb") as source, atomic_output(prefix_url + relative) as sink:
                shutil.copyfileobj(source, sink, _COPY_CHUNK)


def has_content(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())
