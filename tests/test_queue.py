"""The names the queue entry is written with are the ones the worker's task is registered under."""

from __future__ import annotations

from analysis_service.jobs.tasks import make_queue_app
from analysis_service.queue import QUEUE, RUN_JOB_TASK, RUN_SHARD_TASK


def test_the_enqueued_task_names_and_queue_are_the_registered_ones():
    app = make_queue_app("postgresql://unused@127.0.0.1:1/none")  # connects only when opened
    for name in (RUN_JOB_TASK, RUN_SHARD_TASK):
        assert name in app.tasks
        assert app.tasks[name].queue == QUEUE


def test_every_queue_app_in_a_process_has_the_task_under_its_name():
    """Tests and an in-process worker make several apps; each must find the task."""
    apps = [make_queue_app("postgresql://unused@127.0.0.1:1/none") for _ in range(3)]
    assert all(RUN_JOB_TASK in app.tasks for app in apps)
    assert all(app.tasks[RUN_JOB_TASK].queue == QUEUE for app in apps)
