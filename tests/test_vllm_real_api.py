"""The vLLM engine against the real vllm package: every class, call shape and field that
caption_service/engines/vllm_engine.py relies on, so that a vLLM release that would break the
engine fails here instead of on a GPU. No model is loaded (no weights, no GPU needed).

Skipped where vllm is not installed; `make test-vllm` (run by CI) runs it in a virtualenv
with the `gpu` extra, where REQUIRE_VLLM=1 turns a vllm that fails to import into a failure.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from pathlib import Path

import pytest
from PIL import Image

if os.environ.get("REQUIRE_VLLM") == "1":
    importlib.import_module("vllm")
else:
    pytest.importorskip("vllm")

from vllm import ModelRegistry
from vllm.exceptions import (
    GenerationError,
    MaxQueuedTokensError,
    QueueOverflowError,
    RetryableRequestError,
    VLLMValidationError,
)
from vllm.inputs import TextPrompt
from vllm.model_executor.models.llava import LlavaForConditionalGeneration
from vllm.multimodal.parse import MultiModalDataParser
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.renderers.inputs.preprocess import parse_dec_only_prompt
from vllm.v1.engine import FINISH_REASON_STRINGS
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

from caption_service.engines.base import EngineDead, EngineOutput, EngineUnavailable
from caption_service.engines.vllm_engine import (
    CAPTION_FINISH_REASONS,
    RETRY_FINISH_REASONS,
    AsyncLLMLike,
    VllmEngine,
    build_sampling_params,
    engine_args,
    engine_output,
    llava_request,
    vllm_api,
)
from caption_service.settings import CaptionSettings
from tests.fakes import fake_vllm

API = vllm_api()


@pytest.fixture
def settings(data_root: Path) -> CaptionSettings:
    return CaptionSettings(
        data_roots=str(data_root),
        caption_engine="vllm",
        caption_max_tokens=40,
        caption_seed=7,
        vllm_extra_args='{"enforce_eager": true}',
    )


def test_engine_args_build_async_engine_args_as_given(settings):
    args = engine_args(settings)
    built = API.AsyncEngineArgs(**args)
    assert {name: getattr(built, name) for name in args} == args
    # AsyncLLM.from_engine_args(args) is how from_settings builds the engine.
    inspect.signature(API.AsyncLLM.from_engine_args).bind(built)


def test_sampling_params_are_greedy_seeded_final_only(settings):
    params = build_sampling_params(settings, API.SamplingParams, API.RequestOutputKind)
    assert (params.temperature, params.max_tokens, params.seed) == (0.0, 40, 7)
    assert params.output_kind == API.RequestOutputKind.FINAL_ONLY
    # One object serves every request: vLLM clones it per request.
    assert params.clone().max_tokens == 40


def test_async_llm_takes_the_calls_the_engine_makes():
    llm, me = API.AsyncLLM, object()
    # generate(prompt, params, request_id) positionally, iterated with `async for`.
    assert inspect.isasyncgenfunction(llm.generate)
    inspect.signature(llm.generate).bind(me, {"prompt": ""}, object(), "caption-1")
    assert inspect.iscoroutinefunction(llm.abort)
    inspect.signature(llm.abort).bind(me, "caption-1")
    assert inspect.iscoroutinefunction(llm.check_health)
    inspect.signature(llm.check_health).bind(me)
    # close() calls shutdown() without awaiting it.
    assert not inspect.iscoroutinefunction(llm.shutdown)
    inspect.signature(llm.shutdown).bind(me)
    assert isinstance(inspect.getattr_static(llm, "errored"), property)
    wanted = {n for n in vars(AsyncLLMLike) if not n.startswith("_")} | {"errored"}
    assert all(hasattr(llm, name) for name in wanted)


def test_prompt_is_a_text_prompt_with_one_llava_image():
    image = Image.new("RGB", (672, 336), (10, 120, 200))
    prompt = llava_request(image, "Describe the image in detail.")
    assert set(prompt) <= TextPrompt.__required_keys__ | TextPrompt.__optional_keys__
    assert parse_dec_only_prompt(prompt) == prompt
    items = MultiModalDataParser().parse_mm_data(prompt["multi_modal_data"])
    assert items.get_count("image", strict=False) == 1
    assert tuple(items["image"].get_image_size(0)) == (672, 336)
    placeholder = LlavaForConditionalGeneration.get_placeholder_str("image", 1)
    assert prompt["prompt"].count(placeholder) == 1
    # The served checkpoint (llava-hf/llava-1.5-7b-hf) declares this architecture.
    assert "LlavaForConditionalGeneration" in ModelRegistry.get_supported_archs()


def _final(text: str, token_ids: list[int], reason: str) -> RequestOutput:
    done = CompletionOutput(
        index=0,
        text=text,
        token_ids=token_ids,
        cumulative_logprob=None,
        logprobs=None,
        finish_reason=reason,
    )
    return RequestOutput(
        request_id="caption-1",
        prompt="USER: <image>\nDescribe ASSISTANT:",
        prompt_token_ids=list(range(590)),
        prompt_logprobs=None,
        outputs=[done],
        finished=True,
    )


def test_final_output_is_read_from_real_request_outputs():
    got = engine_output(_final(" A red kite over water. ", [5, 6, 7, 8, 9], "stop"))
    assert got == EngineOutput(
        caption="A red kite over water.", prompt_tokens=590, output_tokens=5, finish_reason="stop"
    )
    assert engine_output(_final("A red", [5, 6], "length")).finish_reason == "length"


def test_every_vllm_finish_reason_has_a_meaning():
    # A reason added by vLLM must be decided on: a caption, or a request to retry.
    assert set(FINISH_REASON_STRINGS) <= CAPTION_FINISH_REASONS | RETRY_FINISH_REASONS
    for reason in RETRY_FINISH_REASONS:
        with pytest.raises(EngineUnavailable):
            engine_output(_final("", [], reason))


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (EngineDeadError(), EngineDead),
        (QueueOverflowError(), EngineUnavailable),
        (MaxQueuedTokensError(), EngineUnavailable),
        (RetryableRequestError("engine paused"), EngineUnavailable),
        (EngineGenerateError(), None),
        (GenerationError("internal"), None),
        (VLLMValidationError("prompt too long"), None),
    ],
)
async def test_vllm_errors_map_to_dead_busy_or_one_failed_image(settings, error, raised):
    llm = fake_vllm.FakeAsyncLLM()
    llm.refusal = error  # raised by generate, as the real AsyncLLM raises it
    engine = VllmEngine(llm, settings, lambda: None)
    image = Image.new("RGB", (336, 336))
    if raised is None:
        [out] = await engine.caption([image], ["Describe"])
        assert out.caption is None and "generation failed" in (out.error or "")
    else:
        with pytest.raises(raised):
            await engine.caption([image], ["Describe"])


def test_the_fake_engine_speaks_the_real_shapes():
    """tests/fakes/fake_vllm.py stands in for AsyncLLM everywhere else: keep it honest."""
    real_kinds = {kind.name: kind.value for kind in API.RequestOutputKind}
    assert {k.name: k.value for k in fake_vllm.FakeOutputKind} == real_kinds
    completion = set(inspect.signature(CompletionOutput).parameters)
    assert {f.name for f in dataclasses.fields(fake_vllm.FakeCompletionOutput)} <= completion
    request = set(inspect.signature(RequestOutput).parameters)
    assert {f.name for f in dataclasses.fields(fake_vllm.FakeRequestOutput)} <= request
    for name in ("generate", "abort", "check_health", "shutdown"):
        fake, real = getattr(fake_vllm.FakeAsyncLLM, name), getattr(API.AsyncLLM, name)
        assert inspect.isasyncgenfunction(fake) == inspect.isasyncgenfunction(real)
        assert inspect.iscoroutinefunction(fake) == inspect.iscoroutinefunction(real)
    assert fake_vllm.EngineDeadError.__name__ == EngineDeadError.__name__
    assert fake_vllm.QueueOverflowError.http_status == QueueOverflowError().http_status
