"""The caption service's one credential: CAPTION_API_KEY, a secret shared with the analysis
service. Unset, the service is open to this machine only: it answers loopback clients that
address it by a loopback name (as the analysis API without keys does), so neither another
machine nor a web page that points its own name at 127.0.0.1 (DNS rebinding) can use it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caption_service.state import CaptionState
from shared.bearer import bearer_token, same_secret
from shared.errors import Unauthorized
from shared.loopback import require_this_machine

REALM = "caption"
# Declares the scheme in the OpenAPI schema; the header is read by bearer_token below.
_bearer_scheme = HTTPBearer(auto_error=False, description="CAPTION_API_KEY, when it is set.")
HOW_TO_SET_THE_KEY = (
    "set CAPTION_API_KEY to a long random secret here and the same on the analysis service"
)


def require_caption_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> None:
    """401 unless the request carries CAPTION_API_KEY as its Bearer token (when it is set);
    with none set, 403 unless the request comes from loopback, addressed to a loopback name."""
    state: CaptionState = request.app.state.captioner
    expected = state.settings.caption_api_key.get_secret_value()
    if not expected:
        require_this_machine(
            request, "no CAPTION_API_KEY is configured, so this caption service", HOW_TO_SET_THE_KEY
        )
        return
    token = bearer_token(request, REALM)
    if token is None:
        raise Unauthorized("this caption service requires CAPTION_API_KEY", realm=REALM)
    if not same_secret(token, expected):
        raise Unauthorized("wrong caption service key", realm=REALM, error="invalid_token")
