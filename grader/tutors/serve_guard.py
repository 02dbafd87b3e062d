"""The safety layer of ``grade serve`` (grader/tutors/serve.py): who may talk to the app, and how
every response leaves it.

:class:`Guard` runs before every route: the Host header must name the loopback address (no DNS
rebinding); a random token in the URL printed at start is exchanged for an HttpOnly,
SameSite=Strict cookie (and taken out of the address at once); every other request must carry
that cookie; a POST must not come from another site's Origin and must declare a body of at most
:data:`MAX_FORM_BYTES`. The CSRF field every form carries is checked where the form is read
(:func:`read_form`). :func:`secure` gives every response a Content-Security-Policy that allows
only the app's own script and style (:data:`CSP`; a report keeps its own, :data:`REPORT_CSP`),
no sniffing, no framing, no caching.

Pages are drawn from the ``serve/`` templates (:func:`page`); a refusal (:func:`denied`) is such a
page. No text from a URL is ever shown: notices travel as codes mapped to this module's
sentences (:data:`NOTICES`), and numbers are read as numbers (:func:`number_in`).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

ALLOWED_HOSTS = ("127.0.0.1", "localhost")
MAX_FORM_BYTES = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
# A report is a self-contained page with inline style and no script: it keeps that, nothing more.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"

# Notices travel in the address as codes only; the sentences are the server's.
NOTICES = {
    "published": "grades.csv and summary.html written; {published} report(s) rendered again.",
    "done": "Every written question's last answer is saved. Write grades.csv and summary.html below, "
            "or stop the server (Ctrl-C), which writes them too.",
    "recorded": "The request is recorded; the group's report shows it as received.",
    "known": "This request was recorded before (the same student, question, words and date); nothing was added.",
    "resolved": "The request is resolved; the group's report shows the outcome and your reason.",
    "replaying": "The replay runs (one at a time); reload this page to see its outcome.",
}


class Keys:
    """The secrets one server derives from its token: the cookie's name and value, the CSRF field."""

    def __init__(self, token: str) -> None:
        self.token = token

    @property
    def cookie_name(self) -> str:
        # One name per server: two `grade serve` on different ports share the browser's cookie jar.
        return "grade_serve_" + hashlib.sha256(self.token.encode()).hexdigest()[:10]

    def derived(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


class Guard(BaseHTTPMiddleware):
    """Host check, token-for-cookie exchange, cookie check, Origin and size of POSTs, security
    headers. (The CSRF field is checked where the form is read: :func:`read_form`.)"""

    def __init__(self, app: Any, keys: Keys) -> None:
        super().__init__(app)
        self.keys = keys

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = self.refusal(request)
        if refused is not None:
            return secure(refused)
        return secure(await call_next(request))

    def refusal(self, request: Request) -> Response | None:
        """The response that stops ``request`` here (a refusal, or the token's exchange), else None."""
        keys = self.keys
        host = request.headers.get("host", "")
        hostname = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        # A page of another site that resolves its own name to 127.0.0.1 would send its own Host.
        if hostname not in ALLOWED_HOSTS:
            return PlainTextResponse("This server answers only to http://127.0.0.1 (or localhost).", 400)
        token = request.query_params.get("token")
        if token is not None:
            if not hmac.compare_digest(token.encode(), keys.token.encode()):
                return denied("The token in this address is not this server's. Open the address that "
                              "`grade serve` printed when it started.", 403)
            # Take the token out of the address bar and history at once; the cookie carries on.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, 303)
            response.set_cookie(keys.cookie_name, keys.derived("cookie"), httponly=True, samesite="strict", path="/")
            return response
        cookie = request.cookies.get(keys.cookie_name, "")
        if not hmac.compare_digest(cookie.encode(), keys.derived("cookie").encode()):
            return denied("Open the address that `grade serve` printed when it started (it ends in "
                          "?token=...). The server was perhaps restarted: each start has a new token.", 403)
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1].rsplit(":", 1)[0] not in ALLOWED_HOSTS:
                return denied("A page of another site tried to send this form; nothing was saved.", 403)
            length = request.headers.get("content-length")
            if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
                return denied(f"A form of at most {MAX_FORM_BYTES // 1024} KiB is accepted; nothing was saved.", 413)
        return None


def secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form POSTs say Origin: null
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The ``serve/`` template ``name`` drawn with ``context``."""
    from grader.pages.report import environment
    return HTMLResponse(environment().get_template(f"serve/{name}").render(**context), status_code=status)


def denied(message: str, status: int) -> HTMLResponse:
    return page("message.html.j2", status, title="Not allowed", message=message, csrf="")


class _HasKeys(Protocol):
    keys: Keys


_App = TypeVar("_App", bound=_HasKeys)


def posted(handler: Callable[[_App, Request, dict[str, str]], Awaitable[Response]]
           ) -> Callable[[_App, Request], Awaitable[Response]]:
    """A POST route's one door: its form is read (:func:`read_form`) before the handler runs, which
    gets the fields; a form whose CSRF field is not this server's is refused without calling it."""
    @functools.wraps(handler)
    async def route(app: _App, request: Request) -> Response:
        form = await read_form(request, app.keys)
        if isinstance(form, Response):
            return form
        return await handler(app, request, form)
    return route


async def read_form(request: Request, keys: Keys) -> dict[str, str] | Response:
    """The POSTed fields, or a refusal when the CSRF field is not this server's."""
    form = await request.form(max_files=0, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    sent = fields.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), keys.derived("csrf").encode()):
        return denied("This form is from an older start of the server (or from another site); nothing was saved. "
                      "Reload the page and enter it again.", 403)
    return fields


def number_in(raw: str, low: int, high: int) -> int | None:
    """``raw`` as a whole number from ``low`` to ``high``, else None (a URL's or form's digits)."""
    if not re.fullmatch(r"[0-9]{1,9}", raw or ""):
        return None
    value = int(raw)
    return value if low <= value <= high else None
