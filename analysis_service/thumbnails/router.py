"""HTTP route of image thumbnails."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from analysis_service.db import Session
from analysis_service.deps import RowId
from analysis_service.thumbnails.service import Thumbnails, ThumbnailSize
from shared.errors import ErrorBody

router = APIRouter(tags=["images"])

# A thumbnail's URL (image id and size) always means the same bytes: the image id is one
# version of a file, never updated. Private: the response needs a key.
CACHE_CONTROL = "private, max-age=31536000, immutable"
MAX_IF_NONE_MATCH = 2048


def get_thumbnails(request: Request) -> Thumbnails:
    return request.app.state.thumbnails


ThumbnailService = Annotated[Thumbnails, Depends(get_thumbnails)]


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: '*', or a listed tag equal to etag (weak comparison)."""
    tags = (tag.strip() for tag in if_none_match.split(","))
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


@router.get(
    "/v1/images/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The thumbnail, a JPEG."},
        304: {"description": "Not modified: the If-None-Match tag is this thumbnail's."},
        404: {
            "model": ErrorBody,
            "description": "No such image (`not_found`), its file is gone (`file_gone`), or "
            "it has none: imported from a captions file (`no_image_file`).",
        },
        410: {
            "model": ErrorBody,
            "description": "The file changed since it was scanned (`file_changed`).",
        },
        422: {
            "model": ErrorBody,
            "description": "The image cannot be shown (`invalid_image`, with the reason), "
            "or a size not offered (`validation_error`).",
        },
    },
)
async def image_thumbnail(
    image_id: RowId,
    session: Session,
    thumbnails: ThumbnailService,
    size: Annotated[
        ThumbnailSize, Query(description="The longest side, in pixels (never enlarged).")
    ] = ThumbnailSize.MEDIUM,
    if_none_match: Annotated[str | None, Header(max_length=MAX_IF_NONE_MATCH)] = None,
) -> Response:
    """A JPEG thumbnail of an image, EXIF-oriented, made from its file in the dataset as long
    as that file is still the one the job's scan saw."""
    wanted = await thumbnails.find(session, image_id, size)
    # The database is done with: its connection goes back to the pool before the file work
    # (a grid asks for dozens of thumbnails at once, most of them waiting for a decode).
    await session.commit()
    headers = {"ETag": wanted.etag, "Cache-Control": CACHE_CONTROL}
    # Even a 304 first checks the file: a browser is never told a gone file's copy is good.
    fresh = if_none_match is not None and _matches(if_none_match, wanted.etag)
    jpeg = await thumbnails.jpeg(wanted, body=not fresh)
    if jpeg is None:
        return Response(status_code=304, headers=headers)
    return Response(jpeg, media_type="image/jpeg", headers=headers)
