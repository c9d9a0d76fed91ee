"""Faults that tests inject into the emulator: latency, 5xx, errors, bad tokens, downtime.

Endpoint names: KeyManager endpoints by their path (``"/encrypt"``, ``"/getAllCertificates"``,
``"/generateMasterKey"``), Keycloak ones as ``"token"``, ``"certs"``, ``"openid-configuration"``.
A fault given without ``endpoint`` applies to every KeyManager endpoint (so that a test that breaks
KeyManager does not break the token request that precedes the first call); ``endpoint="*"``
applies to every endpoint of both services.
"""

import random
import threading

DOWN_MODES = ("refuse", "close", "503")
ALL_ENDPOINTS = "*"


class Faults:
    """The fault switches of one emulator; thread-safe. ``listener`` is told when it goes down/up."""

    def __init__(self, listener=None):
        self._lock = threading.RLock()
        self._listener = listener
        self._timer = None
        self.token_epoch = 0
        self.down_mode = None
        self.clear()

    def clear(self):
        """Back to a healthy service (bringing it up if it is down)."""
        with self._lock:
            self._failures = []  # [remaining, status, endpoint]
            self._errors = []  # [remaining, code, message, endpoint]
            self._latency_ms = {}  # endpoint (None, "*" or a name) -> ms
            self._failure_rate = None  # (probability, Random, status, endpoint)
            self.issuing_expired_tokens = False
            self.secret_rejected = False
        self.come_up()

    # -- switches --------------------------------------------------------------------------------

    def fail_next(self, n, status=503, endpoint=None):
        """Answer the next ``n`` calls with HTTP ``status`` (a 5xx, as an overloaded service would)."""
        with self._lock:
            self._failures.append([int(n), int(status), endpoint])

    def error_next(self, n, code, message, endpoint=None):
        """Answer the next ``n`` calls with HTTP 200 and ``errors: [{code, message}]``."""
        with self._lock:
            self._errors.append([int(n), code, message, endpoint])

    def set_latency(self, ms, endpoint=None):
        """Delay every answer by ``ms`` milliseconds (0 removes the delay)."""
        with self._lock:
            if ms:
                self._latency_ms[endpoint] = float(ms)
            else:
                self._latency_ms.pop(endpoint, None)

    def set_failure_rate(self, probability, seed=None, status=503, endpoint=None):
        """Fail each call with probability ``probability`` (reproducible with ``seed``), for load tests."""
        with self._lock:
            if probability:
                self._failure_rate = (float(probability), random.Random(seed), int(status), endpoint)
            else:
                self._failure_rate = None

    def expire_tokens(self):
        """Treat every token issued so far as expired (KeyManager answers 401 to them)."""
        with self._lock:
            self.token_epoch += 1

    def issue_expired_tokens(self, flag=True):
        """Make Keycloak issue tokens whose ``exp`` has passed (a clock skew, say)."""
        with self._lock:
            self.issuing_expired_tokens = bool(flag)

    def reject_secret(self, flag=True):
        """Make Keycloak refuse every client secret (401 ``unauthorized_client``)."""
        with self._lock:
            self.secret_rejected = bool(flag)

    def go_down(self, mode="refuse", seconds=None):
        """Stop answering: ``refuse`` connections, ``close`` them without an answer, or answer ``503``.

        With ``seconds``, the service comes up again by itself after that time.
        """
        if mode not in DOWN_MODES:
            raise ValueError(f"mode must be one of {', '.join(DOWN_MODES)}")
        with self._lock:
            self._cancel_timer()
            self.down_mode = mode
            if seconds:
                self._timer = threading.Timer(float(seconds), self.come_up)
                self._timer.daemon = True
                self._timer.start()
        if self._listener is not None:
            self._listener.faults_changed_down(mode)

    def come_up(self):
        with self._lock:
            self._cancel_timer()
            was_down = self.down_mode
            self.down_mode = None
        if was_down and self._listener is not None:
            self._listener.faults_changed_down(None)

    # -- what the server asks --------------------------------------------------------------------

    def latency_seconds(self, endpoint, service):
        with self._lock:
            for key in (endpoint, ALL_ENDPOINTS, None):
                if key in self._latency_ms and _applies(key, endpoint, service):
                    return self._latency_ms[key] / 1000.0
        return 0.0

    def take(self, endpoint, service):
        """The injected outcome of this call, if any: ``("status", 503)`` or ``("error", code, message)``."""
        with self._lock:
            for rule in self._failures:
                if _applies(rule[2], endpoint, service):
                    self._consume(self._failures, rule)
                    return ("status", rule[1])
            if self._failure_rate is not None:
                probability, dice, status, rule_endpoint = self._failure_rate
                if _applies(rule_endpoint, endpoint, service) and dice.random() < probability:
                    return ("status", status)
            for rule in self._errors:
                if _applies(rule[3], endpoint, service):
                    self._consume(self._errors, rule)
                    return ("error", rule[1], rule[2])
        return None

    def state(self):
        with self._lock:
            return {
                "fail_next": [{"n": n, "status": s, "endpoint": e} for n, s, e in self._failures],
                "error_next": [
                    {"n": n, "code": c, "message": m, "endpoint": e} for n, c, m, e in self._errors
                ],
                "latency_ms": [{"ms": ms, "endpoint": e} for e, ms in self._latency_ms.items()],
                "failure_rate": (
                    {
                        "p": self._failure_rate[0],
                        "status": self._failure_rate[2],
                        "endpoint": self._failure_rate[3],
                    }
                    if self._failure_rate
                    else None
                ),
                "token_epoch": self.token_epoch,
                "issue_expired_tokens": self.issuing_expired_tokens,
                "reject_secret": self.secret_rejected,
                "down": self.down_mode,
            }

    def apply(self, spec):
        """Apply a JSON fault description (the ``POST /_emulator/faults`` body), in this order:

        ``clear``, ``fail_next {n, status, endpoint}``, ``error_next {n, code, message, endpoint}``,
        ``latency {ms, endpoint}``, ``failure_rate {p, seed, status, endpoint}``, ``expire_tokens``,
        ``issue_expired_tokens``, ``reject_secret``, ``down {mode, seconds}``, ``up``.
        """
        if not isinstance(spec, dict):
            raise ValueError("the fault description must be a JSON object")
        unknown = set(spec) - {
            "clear",
            "fail_next",
            "error_next",
            "latency",
            "failure_rate",
            "expire_tokens",
            "issue_expired_tokens",
            "reject_secret",
            "down",
            "up",
        }
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        down = spec.get("down")
        if down and down.get("mode", "refuse") == "refuse" and not down.get("seconds"):
            # Nobody could bring it up again over HTTP.
            raise ValueError("down mode 'refuse' needs 'seconds' when set over HTTP")
        if spec.get("clear"):
            self.clear()
        if "fail_next" in spec:
            self.fail_next(**spec["fail_next"])
        if "error_next" in spec:
            self.error_next(**spec["error_next"])
        if "latency" in spec:
            self.set_latency(**spec["latency"])
        if "failure_rate" in spec:
            rate = dict(spec["failure_rate"])
            self.set_failure_rate(rate.pop("p"), **rate)
        if spec.get("expire_tokens"):
            self.expire_tokens()
        if "issue_expired_tokens" in spec:
            self.issue_expired_tokens(spec["issue_expired_tokens"])
        if "reject_secret" in spec:
            self.reject_secret(spec["reject_secret"])
        if down:
            self.go_down(down.get("mode", "refuse"), down.get("seconds"))
        if spec.get("up"):
            self.come_up()
        return self.state()

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _consume(rules, rule):
        rule[0] -= 1
        if rule[0] <= 0:
            rules.remove(rule)

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _applies(rule_endpoint, endpoint, service):
    if rule_endpoint is None:
        return service == "keymanager"
    return rule_endpoint in (ALL_ENDPOINTS, endpoint)
