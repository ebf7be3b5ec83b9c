"""Package list: the code found on disk plus `newsletter.templates`, which lives at the top
level as templates/ (product card) and is mapped into the package by pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["newsletter", "newsletter.*", "workers", "workers.*"]),
        "newsletter.templates",
    ]
)
