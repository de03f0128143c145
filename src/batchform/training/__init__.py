"""Training jobs: SageMaker's CreateTrainingJob run on this machine (DESIGN §3.5).

`TrainingRun(request).run()` lays out an `/opt/ml`-shaped workspace, copies the input
channels in (File mode), runs the image's `train` (a local folder's executable or a
built-in algorithm) in its own process group, and uploads `model.tar.gz` and
`output.tar.gz` to `<S3OutputPath>/<job>/output/`, reporting SageMaker's secondary
statuses as it goes.
"""

from batchform.training.images import TrainingCommand, resolve_training_image
from batchform.training.run import (
    TrainingOutcome,
    TrainingRun,
    parse_training_request,
    training_dir,
)
from batchform.training.status import SecondaryStatus, SecondaryStatusTransition

__all__ = [
    "SecondaryStatus",
    "SecondaryStatusTransition",
    "TrainingCommand",
    "TrainingOutcome",
    "TrainingRun",
    "parse_training_request",
    "resolve_training_image",
    "training_dir",
]
