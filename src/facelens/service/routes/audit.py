"""``/v1/audit``: the tenant's audit records as people read them (filtered, a page at a
time, people by name, each as a sentence), exported for an auditor (CSV or JSON), and
checking the hash chain."""

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Response
from fastapi.responses import StreamingResponse

from facelens.govern.audit import AuditRecord
from facelens.govern.keys import ApiKey
from facelens.govern.readable import ACTIONS, actor, describe, identity_names, is_refusal
from facelens.service import gate
from facelens.service import schemas as S
from facelens.service.deps import State, scope
from facelens.service.errors import HttpError
from facelens.service.state import ServiceState

router = gate.router(tags=["audit"])

Auditor = Annotated[ApiKey, scope("audit:read")]

# An export is one request's work: at most this many records (an auditor asks for a time
# range at a time), read from the store a page at a time.
MAX_EXPORT = 100_000
_PAGE = 1000


def _utc(t: datetime | None) -> str | None:
    """A time as records are timed (ISO 8601, UTC, milliseconds); naive times are UTC."""
    if t is None:
        return None
    try:
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved past the calendar's end by its offset
        raise HttpError(422, "invalid_request", "a time out of range") from None
    return t.isoformat(timespec="milliseconds")


def filters(
    action: Annotated[list[str], Query(max_length=30, description="any of these actions")] = [],  # noqa: B006
    key: Annotated[
        str | None, Query(max_length=64, description="by this key id (or cli:USER, service:...)")
    ] = None,
    since: Annotated[datetime | None, Query(description="at this time or later")] = None,
    until: Annotated[datetime | None, Query(description="before this time")] = None,
) -> dict[str, Any]:
    """The filters a listing and an export share."""
    return {
        "actions": [a[:64] for a in action],
        "actor": key,
        "since": _utc(since),
        "until": _utc(until),
    }


Filters = Annotated[dict[str, Any], Depends(filters)]


def _readable(state: ServiceState, tenant: str, records: list[AuditRecord]) -> list[dict[str, Any]]:
    ids = {i for r in records for i in (*r.candidates, *r.decision.get("identified", ()))}
    names = identity_names(state.store, tenant, ids)
    return [
        r.to_dict()
        | {
            "actor": actor(r.key_id),
            "sentence": describe(r, names),
            "names": {i: names[i] for i in r.candidates if i in names},
            "refused": is_refusal(r),
        }
        for r in records
    ]


@router.get("/v1/audit", response_model=list[S.AuditOut])
def audit(
    state: State,
    key: Auditor,
    response: Response,
    where: Filters,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a database integer
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Annotated[Literal["asc", "desc"], Query(description="oldest or newest first")] = "asc",
) -> list[dict[str, Any]]:
    """This tenant's audit records that match the filters, oldest first after sequence
    number ``after`` (or newest first before ``before``). When a page is full, the
    ``X-Next-After`` (or ``X-Next-Before``) header holds the next page's bound."""
    page = state.audit.search(
        key.tenant,
        **where,
        after=after,
        before=before,
        limit=limit,
        newest_first=order == "desc",
    )
    if len(page) == limit:
        header = "X-Next-Before" if order == "desc" else "X-Next-After"
        response.headers[header] = str(page[-1].seq)
    return _readable(state, key.tenant, page)


_CSV_COLUMNS = (
    "seq",
    "time",
    "actor",
    "action",
    "gallery",
    "sentence",
    "people",
    "refused",
    "probe_sha256",
    "threshold",
    "model",
    "decision",
    "prev_hash",
    "hash",
)


@router.get(
    "/v1/audit/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def export(
    state: State,
    key: Auditor,
    where: Filters,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> StreamingResponse:
    """The records that match the filters, oldest first, as a file for an auditor: CSV (a
    sentence and the people by name beside each record's own fields) or JSON (the records as
    ``/v1/audit`` gives them). At most 100,000 records; the hashes let the auditor check the
    chain with ``facelens audit verify``'s rule."""

    def pages() -> Iterator[list[dict[str, Any]]]:
        after, sent = 0, 0
        while sent < MAX_EXPORT:
            rows = state.audit.search(
                key.tenant, **where, after=after, limit=min(_PAGE, MAX_EXPORT - sent)
            )
            if not rows:
                return
            yield _readable(state, key.tenant, rows)
            after, sent = rows[-1].seq, sent + len(rows)

    def as_csv() -> Iterator[str]:
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(_CSV_COLUMNS)
        for page in pages():
            for r in page:
                people = "; ".join(r["names"].get(i, i) for i in r["candidates"])
                row = r | {"people": people, "decision": json.dumps(r["decision"])}
                out.writerow(["" if row[c] is None else row[c] for c in _CSV_COLUMNS])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()

    def as_json() -> Iterator[str]:
        yield "["
        first = True
        for page in pages():
            for r in page:
                yield ("" if first else ",\n") + json.dumps(r, ensure_ascii=False)
                first = False
        yield "]\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        as_csv() if format == "csv" else as_json(),
        media_type="text/csv; charset=utf-8" if format == "csv" else "application/json",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{key.tenant}-{stamp}.{format}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/v1/audit/actions", response_model=dict[str, str])
def actions(key: Auditor) -> dict[str, str]:
    """The actions the trail records, each with what it means (a filter's choices)."""
    return dict(ACTIONS)


@router.get("/v1/audit/verify", response_model=S.ChainOut)
def audit_verify(state: State, key: Auditor) -> dict[str, Any]:
    """Check this tenant's hash chain (each tenant's records are numbered and chained on
    their own, so neither the count nor the verdict tells of another tenant's activity)."""
    st = state.audit.verify(key.tenant)
    return {
        "ok": st.ok,
        "checked": st.checked,
        "first_bad_seq": st.first_bad_seq,
        "problem": st.problem,
    }
