"""Request smuggling defences and HTTP/1.1 strictness.

Every malformed request gets exactly one response with the expected status,
`Connection: close`, a problem+json body, and then the connection is closed:
nothing that follows in the same send (a smuggled request) is answered.
The server must stay up after each case."""

import pytest

import portcullis_helpers as H

HOST = b"Host: localhost\r\n"
# appended to every malformed request: if the server ever answered it, the
# framing was desynchronised
SMUGGLED = b"GET /hello?smuggled=1 HTTP/1.1\r\nHost: localhost\r\n\r\n"


def post(headers, body=b""):
    return b"POST /echo-len/1 HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


def get(target=b"/hello", headers=b"", version=b"HTTP/1.1", host=HOST, method=b"GET"):
    return method + b" " + target + b" " + version + b"\r\n" + host + headers + b"\r\n"


CASES = [pytest.param(*c, id=c[0]) for c in [
    # --- framing: Content-Length / Transfer-Encoding
    ("cl_and_te", 400, post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("te_and_cl", 400, post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n")),
    ("duplicate_cl_same", 400, post(b"Content-Length: 2\r\nContent-Length: 2\r\n", b"ab")),
    ("duplicate_cl_different", 400, post(b"Content-Length: 2\r\nContent-Length: 3\r\n", b"abc")),
    ("cl_list", 400, post(b"Content-Length: 2, 2\r\n", b"ab")),
    ("cl_plus_sign", 400, post(b"Content-Length: +2\r\n", b"ab")),
    ("cl_negative", 400, post(b"Content-Length: -1\r\n", b"")),
    ("cl_hex", 400, post(b"Content-Length: 0x2\r\n", b"ab")),
    ("duplicate_te", 400, post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")),
    ("te_gzip", 501, post(b"Transfer-Encoding: gzip\r\n")),
    ("te_identity", 501, post(b"Transfer-Encoding: identity\r\n")),
    ("te_gzip_chunked", 501, post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
    ("te_xchunked", 501, post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n")),
    ("te_space_before_colon", 400, post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")),
    ("bad_chunk_size", 400, post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nab\r\n0\r\n\r\n")),
    ("chunk_size_bare_lf", 400, post(b"Transfer-Encoding: chunked\r\n", b"2\nab\r\n0\r\n\r\n")),
    # --- header syntax
    ("host_space_before_colon", 400, get(host=b"Host : localhost\r\n")),
    ("header_name_at_sign", 400, get(headers=b"X@Y: 1\r\n")),
    ("header_name_empty", 400, get(headers=b": x\r\n")),
    ("header_no_colon", 400, get(headers=b"NoColon\r\n")),
    ("ctl_in_value", 400, get(headers=b"X-A: a\x01b\r\n")),
    ("del_in_value", 400, get(headers=b"X-A: a\x7fb\r\n")),
    ("cr_in_value", 400, get(headers=b"X-A: a\rb\r\n")),
    ("obs_fold_space", 400, get(headers=b"X-A: a\r\n b\r\n")),
    ("obs_fold_tab", 400, get(headers=b"X-A: a\r\n\tb\r\n")),
    ("first_header_indented", 400, b"GET /hello HTTP/1.1\r\n Host: localhost\r\n\r\n"),
    ("bare_lf", 400, b"GET /hello HTTP/1.1\nHost: localhost\n\n"),
    ("bare_lf_mixed", 400, b"GET /hello HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\r\n"),
    ("nul_in_name", 400, get(headers=b"X-\x00A: b\r\n")),
    ("nul_in_value", 400, get(headers=b"X-A: \x00b\r\n")),
    ("nul_in_target", 400, get(target=b"/hel\x00lo")),
    # --- Host
    ("missing_host", 400, get(host=b"")),
    ("two_hosts", 400, get(host=b"Host: localhost\r\nHost: evil.example\r\n")),
    # --- request target
    ("absolute_form", 400, get(target=b"https://localhost/hello")),
    ("no_leading_slash", 400, get(target=b"hello")),
    ("asterisk_form", 400, get(target=b"*", method=b"OPTIONS")),
    ("space_in_target", 400, get(target=b"/hel lo")),
    ("dotdot", 400, get(target=b"/a/../hello")),
    ("dotdot_at_end", 400, get(target=b"/hello/..")),
    ("dot_segment", 400, get(target=b"/./hello")),
    ("encoded_dotdot_lower", 400, get(target=b"/a/%2e%2e/hello")),
    ("encoded_dotdot_upper", 400, get(target=b"/a/%2E%2E/hello")),
    ("encoded_dotdot_mixed", 400, get(target=b"/a/.%2e/hello")),
    ("encoded_slash_upper", 400, get(target=b"/a%2Fb")),
    ("encoded_slash_lower", 400, get(target=b"/a%2fb")),
    ("encoded_backslash", 400, get(target=b"/a%5Cb")),
    # --- version, method, expectations
    ("http_2_0", 505, get(version=b"HTTP/2.0")),
    ("http_3_0", 505, get(version=b"HTTP/3.0")),
    ("http_0_9", (400, 505), b"GET /hello\r\n\r\n"),
    ("expect_unknown", 417, post(b"Expect: foo\r\nContent-Length: 2\r\n", b"ab")),
    ("connect", 501, b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"),
    ("lowercase_method", 501, get(method=b"get")),
    ("trailing_space_after_version", 400, b"GET /hello HTTP/1.1 \r\nHost: localhost\r\n\r\n"),
    ("tab_after_method", (400, 501), b"GET\t/hello HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("percent_nul", 400, get(target=b"/a%00b")),
    ("truncated_percent", 400, get(target=b"/a%2")),
]]

# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version,
# exactly one SP each; an invalid request-line SHOULD get 400 and must not be
# "autocorrected" (it can be crafted to slip past a filter that splits on SP).
LENIENT = [
    ("double_space_before_target", 400, b"GET  /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("double_space_before_version", 400, b"GET /hello  HTTP/1.1\r\nHost: localhost\r\n\r\n"),
]
# (finding #2, fixed: these used to be answered 200)
CASES += [pytest.param(*c, id=c[0]) for c in LENIENT]


@pytest.fixture(scope="module")
def srv(make_module_server):
    return make_module_server(name="smuggling")


@pytest.mark.parametrize("name,status,data", CASES)
def test_malformed_refused(srv, name, status, data):
    resps, closed = srv.raw(data + SMUGGLED, timeout=3)
    assert len(resps) == 1, f"expected exactly one response, got {resps}"
    r = resps[0]
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, r
    assert (r.header("connection") or "").lower() == "close", r
    assert r.header("content-type") == "application/problem+json", r
    assert r.header("cache-control") == "no-store", r
    assert r.header("date") and r.header("x-request-id"), r
    assert r.header("content-length") == str(len(r.body)), r
    doc = r.json()
    assert doc["status"] == r.status and doc["type"] == "about:blank", doc
    assert doc["request_id"] == r.header("x-request-id")
    assert closed, "the connection must be closed after a refusal"
    srv.assert_healthy()


def test_cl_te_smuggle_not_processed(srv):
    """The classic CL.TE: a front end honouring Content-Length would forward
    the 'G...' as a new request. We must refuse and answer nothing else."""
    body = b"0\r\n\r\nGET /hello?smuggled=2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    data = post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body), body)
    resps, closed = srv.raw(data)
    assert [r.status for r in resps] == [400], resps
    assert closed


def test_expect_100_continue(srv):
    with srv.connect() as c:
        c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
               b"Content-Length: 5\r\n\r\n")
        interim = c.read_response()
        assert interim.version == "HTTP/1.1" and interim.status == 100, interim
        assert interim.reason == "Continue"
        c.send(b"hello")
        r = c.read_response()
        assert (r.status, r.body) == (201, b"ok"), r
        # the connection stays usable
        assert c.request("GET", "/healthz").status == 200


def test_expect_100_continue_case_insensitive(srv):
    with srv.connect() as c:
        c.send(b"POST /echo-len/1 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-Continue\r\n"
               b"Content-Length: 2\r\n\r\n")
        assert c.read_response().status == 100
        c.send(b"ok")
        assert c.read_response().status == 201


def test_http10_without_host_allowed(srv):
    resps, closed = srv.raw(b"GET /hello HTTP/1.0\r\n\r\n")
    assert [r.status for r in resps] == [200], resps


def test_transfer_encoding_is_case_insensitive(srv):
    with srv.connect() as c:
        c.send(post(b"Transfer-Encoding: Chunked\r\n", b"2\r\nab\r\n0\r\n\r\n"))
        assert c.read_response().status == 201
        assert c.request("GET", "/healthz").status == 200


def test_valid_header_values_accepted(srv):
    with srv.connect() as c:
        # HTAB and obs-text are allowed inside field values (RFC 9110 5.5)
        for hdr in (b"X-A: a\tb\r\n", b"X-A: caf\xe9\r\n", b"X-A:\r\n", b"X-A:   padded   \r\n"):
            c.send(get(headers=hdr))
            assert c.read_response().status == 200, hdr


def test_refusal_is_logged(srv):
    srv.raw(get(headers=b"X-A: a\r\n b\r\n"))
    rec = srv.wait_log("request_refused", status=400)
    assert rec["level"] == "warn"
    assert rec.get("reason"), rec


def test_every_refusal_logs_request_refused(make_server):
    """Each malformed-request refusal is a warn-level request_refused record
    (with log.level warn it is the only trace an attack leaves).
    Finding #3 (fixed): path refusals used to log only an access line."""
    srv = make_server(name="refusal-log")
    ids = {}
    for p in CASES:
        name, status, data = p.values
        if p.marks:
            continue
        resps, _ = srv.raw(data)
        statuses = status if isinstance(status, tuple) else (status,)
        assert resps and resps[0].status in statuses, (name, resps)
        ids[resps[0].header("x-request-id")] = (name, resps[0].status)
    srv.stop()
    refused = {r.get("req"): r for r in srv.events("request_refused")}
    missing = sorted(name for rid, (name, _) in ids.items() if rid not in refused)
    assert not missing, f"no request_refused record for: {missing}"
    for rid, (name, status) in ids.items():
        rec = refused[rid]
        assert rec["level"] == "warn" and rec["status"] == status and rec.get("reason"), (name, rec)
