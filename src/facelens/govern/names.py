"""Where a tenant's gallery lives in the store: one naming rule for every edge.

The service keeps tenant ``acme``'s gallery ``staff`` as ``acme/staff``; the command line's
own galleries (no tenant) keep their plain name (``default``). Both edges name galleries
through these functions, so the CLI reaches, and can erase from, a gallery the service made.

Example:
    >>> gallery_key("acme", "staff"), gallery_key(None, "default")
    ('acme/staff', 'default')
    >>> split_gallery_key("acme/staff"), split_gallery_key("default")
    (('acme', 'staff'), ('default', 'default'))
"""

from __future__ import annotations

import re

from facelens.errors import InputError

__all__ = ["DEFAULT_TENANT", "NAME_RE", "check_public_name", "gallery_key", "split_gallery_key"]

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_TENANT = "default"


def check_public_name(name: str, what: str = "gallery") -> str:
    """A tenant or gallery name: 1-64 letters, digits, ``_ . -`` (``InputError`` otherwise)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(what, f"{what} names are 1-64 letters, digits, _ . -")
    return name


def gallery_key(tenant: str | None, name: str) -> str:
    """The stored name of ``tenant``'s gallery ``name`` (no tenant: the plain name)."""
    check_public_name(name)
    if tenant is None:
        return name
    return f"{check_public_name(tenant, 'tenant')}/{name}"


def split_gallery_key(stored: str) -> tuple[str, str]:
    """(tenant, public name) of a stored gallery name (the CLI's own: tenant ``default``)."""
    tenant, sep, name = stored.partition("/")
    return (tenant, name) if sep else (DEFAULT_TENANT, stored)
