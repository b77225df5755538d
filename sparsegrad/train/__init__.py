"""Training engine on HuggingFace Accelerate: one epoch of training, evaluation, run folders.

The same code runs on one CPU process, several GPUs or several nodes (``accelerate launch``).

- :func:`train_one_epoch` (``loop.py``): one pass over the training loader, with MSG's step
  counter and TWO's end-of-epoch factor update.
- :func:`evaluate` (``evaluate.py``): accuracy of the weighted output and of every timestep,
  gathered across processes.
- :func:`create_run_dir`, :func:`write_json`, :func:`write_csv` (``run_dir.py``): a
  timestamped run folder and atomic writes of its records, from the main process.
"""

from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.loop import temporal_head, train_one_epoch
from sparsegrad.train.run_dir import create_run_dir, write_csv, write_json

__all__ = [
    "train_one_epoch",
    "evaluate",
    "temporal_head",
    "create_run_dir",
    "write_json",
    "write_csv",
]
