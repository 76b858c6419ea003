"""The python-pyproject example package."""
