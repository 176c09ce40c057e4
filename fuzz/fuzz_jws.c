/* libFuzzer target for the JWS parser and verifier (RFC 7515 compact form)
 * and, through a header's "jwk" member, the JWK parser (RFC 7517).
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks what the
 * code promises:
 *   1. a parsed JWS has an object header and payload, a known alg, and a
 *      signing input that is a prefix of the input;
 *   2. verification never succeeds for "none" or HS256, nor with a fixed
 *      key the fuzzer cannot know (a success would be a forgery);
 *   3. a JWK that parses exports back to the same RFC 7638 thumbprint
 *      (one key, one thumbprint), and is never private. */
#include "jose/jwk.h"
#include "jose/jws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Made once per process: libFuzzer runs many inputs in one process. */
static EVP_PKEY *fixed_ec, *fixed_ed, *fixed_rsa;

static void make_keys(void)
{
    if (fixed_ec != NULL) return;
    fixed_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fixed_ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    fixed_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (fixed_ec == NULL || fixed_ed == NULL || fixed_rsa == NULL) abort();
}

static void check_shape(const pc_jws *jws, const uint8_t *data, size_t size)
{
    if (!json_is_object(jws->header) || !json_is_object(jws->payload)) abort();
    if (jws->alg == PC_ALG_UNKNOWN) abort();
    if (jws->signing_input.ptr != (const char *)data || jws->signing_input.len >= size) abort();
    if (jws->sig_len > sizeof jws->sig) abort();
    if (jws->kid != NULL && strlen(jws->kid) > PC_JWK_MAX_KID) abort();
}

static void check_header_jwk(const pc_jws *jws)
{
    const json_t *obj = json_object_get(jws->header, "jwk");
    if (obj == NULL) return;
    pc_jwk jwk;
    if (!pc_ok(pc_jwk_from_json(obj, PC_JWK_PUBLIC_ONLY, &jwk))) {
        if (jwk.pkey != NULL) abort();
        return;
    }
    if (jwk.is_private || jwk.pkey == NULL) abort();
    char tp[PC_JWK_THUMBPRINT_BUF], tp_json[PC_JWK_THUMBPRINT_BUF];
    if (!pc_ok(pc_jwk_thumbprint_pkey(jwk.pkey, tp)) || strcmp(tp, jwk.thumbprint) != 0) abort();
    if (!pc_ok(pc_jwk_thumbprint_json(obj, tp_json)) || strcmp(tp_json, tp) != 0) abort();
    /* A self-signed proof with this key may well verify; it must not crash. */
    pc_result r = pc_jws_verify(jws, jwk.pkey, PC_ALGS_FAPI | PC_ALG_RS256);
    if (pc_ok(r) && (jws->alg == PC_ALG_NONE || jws->alg == PC_ALG_HS256)) abort();
    pc_jwk_clear(&jwk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_keys();
    pc_jws jws;
    if (!pc_ok(pc_jws_parse((pc_str){(const char *)data, size}, &jws))) {
        if (jws.header != NULL || jws.payload != NULL) abort();
        return 0;
    }
    check_shape(&jws, data, size);
    EVP_PKEY *keys[] = {fixed_ec, fixed_ed, fixed_rsa};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (pc_ok(pc_jws_verify(&jws, keys[i], 0xffffffffu))) abort();
    check_header_jwk(&jws);
    pc_jws_clear(&jws);
    return 0;
}
