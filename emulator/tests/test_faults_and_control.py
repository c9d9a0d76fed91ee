"""Fault injection, counters, the HTTP control API and the standalone launcher."""

import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from .. import Emulator
from .common import APP, REF, call, crypto_request

TIMEOUT = 2
ADDON_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def encrypt_status(emulator, session=requests):
    """HTTP status of one /encrypt call made with ``session``."""
    token = emulator.issue_token()
    envelope = {"id": "x", "version": "1", "request": crypto_request(b"x")}
    response = session.post(
        emulator.keymanager_url + "/encrypt",
        json=envelope,
        headers={"Cookie": f"Authorization={token}"},
        timeout=TIMEOUT,
    )
    return response.status_code


def test_latency_applies_to_the_chosen_endpoint(emulator):
    emulator.faults.set_latency(300, endpoint="/encrypt")
    started = time.monotonic()
    call(emulator, "POST", "/encrypt", crypto_request(b"x"))
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    call(emulator, "GET", "/getCertificate", params={"applicationId": APP, "referenceId": REF})
    assert time.monotonic() - started < 0.3


def test_fail_next_and_error_next_are_scoped_and_consumed(emulator):
    emulator.faults.fail_next(2, status=502)  # every KeyManager endpoint, not Keycloak
    token_url_status = requests.post(emulator.token_url, data={}, timeout=TIMEOUT).status_code
    assert token_url_status == 400  # Keycloak untouched
    assert [encrypt_status(emulator) for _ in range(3)] == [502, 502, 200]
    emulator.faults.fail_next(1, status=500, endpoint="*")
    assert requests.post(emulator.token_url, data={}, timeout=TIMEOUT).status_code == 500
    emulator.faults.error_next(1, "KER-KMS-007", "Exception occured in cypto library: ", endpoint="/decrypt")
    assert encrypt_status(emulator) == 200
    status, body = call(emulator, "POST", "/decrypt", crypto_request("eA"))
    assert (status, body["errors"][0]["errorCode"], body["response"]) == (200, "KER-KMS-007", None)
    assert emulator.counts == {"token": 2, "/encrypt": 4, "/decrypt": 1}


def test_failure_rate_is_reproducible_with_a_seed(emulator):
    def run():
        emulator.faults.set_failure_rate(0.5, seed=42, status=503)
        return [encrypt_status(emulator) for _ in range(12)]

    first = run()
    assert first == run()
    assert {503, 200} == set(first)


@pytest.mark.parametrize("mode", ["refuse", "close", "503"])
def test_downtime_modes(emulator, mode):
    session = requests.Session()
    assert encrypt_status(emulator, session) == 200  # a kept-alive connection exists
    emulator.faults.go_down(mode)
    if mode == "503":
        assert encrypt_status(emulator, session) == 503
    else:
        with pytest.raises(requests.ConnectionError):
            encrypt_status(emulator, session)
        if mode == "refuse":
            with pytest.raises(requests.ConnectionError, match="refused"):
                encrypt_status(emulator)
    emulator.faults.come_up()
    assert encrypt_status(emulator, session) == 200


def test_downtime_can_end_by_itself(emulator):
    emulator.faults.go_down("refuse", seconds=0.3)
    with pytest.raises(requests.ConnectionError):
        encrypt_status(emulator)
    time.sleep(0.6)
    assert encrypt_status(emulator) == 200


def test_control_api(emulator):
    control = emulator.url + "/_emulator/"
    encrypt_status(emulator)
    stats = requests.get(control + "stats", timeout=TIMEOUT).json()
    assert stats["counts"] == {"/encrypt": 1}
    assert {"applicationId": APP, "referenceId": REF, "generations": 1} in stats["keys"]
    state = requests.post(
        control + "faults",
        json={"fail_next": {"n": 1, "status": 504, "endpoint": "/encrypt"}, "latency": {"ms": 10}},
        timeout=TIMEOUT,
    ).json()
    assert state["fail_next"] == [{"n": 1, "status": 504, "endpoint": "/encrypt"}]
    assert encrypt_status(emulator) == 504
    rotated = requests.post(
        control + "rotate", json={"applicationId": APP, "referenceId": REF}, timeout=TIMEOUT
    )
    assert rotated.status_code == 200 and len(rotated.json()["thumbprint"]) == 64
    assert requests.post(control + "reset", timeout=TIMEOUT).json() == {"status": "reset"}
    stats = requests.get(control + "stats", timeout=TIMEOUT).json()
    assert stats["counts"] == {} and stats["faults"]["latency_ms"] == []
    assert {"applicationId": APP, "referenceId": REF, "generations": 2} in stats["keys"]
    # Refusing connections over HTTP needs an end, or nobody could bring the service back.
    assert (
        requests.post(control + "faults", json={"down": {"mode": "refuse"}}, timeout=TIMEOUT).status_code
        == 400
    )
    assert requests.post(control + "faults", json={"nonsense": 1}, timeout=TIMEOUT).status_code == 400
    response = requests.post(
        control + "faults", json={"down": {"mode": "refuse", "seconds": 0.4}}, timeout=TIMEOUT
    )
    assert response.json()["down"] == "refuse"
    time.sleep(0.15)
    with pytest.raises(requests.ConnectionError):
        encrypt_status(emulator)
    time.sleep(0.6)
    assert encrypt_status(emulator) == 200


def test_start_is_cheap_and_stop_frees_the_port():
    started = time.monotonic()
    emulator = Emulator().start()
    port = emulator.port
    assert requests.get(emulator.certs_url, timeout=TIMEOUT).status_code == 200
    emulator.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=TIMEOUT)


def test_standalone_launcher():
    launcher = os.path.join(ADDON_DIR, "tools", "emulator")
    process = subprocess.Popen(
        [launcher, "--port", "0", "--client-secret", "load-test-secret"],
        env=dict(os.environ, PYTHON=sys.executable),
        stdout=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(10, process.kill)  # readline() must not hang the suite
    watchdog.start()
    try:
        first_line = process.stdout.readline()
        assert first_line.startswith("emulator listening on http://127.0.0.1:")
        url = first_line.split()[-1]
        form = {
            "grant_type": "client_credentials",
            "client_id": "openg2p-admin-client",
            "client_secret": "load-test-secret",
        }
        token_url = url + "/realms/openg2p/protocol/openid-connect/token"
        assert requests.post(token_url, data=form, timeout=TIMEOUT).status_code == 200
        assert requests.get(url + "/_emulator/stats", timeout=TIMEOUT).json()["counts"] == {"token": 1}
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
        watchdog.cancel()
