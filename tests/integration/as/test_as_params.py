"""Token request parameters: scope (RFC 6749 §3.3), resource (RFC 8707),
grant types, and malformed requests (RFC 6749 §3.2, §5.2)."""

import json

import pytest

import portcullis_helpers as H
from as_helpers import FORM, OTHER_RESOURCE, RESOURCE, check_token_response, error_of

CC = ("grant_type", "client_credentials")
MTLS = ("client_id", "mtls-client")


@pytest.fixture(scope="module")
def x5t(pki):
    return H.x5t_s256_of_pem(pki.cert("alice")[0])


# ------------------------------------------------------------ scope

def test_unknown_scope(asrv):
    error_of(asrv.token_mtls(extra=[("scope", "accounts bogus")]), 400, "invalid_scope")
    error_of(asrv.token_mtls(extra=[("scope", "bogus")]), 400, "invalid_scope")


def test_scope_not_held_is_dropped(asrv, keys, x5t):
    """jwt-client holds only accounts; payments is a known scope: dropped."""
    r = asrv.token_jwt(extra=[("scope", "accounts payments")])
    check_token_response(asrv, r, client_id="jwt-client", scope="accounts", x5t=x5t)


def test_only_scopes_not_held_is_invalid_scope(asrv):
    """Nothing left to grant: invalid_scope (never a token with no scope)."""
    error_of(asrv.token_mtls(extra=[("scope", "admin")]), 400, "invalid_scope")


def test_no_scope_grants_all_of_the_clients(asrv, x5t):
    r = asrv.token_mtls()
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments", x5t=x5t)


def test_subset_scope(asrv, x5t):
    r = asrv.token_mtls(extra=[("scope", "payments")])
    check_token_response(asrv, r, client_id="mtls-client", scope="payments", x5t=x5t)


def test_repeated_scope_token_granted_once(asrv, x5t):
    r = asrv.token_mtls(extra=[("scope", "payments payments")])
    check_token_response(asrv, r, client_id="mtls-client", scope="payments", x5t=x5t)


def test_scope_case_sensitive(asrv):
    error_of(asrv.token_mtls(extra=[("scope", "ACCOUNTS")]), 400, "invalid_scope")


@pytest.mark.parametrize("scope", ['acc"ounts', "acc\\ounts", "accounts\x7f"])
def test_scope_bad_characters(asrv, scope):
    error_of(asrv.token_mtls(extra=[("scope", scope)]), 400, "invalid_scope")


# ------------------------------------------------------------ resource

def test_resource_unknown(asrv):
    error_of(asrv.token_mtls(extra=[("resource", "https://evil.example")]), 400, "invalid_target")
    error_of(asrv.token_mtls(extra=[("resource", RESOURCE + "/")]), 400, "invalid_target")


@pytest.mark.parametrize("resource", [RESOURCE, OTHER_RESOURCE])
def test_resource_sets_audience(asrv, x5t, resource):
    r = asrv.token_mtls(extra=[("resource", resource)])
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments", x5t=x5t,
                         aud=resource)


def test_default_audience_is_first_resource(asrv, x5t):
    r = asrv.token_mtls()
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments", x5t=x5t,
                         aud=RESOURCE)


# ------------------------------------------------------------ grant types

@pytest.mark.parametrize("gt", ["password", "implicit", "authorization_code", "refresh_token",
                                "urn:ietf:params:oauth:grant-type:jwt-bearer", ""])
def test_unsupported_grant_type(asrv, gt):
    r = asrv.post("/token", [("grant_type", gt), MTLS, ("username", "u"), ("password", "p")],
                  client="alice")
    error_of(r, 400, "unsupported_grant_type")


def test_missing_grant_type(asrv):
    error_of(asrv.post("/token", [MTLS], client="alice"), 400, "invalid_request")


# ------------------------------------------------------------ malformed

def test_json_body(asrv):
    body = json.dumps({"grant_type": "client_credentials", "client_id": "mtls-client"})
    r = asrv.post("/token", body=body, content_type="application/json", client="alice")
    error_of(r, 400, "invalid_request")


def test_missing_content_type(asrv):
    r = asrv.post("/token", [CC, MTLS], content_type=None, client="alice")
    error_of(r, 400, "invalid_request")


def test_content_type_with_charset_ok(asrv, x5t):
    r = asrv.post("/token", [CC, MTLS], content_type=FORM + "; charset=UTF-8", client="alice")
    check_token_response(asrv, r, client_id="mtls-client", scope="accounts payments", x5t=x5t)


def test_content_type_lookalike(asrv):
    r = asrv.post("/token", [CC, MTLS], content_type=FORM + "x", client="alice")
    error_of(r, 400, "invalid_request")


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&client_id=mtls-client&scope=accounts&scope=payments",
    "grant_type=client_credentials&client_id=mtls-client&grant_type=client_credentials",
    "grant_type=client_credentials&client_id=mtls-client&client_id=mtls-client",
])
def test_duplicate_parameters(asrv, body):
    error_of(asrv.post("/token", body, client="alice"), 400, "invalid_request")


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&client_id=mtls-client&scope=%zz",
    "grant_type=client_credentials&client_id=mtls-client&scope=%4",
    "grant_type=client_credentials&client_id=mtls-client&scope=%",
    "grant_type=client_credentials&client_id=mtls-client&scope=a%00b",
    "grant_type=client_credentials&client_id=mtls-client&noequals",
])
def test_invalid_form_encoding(asrv, body):
    error_of(asrv.post("/token", body, client="alice"), 400, "invalid_request")


def test_oversized_form(asrv):
    body = "grant_type=client_credentials&client_id=mtls-client&pad=" + "a" * (17 * 1024)
    r = asrv.post("/token", body, client="alice")
    assert r.status == 413, r
    asrv.srv.assert_healthy()


def test_form_just_under_the_limit_parsed(asrv):
    """15 KiB of padding passes the HTTP layer and reaches the AS, which then
    answers with its own JSON (the unknown parameter is ignored)."""
    body = "grant_type=client_credentials&client_id=mtls-client&pad=" + "a" * (15 * 1024)
    r = asrv.post("/token", body, client="alice")
    assert r.status == 200, r


@pytest.mark.parametrize("target", [
    "/token?grant_type=client_credentials&client_id=mtls-client",
    "/token?x=1",
    "/token?",
])
def test_parameters_in_query_string(asrv, target):
    r = asrv.post(target, [CC, MTLS], client="alice")
    error_of(r, 400, "invalid_request")


def test_query_only_parameters(asrv):
    r = asrv.post("/token?grant_type=client_credentials&client_id=mtls-client", "",
                  client="alice")
    error_of(r, 400, "invalid_request")


def test_get_token_not_served(asrv):
    r = asrv.srv.get("/token?grant_type=client_credentials&client_id=mtls-client",
                     client="alice")
    assert r.status in (404, 405), r


def test_error_description_is_safe(asrv):
    """A hostile scope cannot break out of the JSON string."""
    r = asrv.token_mtls(extra=[("scope", 'x"}\u2028\\')])
    error_of(r, 400, "invalid_scope")
    r.json()    # still valid JSON


def test_invalid_percent_encoding_names_the_field(asrv):
    r = asrv.post("/token", "grant_type=client_credentials&client_id=mtls-client&scope=%zz",
                  client="alice")
    desc = error_of(r, 400, "invalid_request")
    assert "'scope'" in desc, desc
