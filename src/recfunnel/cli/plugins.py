"""``--plugin MODULE``: modules the user names on the command line, imported so their models register."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

from recfunnel.errors import ConfigError

MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def import_plugins(modules: Sequence[str]) -> None:
    """Import each named module (its ``@register_model`` classes join the registry).

    This is the only place recfunnel imports a module by name, and the name comes from the
    person running the command, never from an artifact or a config file.

    Raises:
        ConfigError: A name is not a dotted module name, or the module cannot be imported.

    Example:
        >>> import_plugins(["json"])
        >>> import_plugins(["no such"])
        Traceback (most recent call last):
        ...
        recfunnel.errors.ConfigError: --plugin 'no such' is not a module name such as 'mypackage.models'.
    """
    for name in modules:
        if not MODULE.match(name):
            raise ConfigError(f"--plugin {name!r} is not a module name such as 'mypackage.models'.")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"--plugin {name!r} cannot be imported: {exc}. Is it installed or on PYTHONPATH?") from None
