"""What the tools that drive a real Odoo share: its processes, JSON-RPC sessions, the machine."""
