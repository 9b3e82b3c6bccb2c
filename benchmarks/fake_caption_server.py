"""A caption service process whose vLLM engine is the fake AsyncLLM (benchmarks only).

`python -m benchmarks.fake_caption_server PORT STEP_S TOKENS MAX_NUM_SEQS`
"""

from __future__ import annotations

import sys

import uvicorn

from caption_service.app import create_app
from caption_service.engines.vllm_engine import VllmEngine, build_sampling_params
from caption_service.settings import CaptionSettings
from tests.fakes.fake_vllm import FakeAsyncLLM, FakeOutputKind, FakeSamplingParams


def main() -> None:
    port, step_s, tokens, seqs = (
        int(sys.argv[1]),
        float(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    settings = CaptionSettings(caption_engine="vllm", caption_max_tokens=tokens)
    params = build_sampling_params(settings, lambda **kw: FakeSamplingParams(kw), FakeOutputKind)

    def engine(s: CaptionSettings, _executor: object) -> VllmEngine:
        fake = FakeAsyncLLM(step_s=step_s, max_num_seqs=seqs, caption_tokens=tokens)
        return VllmEngine(fake, s, lambda: params)

    app = create_app(settings, engine)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
