"""First slice, end to end: token from the AS -> gateway -> demo API."""

import portcullis_helpers as H
from gw_helpers import seen


def test_mtls_token_reaches_demo_api(gw, pki):
    tok = gw.mtls_token()
    tag = gw.demo.tags(1)[0]
    r = gw.call(f"/customers/{tag}", token=tok, cert="alice")
    assert r.status == 200, r
    body = r.json()
    assert body["service_tag"] == tag
    s = seen(r)
    assert s["x-portcullis-client-id"] == ["mtls-client"]
    assert s["x-portcullis-cert-thumbprint"] == [H.x5t_s256_of_pem(pki.cert("alice")[0])]
    assert r.header("date")
    assert r.header("x-fapi-interaction-id")
