"""Fail the build when the API page leaves out a public name.

The public names of a module are its ``__all__`` when it has one, else the names
it defines itself without a leading underscore. Each must be documented on the
API page under that module; a missing one is a warning, so ``-W`` fails the build.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The modules whose every public name the API page documents.
PUBLIC_MODULES = (
    "satchel",
    "satchel.errors",
    "satchel.wsgi",
    "satchel.cache",
    "satchel.testing",
    "satchel.stores",
    "satchel.stores.base",
    "satchel.stores.memory",
    "satchel.stores.file",
    "satchel.stores.redis",
    "satchel.stores.memcached",
    "satchel.stores.sql",
    "satchel.web.lifecycle",
    "satchel.web.pyramid",
    "satchel.web.wsgi",
    "satchel.web.headers",
)


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return list(declared)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == module_name
        and not isinstance(value, TypeVar)
    ]


def check_public_names(app: Sphinx, env: Any) -> None:
    domain = env.get_domain("py")
    documented = set(domain.objects)
    for module_name in PUBLIC_MODULES:
        if module_name not in domain.modules:
            logger.warning("the API page does not document the module %s", module_name)
            continue
        for name in public_names(module_name):
            if f"{module_name}.{name}" not in documented:
                logger.warning("the API page does not document %s.%s", module_name, name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-check-consistency", check_public_names)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
