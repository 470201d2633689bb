"""Data cleaning on scikit-learn's digits with a ``ratio`` of corrupted training labels
(``benchmark_utils/ml_tasks.py``)."""

from benchopt import BaseDataset

from benchmark_utils.ml_tasks import DataCleaningTask


class Dataset(BaseDataset):
    name = "datacleaning"
    parameters = {"ratio": [0.5], "seed": [0]}

    def get_data(self):
        return dict(task=DataCleaningTask(ratio=self.ratio, seed=self.seed))
