"""``python -m sparsegrad.train --dataset ... --model ... [--flag ...]``: train any combination."""

from sparsegrad.train.cli import main

if __name__ == "__main__":
    main(description="Train a sparsegrad model on a dataset with MSG and TWO; every RecipeConfig field is a flag.",
         prog="python -m sparsegrad.train")
