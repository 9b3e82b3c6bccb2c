# The caption service with LLaVA-1.5 in-process on vLLM. The base image brings vLLM 0.33,
# torch and CUDA; our package's pins (fastapi, pillow) were chosen to fit vLLM's.
FROM vllm/vllm-openai:v0.33.0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY caption_service ./caption_service
COPY analysis_service ./analysis_service
COPY migrations ./migrations
RUN pip install -e '.[gpu]'
EXPOSE 8001
# The base image's entrypoint is `vllm serve`; this image serves our API instead.
ENTRYPOINT []
CMD ["python3", "-m", "uvicorn", "--factory", "caption_service.app:create_app", "--host", "0.0.0.0", "--port", "8001"]
