"""``python -m sparsegrad.nir RUN_FOLDER [--seed S] [--out model.nir]``: export a trained run."""

from .run import main

main()
