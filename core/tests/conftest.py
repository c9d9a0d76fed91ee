"""Fixtures of the core tests that talk to the emulator (they ask for them with ``usefixtures``)."""

import pytest

from .remote_helpers import reset, running_emulator


@pytest.fixture(scope="module")
def emulator():
    """A KeyManager + Keycloak emulator on 127.0.0.1 for the tests of one module."""
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def healthy_emulator(emulator):
    """The emulator without faults, counts, cached tokens or counters, as each test starts."""
    reset(emulator)
    return emulator
