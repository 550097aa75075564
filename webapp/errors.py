"""Every error as JSON naming the problem, and the security headers on every answer."""

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError

from server.answers import SECURITY_HEADERS, error_body
from webapp.validation import ApiError


def error_response(status: int, message: str, field: str | None = None, headers=None) -> Response:
    """The body is the one the server's worker writes for the requests it refuses itself."""
    response = Response(error_body(message, field or None), status=status, mimetype="application/json")
    if headers:
        response.headers.extend(headers)
    return response


def api_error(error: ApiError) -> Response:
    return error_response(error.status, str(error), error.field)


def http_error(error: HTTPException) -> Response:
    """404, 405 (keeps its Allow header), 413, 415...: JSON like every other answer."""
    headers = [(k, v) for k, v in error.get_response().headers if k.lower() == "allow"]
    allowed = ", ".join(v for _, v in headers)
    problem = {
        404: f"no such page or endpoint: {request.path}",
        405: f"{request.method} is not allowed on {request.path} (allowed: {allowed})",
        413: f"the body is over the limit of {current_app.config['MAX_CONTENT_LENGTH']:,} bytes",
    }.get(error.code, error.description)
    return error_response(error.code or 500, f"{error.code} {error.name}: {problem}", headers=headers)


def internal_error(error: InternalServerError) -> Response:
    """Flask has already logged the traceback; the client gets no details."""
    return error_response(500, "500 Internal Server Error: the server failed; the log has the details")


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def register(app: Flask) -> None:
    app.register_error_handler(ApiError, api_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(InternalServerError, internal_error)
    app.after_request(security_headers)
