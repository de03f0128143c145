"""`image_uris.retrieve`: the registry URIs SageMaker gives its built-in algorithms.

batchform runs the built-in algorithms it implements (PCA, k-means) when a training job
or model names one of these URIs (or `builtin:<name>`), so code that asks
`image_uris.retrieve("pca", region)` for an image runs unchanged. Any other framework or
algorithm has no image batchform can run: asking for it is an error that says what can.
"""

from __future__ import annotations

import os

from batchform.service import BUILTIN_ALGORITHMS, BUILTIN_PREFIX

__all__ = ["get_image_uri", "retrieve", "supported_frameworks"]

DEFAULT_REGION = "us-east-1"
_VERSIONS = ("1", "latest")

# The AWS accounts hosting SageMaker's first-party algorithm images, by region (the same
# account serves every built-in algorithm of a region).
_ALGORITHM_ACCOUNTS = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "469771592824",
    "ca-west-1": "190319476487",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-central-2": "680994064768",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-south-2": "104374241257",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}


def supported_frameworks() -> tuple[str, ...]:
    """The algorithms `retrieve` knows: the built-ins batchform runs."""
    return tuple(BUILTIN_ALGORITHMS)


def retrieve(
    framework: str,
    region: str | None = None,
    version: str | None = None,
    py_version: str | None = None,
    instance_type: str | None = None,
    accelerator_type: str | None = None,
    image_scope: str | None = None,
    **_other: object,
) -> str:
    """The image URI of a built-in algorithm, as SageMaker's `image_uris.retrieve` gives it.

    `region` defaults to AWS_DEFAULT_REGION (else us-east-1); `version` is "1" (the
    default) or "latest". py_version, instance_type and image_scope do not choose among
    built-in algorithm images and are accepted for compatibility; so are the rarer
    options of the sagemaker SDK's signature.
    """
    if framework not in BUILTIN_ALGORITHMS:
        raise ValueError(_unsupported(framework))
    if accelerator_type is not None:
        raise ValueError(
            f"accelerator_type: batchform has no Elastic Inference ({accelerator_type})"
        )
    tag = version or "1"
    if tag not in _VERSIONS:
        raise ValueError(
            f"Unsupported {framework} version: {version}. Supported {framework} version(s): 1."
        )
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return f"{_registry(region or DEFAULT_REGION)}/{framework}:{tag}"


def get_image_uri(region_name: str | None, repo_name: str, repo_version: str = "1") -> str:
    """The sagemaker SDK v1 spelling (`get_image_uri(region, "pca", "latest")`), which
    older notebooks still use."""
    return retrieve(repo_name, region_name, version=repo_version)


def _registry(region: str) -> str:
    account = _ALGORITHM_ACCOUNTS.get(region)
    if account is None:
        known = ", ".join(sorted(_ALGORITHM_ACCOUNTS))
        raise ValueError(f"Unsupported region: {region}. Regions with built-in images: {known}.")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}"


def _unsupported(framework: str) -> str:
    runnable = ", ".join(BUILTIN_ALGORITHMS)
    return (
        f"batchform cannot run SageMaker's {framework!r} image: it has no container runtime "
        f"and runs only its own built-in algorithms ({runnable}). For anything else give a "
        f"local folder holding 'train' / 'serve' executables, a Python handler folder with "
        f"inference.py, or `{BUILTIN_PREFIX}<algorithm>` as the image."
    )
