import pytest

from .. import Emulator

CLIENTS = {
    "openg2p-admin-client": {"secret": "admin-secret", "roles": ["KEYMANAGER_ADMIN"]},
    "reader": {"secret": "reader-secret", "roles": ["REGISTRATION_OFFICER"]},
    "robot": {"secret": "robot-secret", "roles": ["KEYMANAGER_ADMIN"], "service_accounts": False},
}


@pytest.fixture(scope="module")
def emulator():
    with Emulator(clients=CLIENTS).start() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def healthy(emulator):
    emulator.faults.clear()
    emulator.reset_counts()
