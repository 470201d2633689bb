"""Install bilevel_tf: `pip install -e .` (add `[test]` for pytest, `[docs]` for the documentation site,
`[bench]` for the benchopt benchmark in benchmarks/benchopt)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent


def _requirements(name: str) -> list:
    lines = (here / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="bilevel_tf",
    version="0.1.0",
    description="Deep bilevel optimization in TensorFlow 2 / Keras 3: the Penalty method "
    "(Mehra & Hamm, ACML 2021), ApproxGrad, RMD/T-RHG, GD, V-PBGD and G-PBGD.",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["bilevel_tf", "bilevel_tf.*"]),
    python_requires=">=3.9",
    install_requires=_requirements("requirements.txt"),
    extras_require={
        "test": _requirements("requirements-test.txt"),
        "docs": _requirements("requirements-docs.txt"),  # mkdocs.yml: mkdocs build --strict
        # optional: `benchopt run benchmarks/benchopt` (benchopt brings pandas, pyarrow, plotly, ...)
        "bench": ["benchopt>=1.5"],
    },
)
