"""Database tables (SQLAlchemy 2 typed models); Alembic migrations must match them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict] = {dict[str, Any]: JSONB, uuid.UUID: UUID(as_uuid=True)}


class Dataset(Base):
    """A folder of class subfolders, identified by its resolved path."""

    __tablename__ = "dataset"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    root_path: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = _now()


class Image(Base):
    """What one file of a dataset was when a scan saw it; valid ones carry the content hash
    their captions are keyed by. Never updated: a file found changed gets a new row (a new
    version of its relpath), so every job keeps the rows it saw and its answers never change."""

    __tablename__ = "image"
    __table_args__ = (
        Index("ix_image_dataset_id_relpath", "dataset_id", "relpath"),
        # Discovery reads a job's images one class at a time, in id order (see captioned).
        Index("ix_image_dataset_id_class_name_id", "dataset_id", "class_name", "id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    relpath: Mapped[str] = mapped_column(Text)
    class_name: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # The file's status-change time and inode when it was scanned: a user can set a file's
    # mtime back, not its ctime, so a later scan trusts a stored version only when all four
    # (size, mtime, ctime, inode) still match. Null on versions scanned before they were kept.
    ctime_ns: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    invalid_reason: Mapped[str | None] = mapped_column(Text)
    scanned_at: Mapped[datetime] = _now()


class Caption(Base):
    """A caption of some image bytes under one caption key (engine, model, prompt, params)."""

    __tablename__ = "caption"
    __table_args__ = (UniqueConstraint("content_hash", "caption_key"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    caption_key: Mapped[str] = mapped_column(String(64), index=True)
    engine: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(Text)
    prompt_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32), default="generated")
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = _now()


class CaptionConfig(Base):
    """The full description behind a caption key, stored once."""

    __tablename__ = "caption_config"
    caption_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()


class Job(Base):
    """One discovery run over a dataset."""

    __tablename__ = "job"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    images: Mapped[int] = mapped_column(Integer, default=0)
    valid: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    caption_key: Mapped[str | None] = mapped_column(String(64))
    reasoner: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    llm_estimate: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Running totals of its llm_call rows, added to as each call is recorded (same
    # transaction), so polling a job never sums its calls.
    llm_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    llm_prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    llm_completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The API key (by name) that submitted it; None in open mode. Spending is summed by it.
    api_key_name: Mapped[str | None] = mapped_column(Text, index=True)
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now()


class JobImage(Base):
    """The image rows (file versions) one job saw; a caption failure is recorded here, per job.

    job_id and image_id reference job and image as foreign keys would (each one exists and is
    locked for the writing transaction; a deleted job's or image's links go with it), checked
    by triggers once per statement, not per row: a re-scan writes a link per file (migration
    0013)."""

    __tablename__ = "job_image"
    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    caption_error: Mapped[str | None] = mapped_column(Text)


class JobEvent(Base):
    """Timeline of a job: each attempt started, interrupted or ended, with the stage it was in."""

    __tablename__ = "job_event"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = _now()
    kind: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)


class JobShard(Base):
    """One queued piece of a job's stage: a range of the scan's walk (relpaths in walk order,
    `lo` included, `hi` excluded, None for open ends), a range of image ids to caption (the
    same, as decimal text), or one class to discover (`lo`). Any worker may run a pending
    shard; whoever runs it holds its advisory lock, so a shard whose runner died is taken up
    by another. `done` counts its work so far (the job's progress is the sum over its shards)."""

    __tablename__ = "job_shard"
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    lo: Mapped[str | None] = mapped_column(Text)
    hi: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    # Times a runner took it up, and who finished it (host:pid): a finished shard is never
    # taken up again.
    runs: Mapped[int] = mapped_column(Integer, default=0)
    finished_by: Mapped[str | None] = mapped_column(Text)
    # Why a runner other than the job's own could not finish it; the job fails with it.
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobClass(Base):
    """Per-class discovery state, so a resumed job skips classes already structured."""

    __tablename__ = "job_class"
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("job.id", ondelete="CASCADE"), primary_key=True
    )
    class_name: Mapped[str] = mapped_column(Text, primary_key=True)
    images: Mapped[int] = mapped_column(Integer, default=0)
    structured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Dimension(Base):
    """A way to split one class of one job (e.g. background)."""

    __tablename__ = "dimension"
    __table_args__ = (
        UniqueConstraint("job_id", "class_name", "name"),
        # The order of a job's subpopulation listing (class, then discovery's order).
        Index("ix_dimension_job_id_class_name_position", "job_id", "class_name", "position"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    class_name: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Attribute(Base):
    """A value of a dimension (e.g. snow); with its images it is one subpopulation."""

    __tablename__ = "attribute"
    __table_args__ = (
        UniqueConstraint("dimension_id", "name"),
        # What an assignment references: an attribute with its dimension.
        UniqueConstraint("id", "dimension_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dimension_id: Mapped[int] = mapped_column(ForeignKey("dimension.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    is_other: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(Integer, default=0)
    share: Mapped[float] = mapped_column(Float, default=0.0)


class Assignment(Base):
    """Which attribute one image got in one dimension of its class."""

    __tablename__ = "assignment"
    __table_args__ = (
        Index("ix_assignment_attribute_id_image_id", "attribute_id", "image_id"),
        # Only an image the job saw can be assigned in it; the job goes with its images.
        ForeignKeyConstraint(
            ["job_id", "image_id"], ["job_image.job_id", "job_image.image_id"], ondelete="CASCADE"
        ),
        # Only an attribute of the dimension; the dimension goes with its attributes. Two
        # references checked per row, not four (migration 0015).
        ForeignKeyConstraint(
            ["attribute_id", "dimension_id"],
            ["attribute.id", "attribute.dimension_id"],
            ondelete="CASCADE",
        ),
    )
    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dimension_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    attribute_id: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)  # why 'other' was recorded, when forced


class LLMCall(Base):
    """Every LLM request made, with its cost; an identical request reuses a stored answer."""

    __tablename__ = "llm_call"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), index=True
    )
    step: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    raw_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    """A key created with `python -m analysis_service.auth keys create`: only its SHA-256 is
    stored. Revoked keys stay (jobs name them); a name is unique among the active ones."""

    __tablename__ = "api_key"
    __table_args__ = (
        Index(
            "uq_api_key_active_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, for telling keys apart in `keys list`.
    hint: Mapped[str] = mapped_column(String(16))
    # LLM tokens the key's jobs may spend in any 24 hours (None: KEY_DAILY_TOKENS applies).
    daily_tokens: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UiSession(Base):
    """An explorer sign-in: the SHA-256 of its cookie token, the SHA-256 of the key it was made
    with (a stored key or one of ANALYSIS_API_KEYS: it ends when that key is revoked or
    removed), the key's name and scope, and when it ends."""

    __tablename__ = "ui_session"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), index=True)
    key_name: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PredictionSet(Base):
    """One model's predictions (or one epoch's) on a finished job's images."""

    __tablename__ = "prediction_set"
    __table_args__ = (UniqueConstraint("job_id", "name"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()


class Prediction(Base):
    """What a model predicted for one image of the job, against the true class."""

    __tablename__ = "prediction"
    __table_args__ = (
        Index("ix_prediction_job_id_image_id", "job_id", "image_id"),
        # Only an image the job saw can be predicted in it; it goes with the job.
        ForeignKeyConstraint(
            ["job_id", "image_id"], ["job_image.job_id", "job_image.image_id"], ondelete="CASCADE"
        ),
    )
    set_id: Mapped[int] = mapped_column(
        ForeignKey("prediction_set.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    label: Mapped[str] = mapped_column(Text)
    prediction: Mapped[str] = mapped_column(Text)
    correct: Mapped[bool] = mapped_column(Boolean)
    confidence: Mapped[float | None] = mapped_column(Float)
    split: Mapped[str | None] = mapped_column(Text)


class TailPrompt(Base):
    """A prompt an LLM wrote for generating more images of one rare subpopulation (an
    attribute of a finished job); it goes with the job."""

    __tablename__ = "tail_prompt"
    attribute_id: Mapped[int] = mapped_column(
        ForeignKey("attribute.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    prompt: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
