"""JSON-RPC sessions of a running Odoo, as the web client opens them (one cookie jar each)."""

import itertools

import requests


class RpcError(Exception):
    """A call that failed: ``name`` is Odoo's exception class, or ``transport`` without an answer."""

    def __init__(self, message, name):
        super().__init__(message)
        self.message = message
        self.name = name


class OdooSession:
    """One logged-in JSON-RPC session (its own cookie jar and connections)."""

    def __init__(self, url, database, login="admin", password="admin", timeout=120):
        self.url = url
        self.timeout = timeout
        self.http = requests.Session()
        self._ids = itertools.count(1)
        answer = self.post(
            "/web/session/authenticate", {"db": database, "login": login, "password": password}
        )
        if not answer or not answer.get("uid"):
            raise RpcError(f"cannot log in as {login}", "login")

    def post(self, path, params):
        payload = {"jsonrpc": "2.0", "method": "call", "params": params, "id": next(self._ids)}
        try:
            response = self.http.post(self.url + path, json=payload, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            raise RpcError(f"{type(error).__name__}: {error}", "transport") from error
        if "error" in body:
            data = body["error"].get("data") or {}
            raise RpcError(data.get("message") or body["error"].get("message", "?"), data.get("name", "?"))
        return body.get("result")

    def call(self, model, method, *args, **kwargs):
        """``model.method(*args, **kwargs)`` as the logged-in user (``call_kw``, as the web client)."""
        params = {"model": model, "method": method, "args": list(args), "kwargs": kwargs}
        return self.post(f"/web/dataset/call_kw/{model}/{method}", params)


def grant_addon_groups(session, *names):
    """Put the administrator in groups of g2p_encryption (``crypto_admin``: providers and registry
    jobs; ``registry_searcher``: lookups by exact value), through ``session`` (an ``OdooSession``
    logged in as admin)."""
    rows = session.call(
        "ir.model.data",
        "search_read",
        [("module", "=", "g2p_encryption"), ("name", "in", list(names))],
        ["res_id"],
    )
    admin = session.call(
        "ir.model.data", "search_read", [("module", "=", "base"), ("name", "=", "user_admin")], ["res_id"]
    )[0]["res_id"]
    session.call("res.users", "write", [admin], {"groups_id": [(4, row["res_id"]) for row in rows]})
