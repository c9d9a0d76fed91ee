"""Make the addon's pure-Python packages importable with Odoo absent.

The addon's ``__init__.py`` imports its Odoo models, so ``import g2p_encryption.core`` would
import Odoo. This module registers ``g2p_encryption`` as a bare package whose path is the addon
directory, without running that ``__init__.py``, and makes any ``import odoo`` fail. Used as a
pytest plugin (``-p without_odoo``) by the pure-Python suite, which so proves that ``core`` and
``emulator`` never import Odoo, and by ``tools/emulator`` to run the emulator on its own.
"""

import importlib.abc
import os
import sys
import types

ADDON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDON_NAME = "g2p_encryption"


class _BlockOdoo(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, _path=None, _target=None):
        if fullname == "odoo" or fullname.startswith("odoo."):
            raise ImportError(f"{fullname} may not be imported by the pure-Python layer")
        return None


def install():
    if not any(isinstance(finder, _BlockOdoo) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BlockOdoo())
    package = sys.modules.get(ADDON_NAME)
    if package is None:
        package = types.ModuleType(ADDON_NAME)
        package.__path__ = [ADDON_DIR]
        package.__package__ = ADDON_NAME
        sys.modules[ADDON_NAME] = package


install()
