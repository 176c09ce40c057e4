#include "core/str.h"
#include "jose/dpop.h"

#include "jose/b64url.h"
#include "jose/jws.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <math.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <string.h>

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static bool unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

pc_result pc_dpop_normalize_url(pc_str url, char *out, size_t cap, size_t *out_len)
{
    const char *p = url.ptr, *end = url.ptr + url.len;
    size_t o = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (o + 1 >= cap) return pc_fail(PC_ERR_PROTO, "URL too long");                           \
        out[o++] = (ch);                                                                           \
    } while (0)
    PC_ENSURE(url.len > 0 && url.len <= PC_DPOP_MAX_URL, PC_ERR_PROTO, "URL empty or too long");
    const char *colon = memchr(p, ':', url.len);
    PC_ENSURE(colon && colon + 2 < end && colon[1] == '/' && colon[2] == '/', PC_ERR_PROTO,
              "not an absolute http(s) URL");
    size_t slen = (size_t)(colon - p);
    bool https = slen == 5 && pc_str_eq_lit_ci((pc_str){p, 5}, "https");
    bool http = slen == 4 && pc_str_eq_lit_ci((pc_str){p, 4}, "http");
    PC_ENSURE(https || http, PC_ERR_PROTO, "URL scheme must be http or https");
    for (const char *s = https ? "https://" : "http://"; *s; s++) PUT(*s);
    p = colon + 3;
    /* authority = host [ ":" port ]; userinfo is refused, as no client
     * should put one in an htu. */
    const char *auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#') auth_end++;
    PC_ENSURE(auth_end > p, PC_ERR_PROTO, "URL has no host");
    PC_ENSURE(memchr(p, '@', (size_t)(auth_end - p)) == NULL, PC_ERR_PROTO,
              "URL must not carry userinfo");
    const char *port = NULL;
    const char *host_end = auth_end;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        PC_ENSURE(rb != NULL, PC_ERR_PROTO, "bad IPv6 literal in URL");
        host_end = rb + 1;
        if (host_end < auth_end) {
            PC_ENSURE(*host_end == ':', PC_ERR_PROTO, "bad authority in URL");
            port = host_end + 1;
        }
    } else {
        const char *c = memchr(p, ':', (size_t)(auth_end - p));
        if (c) {
            host_end = c;
            port = c + 1;
        }
    }
    PC_ENSURE(host_end > p, PC_ERR_PROTO, "URL has no host");
    for (const char *h = p; h < host_end; h++) PUT(lower(*h));
    if (port) {
        size_t plen = (size_t)(auth_end - port);
        PC_ENSURE(plen > 0 && plen <= 5, PC_ERR_PROTO, "bad port in URL");
        unsigned v = 0;
        for (size_t i = 0; i < plen; i++) {
            PC_ENSURE(port[i] >= '0' && port[i] <= '9', PC_ERR_PROTO, "bad port in URL");
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        PC_ENSURE(v > 0 && v <= 65535, PC_ERR_PROTO, "bad port in URL");
        if (!((https && v == 443) || (http && v == 80))) {
            char buf[8];
            int n = snprintf(buf, sizeof buf, ":%u", v);
            for (int i = 0; i < n; i++) PUT(buf[i]);
        }
    }
    p = auth_end;
    if (p == end || *p != '/') PUT('/');
    for (; p < end && *p != '?' && *p != '#'; p++) {
        if (*p != '%') {
            PUT(*p);
            continue;
        }
        PC_ENSURE(p + 2 < end, PC_ERR_PROTO, "bad percent-encoding in URL");
        int hi = pc_hexval(p[1]), lo = pc_hexval(p[2]);
        PC_ENSURE(hi >= 0 && lo >= 0, PC_ERR_PROTO, "bad percent-encoding in URL");
        int c = hi * 16 + lo;
        if (unreserved(c)) {
            PUT((char)c);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            PUT('%');
            PUT(hex[hi]);
            PUT(hex[lo]);
        }
        p += 2;
    }
#undef PUT
    out[o] = '\0';
    *out_len = o;
    return PC_OK;
}

/* Fetched once: EVP_sha256() pays an implicit fetch per call (PERF-NOTES). */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;
static void fetch_sha256(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

/* A JSON number that is an integer (NumericDate, RFC 7519 §2). */
static bool get_int(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d < -9e15 || d > 9e15) return false;
        *out = (int64_t)floor(d);
        return true;
    }
    return false;
}

static pc_result check_claims(const pc_jws *jws, const pc_dpop_check *chk, pc_dpop_proof *out)
{
    const json_t *c = jws->payload;
    const json_t *jti = json_object_get(c, "jti");
    PC_ENSURE(json_is_string(jti) && json_string_length(jti) > 0 &&
                  json_string_length(jti) <= PC_DPOP_MAX_JTI,
              PC_ERR_PROTO, "DPoP proof jti missing, empty or longer than %d", PC_DPOP_MAX_JTI);
    memcpy(out->jti, json_string_value(jti), json_string_length(jti) + 1);

    const json_t *htm = json_object_get(c, "htm");
    PC_ENSURE(json_is_string(htm), PC_ERR_PROTO, "DPoP proof htm missing");
    PC_ENSURE(pc_str_eq((pc_str){json_string_value(htm), json_string_length(htm)}, chk->method),
              PC_ERR_PROTO, "DPoP proof htm does not match the request method");

    const json_t *htu = json_object_get(c, "htu");
    PC_ENSURE(json_is_string(htu), PC_ERR_PROTO, "DPoP proof htu missing");
    char a[PC_DPOP_MAX_URL + 16], b[PC_DPOP_MAX_URL + 16];
    size_t alen, blen;
    pc_result r = pc_dpop_normalize_url((pc_str){json_string_value(htu), json_string_length(htu)}, a,
                                        sizeof a, &alen);
    PC_ENSURE(pc_ok(r), PC_ERR_PROTO, "DPoP proof htu is not a valid URL");
    PC_GUARD(pc_dpop_normalize_url(chk->url, b, sizeof b, &blen));
    PC_ENSURE(alen == blen && memcmp(a, b, alen) == 0, PC_ERR_PROTO,
              "DPoP proof htu does not match the request URL");

    int64_t iat;
    PC_ENSURE(get_int(c, "iat", &iat), PC_ERR_PROTO, "DPoP proof iat missing or not a number");
    PC_ENSURE(iat <= chk->now + (int64_t)chk->skew_s, PC_ERR_PROTO,
              "DPoP proof iat is in the future");
    PC_ENSURE(iat >= chk->now - (int64_t)chk->max_age_s, PC_ERR_PROTO,
              "DPoP proof iat is too old");
    out->iat = iat;

    const json_t *ath = json_object_get(c, "ath");
    if (chk->access_token.ptr) {
        /* ath = base64url(SHA-256(ASCII access token)), RFC 9449 §4.2. */
        PC_ENSURE(json_is_string(ath), PC_ERR_PROTO, "DPoP proof ath missing");
        uint8_t d[32];
        unsigned int dl = sizeof d;
        char want[48];
        size_t wl;
        if (chk->access_token_sha256) {
            memcpy(d, chk->access_token_sha256, sizeof d);
        } else {
            pthread_once(&sha256_once, fetch_sha256);
            PC_ENSURE(sha256_md != NULL, PC_ERR_CRYPTO, "SHA-256 is not available");
            PC_GUARD_OSSL(EVP_Digest(chk->access_token.ptr, chk->access_token.len, d, &dl,
                                     sha256_md, NULL),
                          "SHA-256");
        }
        PC_GUARD(pc_b64url_encode(d, dl, want, sizeof want, &wl));
        PC_ENSURE(pc_ct_eq(want, wl, json_string_value(ath), json_string_length(ath)),
                  PC_ERR_PROTO, "DPoP proof ath does not match the access token");
    }

    if (chk->nonce_ok) {
        const json_t *nonce = json_object_get(c, "nonce");
        if (!json_is_string(nonce) ||
            !chk->nonce_ok(chk->nonce_arg,
                           (pc_str){json_string_value(nonce), json_string_length(nonce)}, chk->now)) {
            out->need_nonce = true;
            return pc_fail(PC_ERR_DENY, "DPoP proof nonce missing or stale");
        }
    }
    return PC_OK;
}

/* Proof keys, cached per thread by RFC 7638 thumbprint. A client signs
 * every proof with the same key, and building an EVP_PKEY from a JWK
 * costs several microseconds; more, a stable key object lets the verify
 * context be reused too (jose/pkey_ctx.c). The thumbprint covers exactly
 * the members that define the key, so a hit is the same key; the members
 * it does not cover are checked on every proof (no private parts). */
#define KEY_CACHE 64

typedef struct key_entry {
    char thumb[PC_JWK_THUMBPRINT_BUF];
    pc_jwk jwk;
    /* The header jwk object this key was last found under, held (so its
     * address cannot be reused by another object while it is here). JWS
     * headers are cached per thread by their exact bytes (jws.c), so the
     * next proof under the same header has the very same jwk object: then
     * the private-member check and the thumbprint (canonical JSON and a
     * SHA-256) were already done for it. */
    json_t *src;
} key_entry;

typedef struct key_cache {
    key_entry e[KEY_CACHE];
    unsigned next;
} key_cache;

static pthread_key_t key_cache_tls;
static pthread_once_t key_cache_once = PTHREAD_ONCE_INIT;

static void key_cache_destroy(void *p)
{
    key_cache *kc = p;
    for (size_t i = 0; i < KEY_CACHE; i++) {
        pc_jwk_clear(&kc->e[i].jwk);
        json_decref(kc->e[i].src);
    }
    free(kc);
}

static void key_cache_init(void) { (void)pthread_key_create(&key_cache_tls, key_cache_destroy); }

static bool has_private_members(const json_t *jwk)
{
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++)
        if (json_object_get(jwk, priv[i])) return true;
    return false;
}

/* The key of a proof's jwk header, from the cache or parsed and cached.
 * The returned key is owned by the cache (valid until this thread's next
 * lookup evicts it, which cannot happen during one verification). */
static void remember_src(key_entry *e, const json_t *hjwk)
{
    json_decref(e->src);
    e->src = json_incref((json_t *)hjwk);
}

static pc_result proof_key(const json_t *hjwk, const pc_jwk **out)
{
    pthread_once(&key_cache_once, key_cache_init);
    key_cache *kc = pthread_getspecific(key_cache_tls);
    if (kc == NULL) {
        kc = calloc(1, sizeof *kc);
        PC_ENSURE(kc != NULL && pthread_setspecific(key_cache_tls, kc) == 0, PC_ERR_INTERNAL,
                  "out of memory");
    }
    for (size_t i = 0; i < KEY_CACHE; i++)
        if (kc->e[i].jwk.pkey && kc->e[i].src == hjwk) {
            *out = &kc->e[i].jwk;
            return PC_OK;
        }
    PC_ENSURE(!has_private_members(hjwk), PC_ERR_PROTO,
              "jwk holds private key members; a DPoP proof carries the public key only");
    char thumb[PC_JWK_THUMBPRINT_BUF];
    PC_GUARD(pc_jwk_thumbprint_json(hjwk, thumb));
    for (size_t i = 0; i < KEY_CACHE; i++)
        if (kc->e[i].jwk.pkey && strcmp(kc->e[i].thumb, thumb) == 0) {
            remember_src(&kc->e[i], hjwk);
            *out = &kc->e[i].jwk;
            return PC_OK;
        }
    pc_jwk jwk;
    PC_GUARD(pc_jwk_from_json(hjwk, PC_JWK_PUBLIC_ONLY, &jwk));
    key_entry *v = &kc->e[kc->next];
    kc->next = (kc->next + 1) % KEY_CACHE;
    pc_jwk_clear(&v->jwk);
    v->jwk = jwk;
    memcpy(v->thumb, jwk.thumbprint, sizeof v->thumb);
    remember_src(v, hjwk);
    *out = &v->jwk;
    return PC_OK;
}

pc_result pc_dpop_verify(pc_str proof, const pc_dpop_check *chk, pc_dpop_proof *out)
{
    memset(out, 0, sizeof *out);
    pc_jws jws;
    pc_result r = pc_jws_parse(proof, &jws);
    if (!pc_ok(r)) return pc_fail(PC_ERR_PROTO, "DPoP proof is not a valid JWS: %s", pc_errmsg());
    const pc_jwk *jwk = NULL;
    const json_t *hjwk = json_object_get(jws.header, "jwk");
    if (jws.typ == NULL || strcmp(jws.typ, "dpop+jwt") != 0)
        r = pc_fail(PC_ERR_PROTO, "DPoP proof typ must be dpop+jwt");
    else if (!(jws.alg & chk->allowed_algs))
        r = pc_fail(PC_ERR_PROTO, "DPoP proof alg %s is not allowed", pc_jws_alg_name(jws.alg));
    else if (!json_is_object(hjwk))
        r = pc_fail(PC_ERR_PROTO, "DPoP proof header has no jwk");
    else if (!pc_ok(r = proof_key(hjwk, &jwk)) || jwk == NULL)
        r = pc_fail(PC_ERR_PROTO, "DPoP proof jwk: %s", pc_errmsg());
    else if (!pc_ok(pc_jws_verify(&jws, jwk->pkey, chk->allowed_algs)))
        r = pc_fail(PC_ERR_PROTO, "DPoP proof signature does not verify");
    else {
        memcpy(out->jkt, jwk->thumbprint, sizeof out->jkt);
        r = check_claims(&jws, chk, out);
    }
    pc_jws_clear(&jws);
    return r;
}

pc_result pc_dpop_noncer_init(pc_dpop_noncer *n, const char *file)
{
    if (file == NULL) {
        PC_GUARD_OSSL(RAND_bytes(n->secret, sizeof n->secret), "RAND_bytes");
        return PC_OK;
    }
    FILE *f = fopen(file, "re");
    PC_ENSURE(f != NULL, PC_ERR_IO, "DPoP nonce secret %s: %s", file, strerror(errno));
    struct stat st;
    char hex[2 * PC_DPOP_NONCE_SECRET + 2] = "";
    bool ok = fstat(fileno(f), &st) == 0 && (st.st_mode & 077) == 0 &&
              fgets(hex, sizeof hex, f) != NULL;
    fclose(f);
    PC_ENSURE(ok, PC_ERR_USAGE, "DPoP nonce secret %s: unreadable, or readable by group/others (chmod 600)",
              file);
    for (size_t i = 0; i < PC_DPOP_NONCE_SECRET; i++) {
        int hi = pc_hexval(hex[2 * i]), lo = pc_hexval(hex[2 * i + 1]);
        PC_ENSURE(hi >= 0 && lo >= 0, PC_ERR_USAGE, "DPoP nonce secret %s: expected 64 hex characters",
                  file);
        n->secret[i] = (uint8_t)(hi * 16 + lo);
    }
    pc_wipe(hex, sizeof hex);
    return PC_OK;
}

static void nonce_for_step(const pc_dpop_noncer *n, int64_t step, char out[PC_DPOP_NONCE_LEN + 1])
{
    static const char label[] = "portcullis-dpop-nonce";
    uint8_t msg[sizeof label - 1 + 8], mac[32];
    unsigned int ml = 0;
    size_t ol = 0;
    memcpy(msg, label, sizeof label - 1);
    for (int i = 0; i < 8; i++) msg[sizeof label - 1 + (size_t)i] = (uint8_t)((uint64_t)step >> (56 - 8 * i));
    HMAC(EVP_sha256(), n->secret, sizeof n->secret, msg, sizeof msg, mac, &ml);
    if (!pc_ok(pc_b64url_encode(mac, 16, out, PC_DPOP_NONCE_LEN + 1, &ol))) out[0] = '\0';
}

void pc_dpop_nonce_make(const pc_dpop_noncer *n, int64_t now, char out[PC_DPOP_NONCE_LEN + 1])
{
    nonce_for_step(n, now / PC_DPOP_NONCE_STEP_S, out);
}

bool pc_dpop_nonce_ok(void *arg, pc_str nonce, int64_t now)
{
    const pc_dpop_noncer *n = arg;
    char want[PC_DPOP_NONCE_LEN + 1];
    int64_t step = now / PC_DPOP_NONCE_STEP_S;
    for (int64_t s = step; s >= step - 1; s--) {
        nonce_for_step(n, s, want);
        if (pc_ct_eq(want, PC_DPOP_NONCE_LEN, nonce.ptr, nonce.len)) return true;
    }
    return false;
}
