"""Training engine on HuggingFace Accelerate: configuration, data, one seed's fit, the runner.

The same code runs on one CPU process, several GPUs or several nodes (``accelerate launch``).
``python -m sparsegrad.train --dataset ... --model ...`` runs any combination (every field of
[RecipeConfig][sparsegrad.train.config.RecipeConfig] is a flag).

- [config][sparsegrad.train.config]: [RecipeConfig][sparsegrad.train.config.RecipeConfig] and
  every check on it, done before anything is written.
- [build][sparsegrad.train.build]: datasets (from [sparsegrad.data][sparsegrad.data]'s registry,
  or any Dataset pair), the timm model, loaders.
- [session][sparsegrad.train.session]: one seed's set-up; [schedule][sparsegrad.train.schedule]:
  the cosine decay, re-plannable; [neurons][sparsegrad.train.neurons]: sparsegrad, spikingjelly
  and snntorch neurons found and reset.
- [fit][sparsegrad.train.fit]: one seed's epochs, checkpoints and records.
- [loop][sparsegrad.train.loop] and [evaluate][sparsegrad.train.evaluate]:
  [train_one_epoch][sparsegrad.train.loop.train_one_epoch] and
  [evaluate][sparsegrad.train.evaluate.evaluate], usable on their own.
- [store][sparsegrad.train.store]: the run folder's layout, atomic writes, resume points;
  [record][sparsegrad.train.record]: the typed per-epoch record;
  [state][sparsegrad.train.state] and [checkpoint][sparsegrad.train.checkpoint]: what a
  checkpoint holds; safetensors weights and a state file, written atomically.
- [runner][sparsegrad.train.runner]: [run][sparsegrad.train.runner.run] (every seed, exact
  resume, any timm model or a built one) and [run_variants][sparsegrad.train.runner.run_variants].
- [report][sparsegrad.train.report]: one summary and one table; [log][sparsegrad.train.log],
  [plots][sparsegrad.train.plots] (the paper's figures), [probes][sparsegrad.train.probes].
- [paper][sparsegrad.train.paper]: the paper's recipes with its Table 1 and Table 2 numbers.
"""

from sparsegrad._extras import require

require("train", __name__)  # before the imports that need the extra

from sparsegrad.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from sparsegrad.train.config import RecipeConfig
from sparsegrad.train.evaluate import evaluate
from sparsegrad.train.loop import temporal_head, train_one_epoch
from sparsegrad.train.record import EpochRecord
from sparsegrad.train.runner import run, run_variants
from sparsegrad.train.store import RunFolder, SeedFolder, create_run_dir, write_csv, write_json

__all__ = [
    "train_one_epoch",
    "evaluate",
    "temporal_head",
    "create_run_dir",
    "write_json",
    "write_csv",
    "RecipeConfig",
    "EpochRecord",
    "RunFolder",
    "SeedFolder",
    "run",
    "run_variants",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
]
