"""Landing pages ``GET /lp/KEY``: a ``page`` experiment's template, or a ``redirect``'s URL.

The server picks the variant, so nothing flickers and no exposure is lost:
a redirect is answered only after the exposure is committed (client-side
redirects lose the ones whose browser leaves first). Bots, ``force=`` and
``HEAD`` requests get the page without being recorded (counted as excluded
requests by :func:`abconv.service.assign_visitor`, like those of the API); a
concluded experiment serves its winner; a draft one is a 404 unless
previewed with ``force``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
)
from jinja2 import TemplateNotFound
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from abconv import service
from abconv.experiments import Experiment, Variant
from abconv.inputs import KEY
from abconv.vocabulary import ExperimentKind, Status
from abconv.web.api import services
from abconv.web.embed import set_visitor_cookie, visitor_from_cookie

bp = Blueprint("landing", __name__)

NOT_FOUND_MESSAGE = "There is no page here. It may have moved, or the campaign has ended."


@bp.get("/lp/<key>")
def landing(key: str) -> BaseResponse:
    force = request.args.get("force") or None
    experiment = _servable(key, force)
    if experiment is None:
        return not_found()
    visitor = visitor_from_cookie()
    reply = service.assign_visitor(
        services(), visitor, experiment_key=key, force=force,
        user_agent=request.headers.get("User-Agent"),
        record=request.method != "HEAD",  # link checkers look without visiting
    )  # fmt: skip
    chosen = reply["assignments"][0]
    variant = experiment.variant(chosen["variant"])
    if variant is None:  # the file changed between the two reads
        return not_found()
    response: BaseResponse
    if experiment.kind is ExperimentKind.REDIRECT:
        response = redirect(merged_url(variant.url or "/", request.args, drop={"force"}), 302)
    else:
        page = render_template(
            variant.template or "",
            experiment=experiment, variant=variant, visitor=visitor,
            engagement=chosen["enrolled"] and experiment.engagement,
        )  # fmt: skip
        response = make_response(page)
    response.headers["Cache-Control"] = "private, no-store"  # a reply per visitor
    set_visitor_cookie(response, visitor)
    return response


def _servable(key: str, force: str | None) -> Experiment | None:
    """The experiment behind ``/lp/KEY``, or ``None`` for a 404 page: no such
    key, a ``cta`` experiment, a draft without ``force``, a missing template."""
    experiment = services().experiments.get(key) if KEY.fullmatch(key) else None
    if experiment is None or experiment.kind is ExperimentKind.CTA:
        return None
    if experiment.status is Status.DRAFT and force is None:
        return None
    if experiment.kind is ExperimentKind.PAGE and not _templates_exist(experiment.variants):
        return None
    return experiment


def _templates_exist(variants: tuple[Variant, ...]) -> bool:
    for variant in variants:
        try:
            current_app.jinja_env.get_template(variant.template or "")
        except TemplateNotFound:
            current_app.logger.error("landing page template %r is missing", variant.template)
            return False
    return True


def merged_url(url: str, query: MultiDict[str, str], drop: set[str]) -> str:
    """``url`` with the request's query string added: the visitor's parameters
    (UTM tags) replace the URL's own of the same name; ``drop`` is left out."""
    parts = urlsplit(url)
    given = [(name, value) for name, value in query.items(multi=True) if name not in drop]
    names = {name for name, _ in given}
    own = [pair for pair in parse_qsl(parts.query, keep_blank_values=True) if pair[0] not in names]
    return urlunsplit(parts._replace(query=urlencode(own + given)))


def not_found() -> Response:
    page = render_template("landing/not_found.html", message=NOT_FOUND_MESSAGE)
    response = make_response(page, 404)
    response.headers["Cache-Control"] = "no-store"
    return response
