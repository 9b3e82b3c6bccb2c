"""The caption service's one credential: CAPTION_API_KEY, a secret shared with the analysis
service. Unset, the service is open (it is meant to be reachable only by the workers)."""

from __future__ import annotations

from fastapi import Request

from caption_service.state import CaptionState
from shared.bearer import bearer_token, same_secret
from shared.errors import Unauthorized

REALM = "caption"


def require_caption_key(request: Request) -> None:
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
