"""``facelens govern stop|resume|status``: the stop control from the command line (the same
state the service reads: a stop here halts the service's identifications too)."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from facelens.cli import output
from facelens.cli.service_cmd import _store, gallery_option, json_option

tenant_option = click.option(
    "--tenant",
    default="default",
    show_default=True,
    help="Whose identifications (the tenant of the service's API keys).",
)


@click.group("govern")
def govern_group() -> None:
    """Governance controls: stop and resume a tenant's identifications."""


def _show(doc: dict[str, object], as_json: bool) -> None:
    if as_json:
        output.emit_json(doc)
    elif doc["stopped"]:
        output.echo(
            f"identification STOPPED for tenant {doc['tenant']} since {doc['at']} by "
            f"{doc['by']}" + (f": {doc['reason']}" if doc["reason"] else "")
        )
    else:
        output.echo(f"identification running for tenant {doc['tenant']}")


def _control(gallery_path: Path | str | None):  # type: ignore[no-untyped-def]
    from facelens.govern import AuditLog, StopControl

    store = _store(gallery_path)
    return store, StopControl(store, AuditLog(store))


@govern_group.command("stop")
@tenant_option
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@gallery_option
@json_option
def govern_stop(tenant: str, reason: str, gallery_path: Path | str | None, as_json: bool) -> None:
    """Halt every identification of TENANT: the service answers identify with 423 and its
    streams stop within a second, until someone resumes. Audited."""
    store, control = _control(gallery_path)
    with store:
        st = control.stop(tenant, by=f"cli:{getpass.getuser()}", reason=reason)
    _show(st.to_dict(), as_json)


@govern_group.command("resume")
@tenant_option
@gallery_option
@json_option
def govern_resume(tenant: str, gallery_path: Path | str | None, as_json: bool) -> None:
    """Let TENANT's identifications run again. Audited."""
    store, control = _control(gallery_path)
    with store:
        st = control.resume(tenant, by=f"cli:{getpass.getuser()}")
    _show(st.to_dict(), as_json)


@govern_group.command("status")
@tenant_option
@gallery_option
@json_option
def govern_status(tenant: str, gallery_path: Path | str | None, as_json: bool) -> None:
    """Whether TENANT's identifications are stopped."""
    store, control = _control(gallery_path)
    with store:
        st = control.status(tenant)
    _show(st.to_dict(), as_json)
