"""Training engine on HuggingFace Accelerate: one epoch of training, evaluation, run folders.

The same code runs on one CPU process, several GPUs or several nodes (``accelerate launch``).

- :func:`train_one_epoch` (``loop.py``): one pass over the training loader, with MSG's step
  counter and TWO's end-of-epoch factor update.
- :func:`evaluate` (``evaluate.py``): accuracy of the weighted output and of every timestep,
  gathered across processes.
- :func:`create_run_dir`, :func:`write_json`, :func:`write_csv` (``run_dir.py``): a
  timestamped run folder and atomic writes of its records, from the main process.
- :class:`RecipeConfig`, :func:`run`, :func:`run_variants` (``recipe.py``): the runner
  behind ``recipes/``: one experiment of the paper per config, a run folder with metrics,
  checkpoints and plots, exact resume; ablations and sweeps as sets of variants.
- :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`latest_checkpoint`
  (``checkpoint.py``): safetensors weights and a state file, written atomically.
- ``plots.py``: the paper's figures (curves, per-timestep accuracy, TWO factors, firing
  rate, time per epoch) with matplotlib's Agg canvas.
"""

from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.loop import temporal_head, train_one_epoch
from sparsegrad.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sparsegrad.train.recipe import RecipeConfig, run, run_variants
from sparsegrad.train.run_dir import create_run_dir, write_csv, write_json

__all__ = [
    "train_one_epoch",
    "evaluate",
    "temporal_head",
    "create_run_dir",
    "write_json",
    "write_csv",
    "RecipeConfig",
    "run",
    "run_variants",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
]
