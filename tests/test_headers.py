"""Security headers on every kind of answer, and a policy that allows no inline code and no framing."""

import re

import pytest
from helpers import ROOT

from webapp.errors import SECURITY_HEADERS

QUERY = "labels=0,0,1,0,0,0,0,0,0,0&seed=42"


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def assert_secured(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    response.close()


def test_the_policy_allows_only_this_site_and_no_inline_code_or_framing():
    policy = directives(SECURITY_HEADERS["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)


def test_the_operations_guide_lists_exactly_the_headers_sent():
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("\n## Security headers\n", 1)[1].split("\n## ", 1)[0]
    listed = (" ".join(item.split()) for item in re.findall(r"^- `([^`]+)`", section, flags=re.MULTILINE))
    assert dict(item.split(": ", 1) for item in listed) == SECURITY_HEADERS


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", f"/generate?{QUERY}"),
        ("get", "/static/app.js"),
        ("get", "/healthz"),
        ("get", "/nowhere"),
        ("delete", "/grid"),
        ("post", "/grid"),
    ],
)
def test_every_answer_carries_the_headers(client, method, path):
    assert_secured(getattr(client, method)(path))


def test_a_304_carries_the_headers(client):
    etag = client.get(f"/generate?{QUERY}").headers["ETag"]
    response = client.get(f"/generate?{QUERY}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert_secured(response)


def test_a_503_without_weights_carries_the_headers(make_app, tmp_path):
    assert_secured(make_app(GENERATOR_DIR=tmp_path).test_client().get("/healthz"))
