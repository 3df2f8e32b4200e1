"""An offline demo world: seeded pictures of shapes and words, benchmark copies and training data drawn from it."""

from tinyllava_bench.demo.training_data import write_training_data
from tinyllava_bench.demo.world import DEMO_TASKS, IMAGE_MODES, task_rows, write_all_tasks, write_task_data

__all__ = [
    "DEMO_TASKS",
    "IMAGE_MODES",
    "task_rows",
    "write_all_tasks",
    "write_task_data",
    "write_training_data",
]
