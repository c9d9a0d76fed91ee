"""``core.http`` against a server that misbehaves in ways the emulator does not: over real HTTP on
127.0.0.1, a socket that answers by hand."""

import socket
import threading

import pytest

from .. import http
from ..errors import ServiceUnavailableError

CUT_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"res'
)


@pytest.fixture
def cutting_server():
    """A server that sends the start of a chunked answer to each request, then closes; yields
    (its URL, the list of requests it got)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    received = []

    def serve():
        while True:
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            with connection:
                received.append(connection.recv(65536))
                connection.sendall(CUT_ANSWER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/keymanager/decrypt", received
    listener.close()
    thread.join(5)


def test_an_answer_cut_half_way_is_unavailable_and_retried(cutting_server):
    url, received = cutting_server
    with pytest.raises(ServiceUnavailableError) as caught:
        http.exchange(
            "KeyManager",
            "POST",
            url,
            endpoint="/decrypt",
            interpret=lambda answer: answer.body,
            timeout=2,
            retries=2,
            backoff=0.01,
            session=http._new_session(),
            json={},
        )
    assert "closed the connection in the middle of its answer" in str(caught.value)
    assert caught.value.retryable
    assert len(received) == 3
