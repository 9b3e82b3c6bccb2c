"""A fake of a decoder that crashes: what the pixel engine's describing processes run on a
run of images (its `describe_run`), ending the process outright, as a segfault would, on a
run that holds an item whose id starts with 'crash', and describing the others as the
engine does. Module-level, so that the engine's processes can unpickle it by name."""

from __future__ import annotations

import os
from typing import Any

from caption_service.engines import pixel
from caption_service.engines.base import FileCaption
from shared.caption_contract import CaptionImage


def describe_or_crash(items: list[CaptionImage], **kwargs: Any) -> list[FileCaption]:
    if any(item.id.startswith("crash") for item in items):
        os._exit(70)
    return pixel._describe_files(items, **kwargs)
