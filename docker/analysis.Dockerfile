# The analysis API, its worker and the one-shot migration share this image.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY caption_service ./caption_service
COPY analysis_service ./analysis_service
COPY migrations ./migrations
# Editable, so alembic.ini and migrations/ stay beside the code that finds them.
RUN pip install -e .
RUN useradd --create-home --uid 1000 app
USER app
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "--factory", "analysis_service.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
