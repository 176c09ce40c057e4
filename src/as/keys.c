/* Signing keys: generation, the keyring the server signs with, and
 * rotation (keys.h).
 *
 * Lifecycle: a key is born NEXT and published in the JWKS before it signs
 * anything, so verifiers that cached our JWKS already hold it when it turns
 * ACTIVE; the ACTIVE key turns RETIRED and stays published until every
 * token it signed has expired (retire_after), then it is purged.
 *
 * The keyring trusts only what the KEK authenticates: every published key
 * is unsealed at load, its public JWK is derived from the private key, and
 * the public_jwk column (kept for tools that have no KEK) must agree. */
#include "as/keys.h"
#include "core/log.h"
#include "jose/b64url.h"
#include "jose/jwk.h"

#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* PS256 keys: RSA 2048, FAPI 2.0 §5.4.1's minimum and 112-bit security
 * (NIST SP 800-57); keys rotate, and RSA 3072 would cost about three times
 * as much per signature. ES256 is the default for speed. */
#define KEYS_RSA_BITS 2048
/* kid: base64url of 16 random bytes (128 bits: unguessable, unique). */
#define KID_RAND_BYTES 16

typedef struct kr_key {
    char kid[64];
    pc_jws_alg alg;
    pc_key_state state;
    EVP_PKEY *pub; /* owned; public part only */
} kr_key;

struct pc_keyring {
    EVP_PKEY *signer; /* owned; the active private key */
    pc_jws_signer at_signer; /* signer with header {alg, "at+jwt", active kid} */
    char active_kid[64];
    pc_jws_alg active_alg;
    kr_key *keys; /* owned; every published key, active first */
    size_t n;
    char *jwks_json; /* owned; {"keys":[...]} rendered once */
    size_t jwks_len;
};

typedef struct key_list {
    pc_store_key **k;
    size_t n;
} key_list;

static void key_list_free(key_list *l)
{
    for (size_t i = 0; i < l->n; i++) pc_store_key_free(l->k[i]);
    free(l->k);
    l->k = NULL;
    l->n = 0;
}

/* ---- keys: make, check, publish --------------------------------------------- */

static pc_result generate(pc_jws_alg alg, EVP_PKEY **out)
{
    switch (alg) {
    case PC_ALG_ES256: *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"); break;
    case PC_ALG_PS256: *out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)KEYS_RSA_BITS); break;
    case PC_ALG_EDDSA: *out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"); break;
    default:
        *out = NULL;
        return pc_fail(PC_ERR_USAGE, "signing keys: algorithm %s is not ES256, PS256 or EdDSA",
                       pc_jws_alg_name(alg));
    }
    if (*out == NULL) return pc_fail_ossl("signing keys: key generation");
    return PC_OK;
}

static bool type_fits(pc_jws_alg alg, const EVP_PKEY *pkey)
{
    pc_jwk_type t = pc_jwk_pkey_type(pkey);
    return (alg == PC_ALG_ES256 && t == PC_JWK_EC_P256) ||
           (alg == PC_ALG_PS256 && t == PC_JWK_RSA) || (alg == PC_ALG_EDDSA && t == PC_JWK_ED25519);
}

static pc_result new_kid(char kid[64])
{
    uint8_t raw[KID_RAND_BYTES];
    PC_ENSURE(RAND_bytes(raw, sizeof raw) == 1, PC_ERR_CRYPTO, "signing keys: RAND_bytes failed");
    size_t len = 0;
    return pc_b64url_encode(raw, sizeof raw, kid, 64, &len);
}

static pc_result public_text(EVP_PKEY *pkey, const char *kid, pc_jws_alg alg, char **out)
{
    json_t *jwk = NULL;
    PC_GUARD(pc_jwk_public_json(pkey, kid, pc_jws_alg_name(alg), "sig", &jwk));
    *out = json_dumps(jwk, JSON_COMPACT);
    json_decref(jwk);
    PC_ENSURE(*out != NULL, PC_ERR_INTERNAL, "signing keys: out of memory");
    return PC_OK;
}

/* Make a key, seal it and store it in the given state. */
static pc_result make_key(pc_store *st, const pc_kek *kek, pc_jws_alg alg, pc_key_state state,
                          int64_t now, char kid_out[64])
{
    pc_store_key k = {.state = state, .created_at = now,
                      .activated_at = state == PC_KEY_ACTIVE ? now : 0};
    snprintf(k.alg, sizeof k.alg, "%s", pc_jws_alg_name(alg));
    EVP_PKEY *pkey = NULL;
    PC_GUARD(generate(alg, &pkey));
    pc_result r = new_kid(k.kid);
    if (pc_ok(r)) r = pc_key_seal(kek, k.kid, pkey, &k.sealed, &k.sealed_len);
    if (pc_ok(r)) r = public_text(pkey, k.kid, alg, &k.public_jwk);
    if (pc_ok(r)) r = pc_store_key_put(st, &k);
    if (pc_ok(r) && kid_out != NULL) memcpy(kid_out, k.kid, sizeof k.kid);
    EVP_PKEY_free(pkey);
    free(k.sealed);
    free(k.public_jwk);
    return r;
}

static pc_result key_alg(const pc_store_key *k, pc_jws_alg *out)
{
    *out = pc_jws_alg_parse(pc_str_c(k->alg));
    PC_ENSURE((*out & PC_ALGS_FAPI) != 0, PC_ERR_IO, "signing key %s: unknown alg in the store",
              k->kid);
    return PC_OK;
}

/* Unseal a stored key and check that it is what the row says: the right
 * type for its alg, and the same public key as the public_jwk column. */
static pc_result open_key(const pc_kek *kek, const pc_store_key *k, EVP_PKEY **out)
{
    pc_jws_alg alg;
    PC_GUARD(key_alg(k, &alg));
    PC_GUARD(pc_key_unseal(kek, k->kid, k->sealed, k->sealed_len, out));
    char tp_key[PC_JWK_THUMBPRINT_BUF], tp_col[PC_JWK_THUMBPRINT_BUF] = "";
    json_t *col = json_loads(k->public_jwk, JSON_REJECT_DUPLICATES, NULL);
    pc_result r = type_fits(alg, *out) ? PC_OK
                                       : pc_fail(PC_ERR_IO, "signing key %s: not an %s key",
                                                 k->kid, k->alg);
    if (pc_ok(r)) r = pc_jwk_thumbprint_pkey(*out, tp_key);
    if (pc_ok(r) && col != NULL) r = pc_jwk_thumbprint_json(col, tp_col);
    if (pc_ok(r) && (col == NULL || strcmp(tp_key, tp_col) != 0))
        r = pc_fail(PC_ERR_IO, "signing key %s: public_jwk does not match the sealed key",
                    k->kid);
    json_decref(col);
    if (!pc_ok(r)) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    return r;
}

static pc_result public_only(EVP_PKEY *pkey, EVP_PKEY **out)
{
    uint8_t *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0) return pc_fail_ossl("signing keys: public key");
    const uint8_t *p = der;
    *out = d2i_PUBKEY(NULL, &p, len);
    OPENSSL_free(der);
    if (*out == NULL) return pc_fail_ossl("signing keys: public key");
    return PC_OK;
}

static bool published(const pc_store_key *k, int64_t now)
{
    return k->state != PC_KEY_RETIRED || k->retire_after > now;
}

/* ---- the keyring ------------------------------------------------------------- */

void pc_keyring_free(pc_keyring *kr)
{
    if (kr == NULL) return;
    pc_jws_signer_clear(&kr->at_signer);
    EVP_PKEY_free(kr->signer);
    for (size_t i = 0; i < kr->n; i++) EVP_PKEY_free(kr->keys[i].pub);
    free(kr->keys);
    free(kr->jwks_json);
    free(kr);
}

/* The ACTIVE key that signs: the one activated last if there are several
 * (only a crash between two writes of a rotation could make that). */
static const pc_store_key *pick_active(const key_list *l)
{
    const pc_store_key *best = NULL;
    for (size_t i = 0; i < l->n; i++)
        if (l->k[i]->state == PC_KEY_ACTIVE &&
            (best == NULL || l->k[i]->activated_at > best->activated_at))
            best = l->k[i];
    return best;
}

/* Add one published key: its public part to the ring and its JWK to the
 * set; the active one also becomes the signer. */
static pc_result add_key(pc_keyring *kr, const pc_kek *kek, const pc_store_key *k, bool signer,
                         json_t *keys)
{
    kr_key *e = &kr->keys[kr->n];
    EVP_PKEY *priv = NULL;
    PC_GUARD(open_key(kek, k, &priv));
    json_t *jwk = NULL;
    pc_result r = key_alg(k, &e->alg);
    if (pc_ok(r)) r = public_only(priv, &e->pub);
    if (pc_ok(r)) r = pc_jwk_public_json(e->pub, k->kid, k->alg, "sig", &jwk);
    if (pc_ok(r) && json_array_append_new(keys, jwk) != 0)
        r = pc_fail(PC_ERR_INTERNAL, "signing keys: out of memory");
    if (!pc_ok(r)) {
        EVP_PKEY_free(priv);
        EVP_PKEY_free(e->pub);
        e->pub = NULL;
        return r;
    }
    snprintf(e->kid, sizeof e->kid, "%s", k->kid);
    e->state = k->state;
    kr->n++;
    if (signer) {
        kr->signer = priv;
        memcpy(kr->active_kid, e->kid, sizeof e->kid);
        kr->active_alg = e->alg;
    } else {
        EVP_PKEY_free(priv);
    }
    return PC_OK;
}

/* Publish order: the active key first (a naive verifier that takes
 * keys[0] gets the right one), then any other ACTIVE key, NEXT, and
 * RETIRED keys still inside their retire_after. */
static pc_result add_all(pc_keyring *kr, const pc_kek *kek, const key_list *l, int64_t now,
                         json_t *keys)
{
    static const pc_key_state order[] = {PC_KEY_ACTIVE, PC_KEY_NEXT, PC_KEY_RETIRED};
    const pc_store_key *active = pick_active(l);
    PC_ENSURE(active != NULL, PC_ERR_INTERNAL, "signing keys: no active key");
    PC_GUARD(add_key(kr, kek, active, true, keys));
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (size_t i = 0; i < l->n; i++)
            if (l->k[i] != active && l->k[i]->state == order[o] && published(l->k[i], now))
                PC_GUARD(add_key(kr, kek, l->k[i], false, keys));
    return PC_OK;
}

static pc_result build(const pc_kek *kek, const key_list *l, int64_t now, pc_keyring **out)
{
    pc_keyring *kr = calloc(1, sizeof *kr);
    PC_ENSURE(kr != NULL, PC_ERR_INTERNAL, "signing keys: out of memory");
    kr->keys = calloc(l->n ? l->n : 1, sizeof *kr->keys);
    json_t *keys = json_array();
    pc_result r = kr->keys && keys ? PC_OK
                                   : pc_fail(PC_ERR_INTERNAL, "signing keys: out of memory");
    if (pc_ok(r)) r = add_all(kr, kek, l, now, keys);
    if (pc_ok(r))
        r = pc_jws_signer_init(&kr->at_signer, kr->active_alg, kr->signer, kr->active_kid,
                               "at+jwt");
    if (pc_ok(r)) {
        json_t *set = json_pack("{s:O}", "keys", keys);
        kr->jwks_json = set ? json_dumps(set, JSON_COMPACT) : NULL;
        json_decref(set);
        if (kr->jwks_json == NULL) r = pc_fail(PC_ERR_INTERNAL, "signing keys: out of memory");
        else kr->jwks_len = strlen(kr->jwks_json);
    }
    json_decref(keys);
    if (!pc_ok(r)) {
        pc_keyring_free(kr);
        return r;
    }
    *out = kr;
    return PC_OK;
}

static size_t count_state(const key_list *l, pc_key_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) n += l->k[i]->state == s;
    return n;
}

/* The oldest NEXT key: published longest, so the one to promote. The list
 * is newest first. */
static const pc_store_key *oldest_next(const key_list *l)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->k[i]->state == PC_KEY_NEXT) return l->k[i];
    return NULL;
}

/* Bring the store to one ACTIVE key and at least one NEXT: on first run
 * make both; if nothing is active (every key retired) promote the oldest
 * NEXT, which verifiers have already seen, or make a new key. */
static pc_result ensure_keys(pc_store *st, const pc_kek *kek, pc_jws_alg alg, int64_t now,
                             key_list *l)
{
    PC_GUARD(pc_store_key_list(st, &l->k, &l->n));
    bool changed = false;
    if (count_state(l, PC_KEY_ACTIVE) == 0) {
        const pc_store_key *next = oldest_next(l);
        if (next != NULL) {
            pc_log_msg(PC_LOG_WARN, "signing_key_promoted",
                       "no active signing key; promoting the next key %s", next->kid);
            PC_GUARD(pc_store_key_set_state(st, next->kid, PC_KEY_ACTIVE, now, 0));
        } else {
            PC_GUARD(make_key(st, kek, alg, PC_KEY_ACTIVE, now, NULL));
        }
        changed = true;
    }
    if (!changed && count_state(l, PC_KEY_NEXT) > 0) return PC_OK;
    key_list_free(l);
    PC_GUARD(pc_store_key_list(st, &l->k, &l->n));
    if (count_state(l, PC_KEY_NEXT) > 0) return PC_OK;
    PC_GUARD(make_key(st, kek, alg, PC_KEY_NEXT, now, NULL));
    key_list_free(l);
    return pc_store_key_list(st, &l->k, &l->n);
}

pc_result pc_keyring_load(pc_store *st, const pc_kek *kek, pc_jws_alg alg, pc_keyring **out)
{
    *out = NULL;
    int64_t now = (int64_t)time(NULL);
    /* One write transaction: two processes starting on a new store cannot
     * both make a first key, and if the keyring cannot be built (a wrong
     * KEK) nothing made here is kept. */
    PC_GUARD(pc_store_begin(st));
    key_list l = {0};
    pc_result r = ensure_keys(st, kek, alg, now, &l);
    if (pc_ok(r)) r = build(kek, &l, now, out);
    key_list_free(&l);
    if (pc_ok(r)) r = pc_store_commit(st);
    if (!pc_ok(r)) {
        pc_store_rollback(st);
        pc_keyring_free(*out);
        *out = NULL;
    }
    return r;
}

const char *pc_keyring_jwks_json(const pc_keyring *kr, size_t *len)
{
    if (len != NULL) *len = kr->jwks_len;
    return kr->jwks_json;
}

pc_result pc_keyring_sign_access_token(const pc_keyring *kr, const char *claims, size_t len,
                                        char **out, size_t *out_len)
{
    return pc_jws_signer_sign(&kr->at_signer, claims, len, out, out_len);
}

EVP_PKEY *pc_keyring_public(const pc_keyring *kr, const char *kid, pc_jws_alg *alg)
{
    if (kid == NULL) return NULL;
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].kid, kid) == 0) {
            if (alg != NULL) *alg = kr->keys[i].alg;
            return kr->keys[i].pub;
        }
    return NULL;
}

const char *pc_keyring_active_kid(const pc_keyring *kr)
{
    return kr->active_kid;
}

/* ---- rotation ------------------------------------------------------------------ */

/* Before changing anything, make sure this KEK opens the keys that will
 * sign: rotating with the wrong KEK would promote a key no server can use
 * and seal the new NEXT key under a key no one has. */
static pc_result check_kek(const pc_kek *kek, const key_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->k[i]->state == PC_KEY_RETIRED) continue;
        EVP_PKEY *pkey = NULL;
        PC_GUARD(open_key(kek, l->k[i], &pkey));
        EVP_PKEY_free(pkey);
    }
    return PC_OK;
}

static pc_result rotate_locked(pc_store *st, const pc_kek *kek, pc_jws_alg alg,
                               int64_t retire_after, int64_t now)
{
    key_list l = {0};
    PC_GUARD(pc_store_key_list(st, &l.k, &l.n));
    pc_result r = check_kek(kek, &l);
    char promote[64] = "";
    const pc_store_key *next = oldest_next(&l);
    if (pc_ok(r) && next != NULL) {
        memcpy(promote, next->kid, sizeof promote);
    } else if (pc_ok(r)) {
        /* No pre-published key (a store emptied by hand, or a first run):
         * the new key signs at once, and verifiers with a cached JWKS must
         * refetch on the unknown kid. */
        if (count_state(&l, PC_KEY_ACTIVE) > 0)
            pc_log_msg(PC_LOG_WARN, "signing_key_unannounced",
                       "no next key to promote; the new active key was not published before");
        r = make_key(st, kek, alg, PC_KEY_NEXT, now, promote);
    }
    for (size_t i = 0; i < l.n && pc_ok(r); i++)
        if (l.k[i]->state == PC_KEY_ACTIVE)
            r = pc_store_key_set_state(st, l.k[i]->kid, PC_KEY_RETIRED, l.k[i]->activated_at,
                                       retire_after);
    key_list_free(&l);
    if (pc_ok(r)) r = pc_store_key_set_state(st, promote, PC_KEY_ACTIVE, now, 0);
    if (pc_ok(r)) r = make_key(st, kek, alg, PC_KEY_NEXT, now, NULL);
    if (pc_ok(r)) r = pc_store_key_purge(st, now);
    return r;
}

pc_result pc_keys_rotate(pc_store *st, const pc_kek *kek, pc_jws_alg alg,
                         uint32_t max_token_lifetime_s, uint32_t clock_skew_s, int64_t now)
{
    /* A token signed just before the rotation lives max_token_lifetime_s;
     * a verifier whose clock is behind accepts it clock_skew_s longer. */
    int64_t retire_after = now + (int64_t)max_token_lifetime_s + (int64_t)clock_skew_s;
    PC_GUARD(pc_store_begin(st));
    pc_result r = rotate_locked(st, kek, alg, retire_after, now);
    if (!pc_ok(r)) {
        pc_store_rollback(st);
        return r;
    }
    return pc_store_commit(st);
}
