"""What the browser tests share: a page that records every request it makes and every
Content-Security-Policy refusal, signing in, screenshots, and axe-core's accessibility
check (the npm package `make pytest` installs in tests/web, run in the page itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
AXE = ROOT / "tests" / "web" / "node_modules" / "axe-core" / "axe.min.js"


@dataclass
class Recorded:
    """What a page did: the URLs it asked for, the answers over 399, CSP refusals."""

    requests: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    def foreign(self, origin: str) -> list[str]:
        """Requests to anywhere but ``origin`` (blob: and data: stay in the page)."""
        return [
            u
            for u in self.requests
            if not (u.startswith(origin + "/") or u.startswith(("blob:", "data:")))
        ]


def open_page(browser: Any, width: int = 1280, height: int = 900) -> tuple[Any, Recorded]:
    """A page in a context of its own, recording what it does."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    rec = Recorded()
    page.on("request", lambda r: rec.requests.append(r.url))
    page.on(
        "response", lambda r: rec.failures.append(f"{r.status} {r.url}") if r.status >= 400 else 0
    )
    page.on(
        "console",
        lambda m: rec.csp.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page, rec


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/")
    page.fill("#api-key", key)
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")


def shot(page: Any, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def axe_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.1 A
    and AA rules and best practices), one line each: rule, impact, the first elements."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} is missing: `make pytest` installs it (npm ci in tests/web)")
    if not page.evaluate("typeof window.axe === 'object'"):
        # evaluated through the browser's debugging protocol, which the page's CSP (no
        # inline or foreign script) does not govern: the page itself stays as served
        page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [
        f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
