"""``facelens serve``, ``facelens keys``, ``facelens audit``."""

from __future__ import annotations

from pathlib import Path

import click

from facelens.cli import output
from facelens.cli.common import GALLERY
from facelens.detect import DETECTORS, DetectConfig
from facelens.gallery.contract import GalleryStore
from facelens.urls import redact_credentials


def _store(gallery_path: Path | str | None) -> GalleryStore:
    from facelens.cli.common import gallery_path as resolve
    from facelens.environment import template_key
    from facelens.gallery.stores import open_store

    return open_store(resolve(gallery_path), key=template_key())


gallery_option = click.option(
    "--gallery",
    "gallery_path",
    type=GALLERY,
    default=None,
    metavar="PATH|URL",
    help="The store (galleries, keys, audit trail): a file or a postgresql:// URL.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="JSON output.")


@click.command()
@gallery_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--allow-image-urls",
    is_flag=True,
    help="Accept image URLs (the service then fetches URLs for callers).",
)
@click.option(
    "--allow-source",
    "allow_sources",
    multiple=True,
    metavar="PATTERN",
    help="A video source streams may watch, as a shell pattern ('rtsp://cams.local/*', "
    "'/srv/videos/*.mp4'); repeatable. None by default: no stream can be started.",
)
@click.option(
    "--identify-rate",
    type=float,
    default=5.0,
    show_default=True,
    help="Identify requests per second per key (burst: twice that).",
)
@click.option(
    "--detector",
    type=click.Choice(sorted(DETECTORS)),
    default=None,
    help=f"Detector backend (default {DetectConfig().backend}).",
)
@click.option(
    "--model",
    default=None,
    metavar="NAME",
    help="Recognizer (default dlib; see 'facelens models list').",
)
@click.option(
    "--events",
    "event_sinks",
    multiple=True,
    metavar="SINK",
    help="Where every stream's events also go, and confirmed alerts: webhook:URL, "
    "mqtt://HOST:PORT/TOPIC or jsonl:FILE; repeatable. Webhooks are signed with "
    "--webhook-secret (or $FACELENS_WEBHOOK_SECRET).",
)
@click.option("--webhook-secret", default=None, help="Secret that signs webhook deliveries.")
@click.option(
    "--read-replica",
    default=None,
    metavar="URL",
    help="A hot standby of the postgresql:// gallery that searches read from (writes go to "
    "the primary; an erasure returns once the replica has applied it).",
)
@click.option(
    "--purge-interval",
    type=click.FloatRange(0, 7 * 86400),
    default=3600.0,
    show_default=True,
    help="Seconds between retention purges (erasing everyone the galleries' policies make "
    "due; one also runs at start); 0: never (then run 'facelens govern purge' yourself).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(16, 1_000_000),
    default=None,
    help="Connections open at once per worker (default 10,000, kept below the file-descriptor "
    "limit); past it, the connection waiting longest for its headers is closed, or the "
    "newcomer refused with 503 when all are working.",
)
@click.option(
    "--bootstrap-key",
    is_flag=True,
    help="When the store has no key at all, create an admin key for tenant "
    "'default' and print it (first start).",
)
@json_option
def serve(
    gallery_path: Path | str | None,
    host: str,
    port: int,
    workers: int,
    allow_image_urls: bool,
    allow_sources: tuple[str, ...],
    identify_rate: float,
    detector: str | None,
    model: str | None,
    event_sinks: tuple[str, ...],
    webhook_secret: str | None,
    read_replica: str | None,
    purge_interval: float,
    max_connections: int | None,
    bootstrap_key: bool,
    as_json: bool,
) -> None:
    """Run the HTTP API (/v1) and the web UI (/) on the gallery's store."""
    from facelens.cli.common import gallery_path as resolve
    from facelens.environment import hand_to_workers
    from facelens.environment import webhook_secret as environment_webhook_secret
    from facelens.gallery.stores import is_postgres_url

    path = resolve(gallery_path)
    _first_key(path, bootstrap_key)
    if read_replica and not is_postgres_url(path):
        raise click.UsageError("--read-replica needs a postgresql:// --gallery")
    hand_to_workers(
        gallery=str(path),
        urls="1" if allow_image_urls else "0",
        sources="\n".join(_source_pattern(p) for p in allow_sources),
        rate=str(identify_rate),
        detector=detector or "",
        model=model or "",
        purge_interval=str(purge_interval),
        events="\n".join(event_sinks),
        read_replica=read_replica or "",
        **({"webhook_secret": webhook_secret} if webhook_secret else {}),
    )
    from facelens.events.sinks import parse_sink

    signing = environment_webhook_secret()
    for spec in event_sinks:  # a wrong sink fails here, with its reason, not in the workers
        parse_sink(spec, signing).close(0.1)
    from facelens.cli.common import make_pipeline

    make_pipeline(detector=detector, model=model)  # an unknown model fails here, not in workers
    output.echo(
        f"facelens serving {redact_credentials(path)} on http://{host}:{port}/ "
        "(API at /v1, docs at /docs)",
        err=True,
    )
    import uvicorn

    # by name, as uvicorn loads the app: the protocol closes slow clients and caps the
    # connections (facelens.service.server); each worker builds the app, raising its
    # descriptor limit and rate-limiting its log first (facelens.service.main.build)
    uvicorn.run(
        "facelens.service.main:build",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http="facelens.service.server:GuardedH11",
        limit_concurrency=max_connections,
        timeout_keep_alive=5,
        backlog=4096,
        log_level="warning",
        access_log=False,
    )


def _first_key(path: Path | str, bootstrap: bool) -> None:
    """On a store without API keys: make the admin key (--bootstrap-key), or say how."""
    from facelens.govern import AuditLog, KeyStore

    store = _store(path)
    try:
        keys = KeyStore(store, AuditLog(store))
        if keys.list():
            return
        if bootstrap:
            _, secret = keys.create("default", ["admin"], "bootstrap", by="service:first-start")
            output.echo(
                f"first start: admin key for tenant 'default' (shown once):\n  {secret}\n"
                "Sign in with it in the web UI; its Keys page makes others (and replaces it).",
                err=True,
            )
        else:
            output.warn(
                "no API keys yet: create one with "
                f"facelens keys create --gallery {path} --tenant default --scopes admin"
            )
    finally:
        store.close()


def _source_pattern(pattern: str) -> str:
    """A path pattern as sources are matched: absolute, its folder's links resolved
    (``../videos/*`` from here; a source is matched by its real path)."""
    import glob
    import os

    if "://" in pattern or pattern.isdigit():
        return pattern
    folder, name = os.path.split(os.path.abspath(pattern))
    if glob.has_magic(folder):
        return os.path.abspath(pattern)
    return os.path.join(os.path.realpath(folder), name)


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys (stored hashed)."""


@keys_group.command("create")
@click.option("--tenant", required=True, help="The tenant the key acts for.")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated: detect, enroll, verify, identify, delete, audit:read, admin.",
)
@click.option("--name", default="", help="A label for the key.")
@gallery_option
@json_option
def keys_create(
    tenant: str, scopes: str, name: str, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    import getpass

    from facelens.govern import AuditLog, KeyStore

    with _store(gallery_path) as store:
        key, secret = KeyStore(store, AuditLog(store)).create(
            tenant,
            [s.strip() for s in scopes.split(",") if s.strip()],
            name,
            by=f"cli:{getpass.getuser()}",
        )
    if as_json:
        output.emit_json(
            {"id": key.id, "tenant": key.tenant, "scopes": sorted(key.scopes), "key": secret}
        )
    else:
        output.echo(secret)
        output.echo(
            f"(key {key.id} for tenant {key.tenant}, scopes "
            f"{','.join(sorted(key.scopes))}; shown once)",
            err=True,
        )


@keys_group.command("list")
@click.option("--tenant", default=None)
@gallery_option
@json_option
def keys_list(tenant: str | None, gallery_path: Path | str | None, as_json: bool) -> None:
    """Keys (never their secrets)."""
    from facelens.govern import KeyStore

    with _store(gallery_path) as store:
        keys = KeyStore(store).list(tenant)
    if as_json:
        output.emit_json([k.to_dict() for k in keys])
    else:
        output.echo(
            output.table(
                ["id", "tenant", "name", "scopes", "created", "revoked"],
                [
                    [
                        k.id,
                        k.tenant,
                        k.name,
                        ",".join(sorted(k.scopes)),
                        k.created_at,
                        k.revoked_at or "",
                    ]
                    for k in keys
                ],
            )
        )


@keys_group.command("revoke")
@click.argument("key_id")
@gallery_option
def keys_revoke(key_id: str, gallery_path: Path | str | None) -> None:
    """Revoke a key by id."""
    import getpass

    from facelens.govern import AuditLog, KeyStore

    with _store(gallery_path) as store:
        KeyStore(store, AuditLog(store)).revoke(key_id, by=f"cli:{getpass.getuser()}")
    output.echo(f"revoked {key_id}")


@click.group("audit")
def audit_group() -> None:
    """Read and verify the audit trail."""


@audit_group.command("verify")
@click.option("--tenant", default=None, help="Check only this tenant's chain (default: all).")
@gallery_option
@json_option
def audit_verify(tenant: str | None, gallery_path: Path | str | None, as_json: bool) -> None:
    """Check the hash chains (one per tenant); exit code 5 and the first broken record when
    one fails."""
    from facelens.errors import GalleryError
    from facelens.govern import AuditLog

    with _store(gallery_path) as store:
        st = AuditLog(store).verify(tenant)
    doc = {
        "ok": st.ok,
        "checked": st.checked,
        "first_bad_seq": st.first_bad_seq,
        "problem": st.problem,
        "tenant": st.tenant,
    }
    if as_json:
        output.emit_json(doc)
    elif st.ok:
        output.echo(f"audit trail intact: {st.checked} records verified")
    if not st.ok:
        where = f"tenant {st.tenant}'s record" if st.tenant else "record"
        raise GalleryError(f"audit trail broken at {where} {st.first_bad_seq}: {st.problem}")


@audit_group.command("list")
@click.option("--tenant", default=None)
@click.option("--after", type=int, default=0)
@click.option("--limit", type=int, default=100)
@gallery_option
@json_option
def audit_list(
    tenant: str | None, after: int, limit: int, gallery_path: Path | str | None, as_json: bool
) -> None:
    """Audit records, oldest first (``--after``: a tenant's sequence number)."""
    from facelens.govern import AuditLog

    with _store(gallery_path) as store:
        recs = AuditLog(store).records(tenant, after, limit)
    if as_json:
        output.emit_json([r.to_dict() for r in recs])
    else:
        output.echo(
            output.table(
                ["seq", "time", "tenant", "action", "gallery", "decision"],
                [
                    [r.seq, r.time, r.tenant, r.action, r.gallery or "", str(r.decision)[:60]]
                    for r in recs
                ],
            )
        )
