"""The JSON error body and security headers shared by the app's answers and the worker's own."""

import json

SECURITY_HEADERS = {
    # No inline script or style anywhere: the page's one module and one stylesheet come from here.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


def error_body(message: str, field: str | None = None) -> bytes:
    """`{"error": ..., "field": ...}` as Flask's JSON provider writes it (compact, sorted keys)."""
    body = {"error": message} if field is None else {"error": message, "field": field}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def error_answer(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer written by the worker itself, after which the connection closes."""
    body = error_body(f"{status} {reason}: {message}")
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **SECURITY_HEADERS,
    }
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body
