"""STS GetCallerIdentity, so AWS tools that ask who they are work against the server.

The sagemaker SDK asks STS for the account id to name its default bucket
(`sagemaker-<region>-<account>`), and the AWS CLI's `aws sts get-caller-identity` is how
users check their set-up. STS speaks the AWS query protocol: a form-encoded POST with
`Action=…` and an XML answer. Only the one action is served; others get STS's own error.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from batchform.jobs.resources import DEFAULT_ACCOUNT
from batchform.server.protocol import Answer

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
_XML = "text/xml"


def is_query_request(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == FORM_CONTENT_TYPE


def answer(raw: bytes, request_id: str, access_key: str | None) -> Answer:
    """The answer to one STS query-protocol request."""
    form = parse_qs(raw.decode("utf-8", errors="replace"))
    action = (form.get("Action") or [""])[0]
    if action != "GetCallerIdentity":
        return _error(action, request_id)
    account = os.environ.get("BATCHFORM_ACCOUNT_ID", DEFAULT_ACCOUNT)
    user = escape(access_key or "batchform")
    body = (
        f'<GetCallerIdentityResponse xmlns="{_XMLNS}"><GetCallerIdentityResult>'
        f"<Arn>arn:aws:iam::{account}:user/{user}</Arn>"
        f"<UserId>{user}</UserId><Account>{account}</Account>"
        f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId>"
        "</ResponseMetadata></GetCallerIdentityResponse>"
    )
    return Answer(200, body.encode(), {"content-type": _XML})


def _error(action: str, request_id: str) -> Answer:
    message = escape(f"Could not find operation {action or '(none)'} for version 2011-06-15")
    body = (
        f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type>'
        f"<Code>InvalidAction</Code><Message>{message}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Answer(400, body.encode(), {"content-type": _XML})
