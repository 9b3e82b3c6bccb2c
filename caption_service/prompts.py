"""What vision-language models are asked, and the version that identifies it."""

from __future__ import annotations

import hashlib

from caption_service.settings import CaptionSettings

# LLaVA-1.5's chat template: exactly one <image> placeholder per image.
LLAVA_TEMPLATE = "USER: <image>\n{instruction} ASSISTANT:"


def version_of(text: str) -> str:
    """A short stable version derived from the prompt text itself: edit it, get a new one."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def instruction_template(settings: CaptionSettings, class_hint: bool) -> str:
    return settings.caption_class_instruction if class_hint else settings.caption_instruction


def instruction(settings: CaptionSettings, class_hint: bool, class_name: str | None) -> str:
    template = instruction_template(settings, class_hint)
    return template.replace("{class_name}", class_name or "") if class_hint else template


def llava_prompt(text: str) -> str:
    return LLAVA_TEMPLATE.format(instruction=text)
