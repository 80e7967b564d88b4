"""Every response carries the security headers (issue 18, docs/security.md): a
Content-Security-Policy that allows no inline script and no framing, nosniff, a referrer
policy, X-Frame-Options for old browsers, and HSTS in production only; and no template holds
an inline script, event handler or style the policy would have to allow."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask

from cellchain import create_app
from cellchain.config import load_config
from cellchain.core.audit_keys import create_key_file

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
GOOD_KEY = "k" * 64


def directives(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The response's Content-Security-Policy as directive → sources."""
    policy = response.headers.get("Content-Security-Policy")
    assert policy, f"{response.request.path} has no Content-Security-Policy"
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    csp = directives(response)
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]  # 'wasm-unsafe-eval' compiles WebAssembly only
    assert "'unsafe-inline'" not in csp["style-src"]
    assert csp["object-src"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_page_has_the_security_headers(app: Flask) -> None:
    response = app.test_client().get("/login")
    assert response.status_code == 200
    assert_security_headers(response)


def test_a_logged_in_page_has_them(clients, make_user) -> None:  # type: ignore[no-untyped-def]
    response = clients.web(make_user("tess", "technician")).get("/")
    assert response.status_code == 200
    assert_security_headers(response)


def test_an_api_answer_has_them(clients, make_user) -> None:  # type: ignore[no-untyped-def]
    response = clients.api(make_user("tess", "technician")).get("/api/v1/me")
    assert response.status_code == 200
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/me", 401), ("/no-such-page", 404), ("/api/v1/no-such-thing", 404), ("/", 302)],
)
def test_errors_and_redirects_have_them(app: Flask, path: str, status: int) -> None:
    response = app.test_client().get(path)
    assert response.status_code == status
    assert_security_headers(response)


def test_a_refused_form_has_them(make_app) -> None:  # type: ignore[no-untyped-def]
    response = make_app(WTF_CSRF_ENABLED=True).test_client().post("/login", data={})
    assert response.status_code == 400
    assert_security_headers(response)


@pytest.mark.parametrize("name", ["app.css", "app.js", "countdown.js"])
def test_a_static_file_has_them(app: Flask, name: str) -> None:
    response = app.test_client().get(f"/static/{name}")
    assert response.status_code == 200
    assert_security_headers(response)
    response.close()


def test_swagger_ui_allows_only_its_own_inline_script(clients, make_user) -> None:  # type: ignore[no-untyped-def]
    """The API docs page works under the policy: its one inline script (flask-smorest's
    template starting Swagger UI) is allowed by its hash, nothing else inline."""
    response = clients.web(make_user("tess", "technician")).get("/api/v1/docs")
    assert response.status_code == 200
    assert_security_headers(response)
    scripts = re.findall(r"<script>(.*?)</script>", response.get_data(as_text=True), re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    # 'wasm-unsafe-eval' is the page-wide policy's (the camera's label reader compiles
    # WebAssembly, issue 21); the hash is this page's alone
    assert directives(response)["script-src"] == [
        "'self'",
        "'wasm-unsafe-eval'",
        f"'sha256-{digest}'",
    ]


def test_no_hsts_in_tests_or_development(app: Flask, tmp_path: Path) -> None:
    assert "Strict-Transport-Security" not in app.test_client().get("/login").headers
    for environment in ("testing", "development"):
        assert load_config(str(tmp_path), {"ENV_NAME": environment})["HSTS_SECONDS"] == 0


def test_hsts_in_production(tmp_path: Path) -> None:
    production = create_app(
        {
            "ENV_NAME": "production",
            "SECRET_KEY": GOOD_KEY,
            "FACILITY_CODE": "A1234",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/hsts.sqlite",
            "AUDIT_KEY_FILE": str(create_key_file(tmp_path / "audit-keys").path),
            "AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        }
    )
    assert production.config["HSTS_SECONDS"] >= 31_536_000
    response = production.test_client().get("/static/app.css")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert_security_headers(response)
    response.close()


def test_hsts_follows_its_setting(make_app) -> None:  # type: ignore[no-untyped-def]
    response = make_app(HSTS_SECONDS=600).test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=600"


# --- templates ------------------------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL)
STYLE_ATTRIBUTE = re.compile(r"<[^>]*\sstyle\s*=", re.IGNORECASE | re.DOTALL)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def test_the_scan_finds_what_it_looks_for() -> None:
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/app.js" defer></script>')
    assert EVENT_HANDLER.search('<input\n  onfocus="this.select()">')
    assert not EVENT_HANDLER.search('<input data-select-on-focus name="one">')
    assert STYLE_ATTRIBUTE.search('<label style="display:inline">')
    assert STYLE_ELEMENT.search("<style>")


@pytest.mark.parametrize(
    "path", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_has_inline_script_handler_or_style(path: Path) -> None:
    text = path.read_text()
    for what, pattern in (
        ("an inline <script>", INLINE_SCRIPT),
        ("an inline event handler (on…=)", EVENT_HANDLER),
        ("a style attribute", STYLE_ATTRIBUTE),
        ("a <style> element", STYLE_ELEMENT),
        ("a javascript: URL", JAVASCRIPT_URL),
    ):
        match = pattern.search(text)
        assert match is None, (
            f"{path.relative_to(TEMPLATES)} has {what} at offset {match.start()}: the "
            "Content-Security-Policy refuses it; move it to cellchain/static/ (docs/security.md)"
        )
