"""gan: a low-level, pure-TensorFlow codebase for studying GANs."""

from setuptools import find_packages, setup

setup(
    name="gan",
    version="0.1.0",
    description="Pure-TensorFlow GAN research codebase: hand-written layers, losses, optimizers.",
    packages=find_packages(include=["gan", "gan.*"]),
    # MNIST ships inside the package so that training works offline on a fresh machine.
    package_data={"gan": ["datasets/mnist/*.gz", "assets/*"]},
    include_package_data=True,
    python_requires=">=3.9",
    install_requires=[
        "tensorflow>=2.16",
        "numpy",
        "absl-py",
        "tensorboard",
    ],
    # plots: experiments/plot_scalars.py and gan.ablate's curves (fid.png); training never needs
    # it. The tests draw those curves too. pytest-xdist: the suite runs its many TensorFlow
    # subprocesses on both cores (README).
    extras_require={
        "test": ["pytest", "pytest-xdist", "matplotlib", "scipy", "statsmodels", "optuna"],
        "plots": ["matplotlib"],
        # A study's declared analysis (gan.study.stats) and its tuning per arm
        # (gan.study.tuning).
        "study": ["scipy", "statsmodels", "optuna"],
    },
)
