"""What sites embed: the snippet ``/abconv.js``, the visitor cookie, the demo shop.

The snippet is served as written (``static/abconv.js``): readable, no build
step, under 6 KB. Pages on any origin load it with one ``<script>`` tag; it
needs no CORS to load, only to read ``/api/assign`` (``ABCONV_ALLOWED_ORIGINS``).
"""

from __future__ import annotations

import secrets
from functools import cache
from importlib.resources import files

from flask import Blueprint, Response, render_template, request
from werkzeug.http import dump_cookie
from werkzeug.wrappers import Response as BaseResponse

from abconv.inputs import IDENTIFIER

bp = Blueprint("embed", __name__)

VISITOR_COOKIE = "abconv_visitor"
VISITOR_COOKIE_AGE = 365 * 24 * 3600  # seconds: one year from the last visit
SNIPPET_MAX_AGE = 300  # seconds browsers and CDNs may keep the snippet before asking again


@bp.get("/abconv.js")
def snippet() -> Response:
    reply = Response(_snippet_source(), mimetype="text/javascript")
    reply.headers["Cache-Control"] = f"public, max-age={SNIPPET_MAX_AGE}"
    # Sites that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
    reply.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return reply


@cache
def _snippet_source() -> bytes:
    return files("abconv").joinpath("static", "abconv.js").read_bytes()


@bp.get("/demo")
def demo() -> str:
    """A small shop that embeds the snippet: the homepage CTA test and its goals."""
    return render_template("demo/shop.html")


def visitor_from_cookie() -> str:
    """The visitor id the cookie holds, or a new random one when it holds none."""
    return visitor_id(request.cookies.get(VISITOR_COOKIE, ""))


def visitor_id(cookie: str) -> str:
    """``cookie``'s value if it is a visitor id, else a new random one."""
    return cookie if IDENTIFIER.fullmatch(cookie) else secrets.token_hex(16)


def set_visitor_cookie(response: BaseResponse, visitor: str) -> None:
    response.headers.add("Set-Cookie", visitor_cookie(visitor, secure=request.is_secure))


def visitor_cookie(visitor: str, secure: bool) -> str:
    """The ``Set-Cookie`` value of the cookie the snippet reads too: not
    ``HttpOnly``, first-party, one year; ``Secure`` over HTTPS."""
    return dump_cookie(
        VISITOR_COOKIE,
        visitor,
        max_age=VISITOR_COOKIE_AGE,
        samesite="Lax",
        secure=secure,
        httponly=False,  # the snippet on the page reads it
    )
