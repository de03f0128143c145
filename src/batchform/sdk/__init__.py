"""A Python SDK shaped like the sagemaker v2 SDK, over batchform.

    from batchform import sdk
    sess = sdk.Session()                      # embedded; or Session(endpoint_url=...)
    pca = sdk.Estimator(image_uri=sdk.image_uris.retrieve("pca"), instance_count=1,
                        instance_type="local", output_path=..., sagemaker_session=sess)
    pca.set_hyperparameters(feature_dim=20, num_components=4, mini_batch_size=100)
    pca.fit({"train": sdk.inputs.TrainingInput(train_uri, content_type="text/csv")})
    pca.transformer(1, "local", strategy="MultiRecord", assemble_with="Line").transform(
        train_uri, content_type="text/csv", split_type="Line")
    predictor = pca.deploy(1, "local", serializer=sdk.serializers.CSVSerializer(),
                           deserializer=sdk.deserializers.JSONDeserializer())

Classes keep the sagemaker SDK's argument names and behaviour where batchform has the
concept, and raise errors that say so where it has not. It talks to batchform only
through `batchform.service` (embedded) or a server's API.
"""

from __future__ import annotations

from batchform.sdk import deserializers, exceptions, image_uris, inputs, serializers
from batchform.sdk.estimator import Estimator
from batchform.sdk.exceptions import ApiCallError, ModelError, UnexpectedStatusException
from batchform.sdk.model import Model
from batchform.sdk.predictor import Predictor
from batchform.sdk.session import Session, get_execution_role
from batchform.sdk.transformer import Transformer

__all__ = [
    "ApiCallError",
    "Estimator",
    "Model",
    "ModelError",
    "Predictor",
    "Session",
    "Transformer",
    "UnexpectedStatusException",
    "deserializers",
    "exceptions",
    "get_execution_role",
    "image_uris",
    "inputs",
    "serializers",
]
