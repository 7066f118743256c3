"""TRL's old example scripts on today's stack (README.md). A package, so that its conftest does not shadow
tests/conftest.py as the module `conftest`."""
