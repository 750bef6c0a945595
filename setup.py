"""keras-cprune: complexity-driven structured pruning of Keras CNNs for TFLite Micro."""
from setuptools import find_packages, setup

setup(
    name="keras-cprune",
    version="0.1.0",
    description="Complexity-driven filter pruning of Keras CNNs, sized and verified for TFLite Micro.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_cprune", "keras_cprune.*", "tflm_export", "tflm_export.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow-cpu==2.21.*",
        "tf-keras==2.21.*",
        "tensorflow-model-optimization==0.8.*",
        "tflite-micro==0.dev20261023182759",
        "numpy>=1.26,<3",
        "matplotlib>=3.8",
        "keras-tuner==1.4.8",  # keras_cprune.tuner (BoardFitTuner)
    ],
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100",
                            "jax>=0.4.30"]},  # tests/test_backends.py: the JAX backend
    entry_points={"console_scripts": ["keras-cprune=keras_cprune.cli:main"]},
)
