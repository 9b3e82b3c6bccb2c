"""The caption service's one credential: CAPTION_API_KEY, a secret shared with the analysis
service. Unset, the service is open (it is meant to be reachable only by the workers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from caption_service.state import CaptionState
from shared.bearer import bearer_token, same_secret
from shared.errors import Unauthorized

REALM = "caption"
# Declares the scheme in the OpenAPI schema; the header is read by bearer_token below.
_bearer_scheme = HTTPBearer(auto_error=False, description="CAPTION_API_KEY, when it is set.")


def require_caption_key(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> None:
    """401 unless the request carries CAPTION_API_KEY as its Bearer token (when it is set)."""
    state: CaptionState = request.app.state.captioner
    expected = state.settings.caption_api_key.get_secret_value()
    if not expected:
        return
    token = bearer_token(request, REALM)
    if token is None:
        raise Unauthorized("this caption service requires CAPTION_API_KEY", realm=REALM)
    if not same_secret(token, expected):
        raise Unauthorized("wrong caption service key", realm=REALM, error="invalid_token")
