"""Install the cs231n captioning library: ``pip install -e .`` (add ``[test]`` for the test tools)."""
from setuptools import find_packages, setup

setup(
    name="cs231n-captioning",
    version="0.1.0",
    description="Recurrent-network layers in numpy, an image-captioning model, a solver and BLEU/CIDEr evaluation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["cs231n", "cs231n.*"]),
    install_requires=[
        "numpy>=1.22",
        "h5py>=3.0",
        "nltk>=3.6",
        "matplotlib>=3.4",
        "requests>=2.25",
        "Pillow>=9.0",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6.50",
            "nbclient>=0.7",
            "nbformat>=5.7",
            "ipykernel>=6.0",
            "jupytext>=1.14",
        ],
        # Optional cross-checks; .ci/run installs them (torch from the local CPU wheel).
        "crosscheck": ["torch>=2.0", "pycocoevalcap>=1.2"],
        # Hyperparameter sweeps (cs231n.sweep, `python -m cs231n sweep`); .ci/run installs it.
        "sweep": ["ray[tune]>=2.40"],
    },
    entry_points={"console_scripts": ["cs231n=cs231n.cli:main"]},
)
