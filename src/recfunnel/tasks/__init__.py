"""Tasks own the loss, the link function and the default metrics; models only return logits."""

from typing import Any

from recfunnel.tasks.base import (
    GROUP,
    OBJECTIVES,
    BinaryTask,
    RankingTask,
    RegressionTask,
    RetrievalTask,
    Task,
    single_task_from_dict,
    task_for_label,
)
from recfunnel.tasks.conversion import ConversionTask
from recfunnel.tasks.multitask import MultiTask


def task_from_dict(data: dict[str, Any]) -> Task | MultiTask:
    """Rebuild a task from its ``to_dict`` output (a single-label task, a MultiTask or a ConversionTask)."""
    for cls in (MultiTask, ConversionTask):
        if isinstance(data, dict) and data.get("kind") == cls.kind:
            return cls.from_dict(data)
    return single_task_from_dict(data)


__all__ = ["GROUP", "OBJECTIVES", "BinaryTask", "ConversionTask", "MultiTask", "RankingTask", "RegressionTask", "RetrievalTask", "Task",
           "task_for_label", "task_from_dict"]
