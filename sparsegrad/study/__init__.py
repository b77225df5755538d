"""The evidence: the paper's Table 2 ablation and Fig. 5 p sweep, paired by seed, with statistics.

- ``plan.py``: tasks, the four variants, the sweep, and running them on the one engine
  ([run][sparsegrad.train.run]), resumable.
- ``collect.py``: one record per finished run.
- ``stats.py``: mean ± sd, paired differences with t intervals, exact Wilcoxon and sign-flip tests.
- ``report.py``: the tables.
- ``figures.py``: the figures.

``recipes/study.py`` (``make study``) runs it on the embedded N-MNIST and CIFAR-10 data.
"""

from sparsegrad._extras import require

require("study", __name__)  # before the imports that need the extra

from sparsegrad.study.collect import collect
from sparsegrad.study.plan import VARIANTS, Planned, Task, ablation_runs, run_all, sweep_label, sweep_runs
from sparsegrad.study.report import ablation_rows, cost_rows, cost_table, markdown_table, most_moved_by_msg, sweep_rows
from sparsegrad.study.stats import mean_sd, paired_comparison

__all__ = [
    "VARIANTS", "Planned", "Task", "ablation_runs", "ablation_rows", "collect", "cost_rows", "cost_table", "markdown_table",
    "mean_sd", "most_moved_by_msg", "paired_comparison", "run_all", "sweep_label", "sweep_rows", "sweep_runs",
]
