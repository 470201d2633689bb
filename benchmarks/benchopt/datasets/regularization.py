"""Regularization selection: L2-logistic regression with a per-feature exp(x_j) penalty on scikit-learn's
breast-cancer data (``benchmark_utils/ml_tasks.py``)."""

from benchopt import BaseDataset

from benchmark_utils.ml_tasks import RegularizationTask


class Dataset(BaseDataset):
    name = "regularization"
    parameters = {"seed": [0]}

    def get_data(self):
        return dict(task=RegularizationTask(seed=self.seed))
