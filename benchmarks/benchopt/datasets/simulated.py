"""benchopt's simulated quadratic (``benchmarks/simulated_quadratic.py``): ``spec`` = benchmark (1024 / 1024
samples, 100 / 100 dimensions), published (32768 / 1024, 100 / 10) or tiny."""

from benchopt import BaseDataset

from benchmark_utils.tasks import SimulatedTask


class Dataset(BaseDataset):
    name = "simulated"
    parameters = {"spec": ["benchmark"]}

    def get_data(self):
        return dict(task=SimulatedTask(self.spec))
