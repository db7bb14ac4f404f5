"""``facelens govern stop|resume|status``: the stop control from the command line (the same
state the service reads: a stop here halts the service's identifications too)."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from facelens.cli import output
from facelens.cli.common import tenant_options
from facelens.cli.service_cmd import _store, gallery_option, json_option

tenant_option = click.option(
    "--tenant",
    default="default",
    show_default=True,
    help="Whose identifications (the tenant of the service's API keys).",
)


@click.group("govern")
def govern_group() -> None:
    """Governance controls: stop and resume identification, retention and purges."""


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


def _retention(gallery_path: Path | str | None):  # type: ignore[no-untyped-def]
    from facelens.govern import AuditLog
    from facelens.govern.retention import Retention

    store = _store(gallery_path)
    return store, Retention(store, AuditLog(store))


@govern_group.command("purge")
@click.option("--dry-run", is_flag=True, help="Only list who is due; erase nothing.")
@gallery_option
@json_option
def govern_purge(dry_run: bool, gallery_path: Path | str | None, as_json: bool) -> None:
    """Erase everyone the retention policies make due now, in every gallery of the store:
    no enrolment or match for the gallery's max idle days (default 3 years), or every consent
    ended more than its grace days ago (default 0). Each erasure leaves a receipt in the
    audit chain (action ``purge``)."""
    store, retention = _retention(gallery_path)
    with store:
        result = retention.purge(f"cli:{getpass.getuser()}", dry_run=dry_run)
    doc = result.to_dict()
    if as_json:
        output.emit_json(doc)
        return
    verb = "would erase" if dry_run else "erased"
    for d in doc["due"]:
        output.echo(
            f"{verb} {d['name']} ({d['identity_id']}) of {d['tenant']}/{d['gallery']}: "
            f"{d['reason']} since {d['since']}"
        )
    output.echo(f"{verb} {len(doc['due']) if dry_run else doc['erased']} people")


@govern_group.command("retention")
@click.option("--max-idle-days", type=click.IntRange(1, 36500), default=None,
              help="Erase people neither enrolled nor matched for this many days.")  # fmt: skip
@click.option("--consent-grace-days", type=click.IntRange(0, 36500), default=None,
              help="Erase people this many days after their last consent ended.")  # fmt: skip
@gallery_option
@tenant_options
@json_option
def govern_retention(
    max_idle_days: int | None,
    consent_grace_days: int | None,
    gallery_path: Path | str | None,
    as_json: bool,
) -> None:
    """Show or change a gallery's retention policy (``--tenant``/``--gallery-name`` choose
    the gallery). A change is audited."""
    from dataclasses import asdict, replace

    from facelens.cli.common import selected_gallery
    from facelens.govern.names import gallery_key

    tenant, name = selected_gallery()
    key = gallery_key(tenant, name)
    store, retention = _retention(gallery_path)
    with store:
        policy = retention.policy(key)
        changes = {
            k: v
            for k, v in (
                ("max_idle_days", max_idle_days),
                ("consent_grace_days", consent_grace_days),
            )
            if v is not None
        }
        if changes:
            policy = retention.set_policy(
                key, replace(policy, **changes), f"cli:{getpass.getuser()}"
            )
        upcoming = sorted((d for _, d in retention.deadlines(key)), key=lambda d: d.due_at)
    doc: dict[str, object] = {
        "tenant": tenant or "default",
        "gallery": name,
        "policy": asdict(policy),
        "next_deadlines": [d.to_dict() for d in upcoming[:10]],
    }
    if as_json:
        output.emit_json(doc)
        return
    output.echo(
        f"{doc['tenant']}/{name}: erase after {policy.max_idle_days} idle days, "
        f"{policy.consent_grace_days} days after consent ends"
    )
    for d in upcoming[:10]:
        output.echo(f"  {d.due_at}  {d.name}  ({d.reason})")


@govern_group.command("new-key")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def govern_new_key(path: Path) -> None:
    """Make a new template key in PATH (a new file, readable by you only). Point
    FACELENS_KEY_FILE at it before the first enrolment to seal a new store's templates, or
    give it to 'rotate-key' to seal an existing store's."""
    from facelens.gallery.protect import TemplateKey

    key = TemplateKey.create_file(path)
    output.echo(f"key {key.key_id} written to {path}; keep a copy apart from the database")


@govern_group.command("rotate-key")
@click.option(
    "--new-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The key to seal with from now on (made with 'facelens govern new-key').",
)
@gallery_option
@json_option
def govern_rotate_key(new_key_file: Path, gallery_path: Path | str | None, as_json: bool) -> None:
    """Re-seal every template, chip and gallery secret of the store with a new key, and renew
    every gallery's transform, in one transaction. The store is opened with the present key
    (FACELENS_KEY_FILE; none for a store not sealed yet). Stop the service first; start it
    again with FACELENS_KEY_FILE pointing at the new key. Audited."""
    from facelens.environment import template_key
    from facelens.govern import AuditLog

    new = template_key(new_key_file)
    assert new is not None
    store = _store(gallery_path)
    with store:
        old = store.key.key_id if store.key else None
        if old == new.key_id:
            raise click.UsageError("the new key is the key the store has now")
        from facelens.govern.confirm import Alerts

        Alerts(store, AuditLog(store)).drop_shots()  # sealed with the old key
        counts = store.rekey(new)
        AuditLog(store).append(
            tenant="default",
            key_id=f"cli:{getpass.getuser()}",
            action="rotate_key",
            decision={"old_key": old, "new_key": new.key_id, **counts},
        )
    doc = {"old_key": old, "new_key": new.key_id, **counts}
    if as_json:
        output.emit_json(doc)
    else:
        output.echo(
            f"sealed {counts['templates']} templates and {counts['chips']} chips of "
            f"{counts['galleries']} galleries with key {new.key_id} (transforms renewed); "
            f"use FACELENS_KEY_FILE={new_key_file} from now on"
        )


@govern_group.command("report")
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True,
              help="Count searches per key and day over this many days.")  # fmt: skip
@click.option("--tenant", "only_tenant", default=None, help="Only this tenant's galleries.")
@gallery_option
@json_option
def govern_report(
    days: int, only_tenant: str | None, gallery_path: Path | str | None, as_json: bool
) -> None:
    """What the store holds and how it is used, per gallery: people, templates and chips
    (sealed or not), consent status, retention policy, next deadlines and pending purges,
    searches per key and day. The facts a data-protection impact assessment needs."""
    from facelens.govern.readable import actor_label
    from facelens.govern.report import privacy_report

    with _store(gallery_path) as store:
        doc = privacy_report(store, tenant=only_tenant, days=days)
    if as_json:
        output.emit_json(doc)
        return
    sealed = f"sealed (key {doc['key_id']})" if doc["templates_sealed"] else "NOT sealed"
    output.echo(f"templates {sealed}; report at {doc['generated_at']}")
    for g in doc["galleries"]:
        c = g["consent"]
        templates = ", ".join(f"{n} of {m}" for m, n in sorted(g["templates"].items()))
        output.echo(
            f"\n{g['tenant']}/{g['gallery']}: {g['people']} people, templates "
            f"{templates or 'none'}, {g['chips']} chips"
            + ("" if g["templates_transformed"] else " (no per-gallery transform yet)")
        )
        output.echo(
            f"  consent: {c['valid']} valid ({c['no_end']} without end, {c['ending_soon']} "
            f"ending within 30 days), {c['ended']} ended"
        )
        r = g["retention"]
        output.echo(
            f"  retention: {r['max_idle_days']} idle days, {r['consent_grace_days']} grace days;"
            f" {len(g['pending_purges'])} due now"
        )
        for d in g["next_deadlines"][:3]:
            ended = "ended" if d["since"] <= doc["generated_at"] else "ends"
            why = {"idle": "unmatched since", "consent_ended": f"consent {ended}"}.get(
                d["reason"], d["reason"]
            )
            output.echo(f"    next: {d['due_at'][:10]} {d['name']} ({why} {d['since'][:10]})")
        per_key: dict[str, int] = {}
        for s in g["searches"]:
            who = actor_label(s["key"])
            per_key[who] = per_key.get(who, 0) + s["count"]
        for key, n in sorted(per_key.items()):
            output.echo(f"  searches by {key}: {n} in {days} days")
