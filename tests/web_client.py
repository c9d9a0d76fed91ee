# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""JSON-RPC as Odoo's web client sends it, for the tests that must take the browser's path.

A dialog is opened on a new record with ``onchange``, saved with ``web_save`` before its button
runs through ``/web/dataset/call_button``, and read with ``web_read``, each with the field
specification the form view gives. Tests that call ``new()`` or ``create()`` instead can pass
while the browser shows nothing; these helpers make the same calls the browser makes.
"""

import json
from xml.etree import ElementTree

import odoo
from odoo.tests.common import HOST


class RpcError(Exception):
    """The server answered a JSON-RPC call with an error: ``name`` is the exception's class."""

    def __init__(self, name, message):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    @property
    def short_name(self):
        return self.name.rsplit(".", 1)[-1]


def form_spec(env, model):
    """The field specification the web client sends for ``model``'s form view."""
    arch = env[model].get_views([(False, "form")])["views"]["form"]["arch"]
    spec = {}
    for node in ElementTree.fromstring(arch).iter("field"):
        name = node.get("name")
        field = env[model]._fields.get(name)
        if field is None or name in spec:
            continue  # a field of an embedded list, or named twice
        relational = field.type in ("many2one", "one2many", "many2many")
        spec[name] = {"fields": {"display_name": {}}} if relational else {}
    return spec


class WebClient:
    """One user's browser session: log in, then call the server as the web client does."""

    def __init__(self, case, login, password=None):
        self.case = case
        self.login = login
        self.password = password or login
        case.authenticate(login, self.password)
        self.session = case.session
        self.opener = case.opener

    def _post(self, route, params):
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "id": 1, "params": params})
        url = f"http://{HOST}:{odoo.tools.config['http_port']}{route}"
        response = self.opener.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
        response.raise_for_status()
        answer = response.json()
        if "error" in answer:
            data = answer["error"].get("data") or {}
            raise RpcError(data.get("name", "?"), data.get("message", answer["error"].get("message")))
        return answer.get("result")

    def call(self, model, method, *args, **kwargs):
        return self._post(
            "/web/dataset/call_kw", {"model": model, "method": method, "args": list(args), "kwargs": kwargs}
        )

    def call_button(self, model, method, ids, context=None):
        return self._post(
            "/web/dataset/call_button",
            {"model": model, "method": method, "args": [ids], "kwargs": {"context": context or {}}},
        )

    def onchange(self, model, context=None):
        """Open a new record: its default and computed values, as the dialog shows them."""
        spec = form_spec(self.case.env, model)
        return self.call(model, "onchange", [], {}, [], spec, context=context or {})["value"]

    def web_save(self, model, ids, vals, context=None):
        spec = form_spec(self.case.env, model)
        return self.call(model, "web_save", ids, vals, specification=spec, context=context or {})[0]

    def web_read(self, model, ids, context=None):
        spec = form_spec(self.case.env, model)
        return self.call(model, "web_read", ids, specification=spec, context=context or {})

    def open_action(self, action):
        """What the web client shows for an action that opens a record in a dialog."""
        assert action["type"] == "ir.actions.act_window" and action.get("res_id"), action
        return self.web_read(action["res_model"], [action["res_id"]], context=action.get("context"))[0]

    def confirm_identity(self, action):
        """Answer Odoo's "Security Control" password dialog; return the action it then runs."""
        if not (isinstance(action, dict) and action.get("res_model") == "res.users.identitycheck"):
            return action
        self.web_save("res.users.identitycheck", [action["res_id"]], {"password": self.password})
        return self.call_button("res.users.identitycheck", "run_check", [action["res_id"]])

    def press(self, model, record_id, method, vals=None, context=None):
        """Save the dialog (with ``vals`` typed into it), then press its button ``method``."""
        record_id = self.web_save(model, [record_id] if record_id else [], vals or {}, context=context)["id"]
        return record_id, self.call_button(model, method, [record_id], context=context)
