/* The authorization server's signing keys: made on first run, kept in the
 * store with the private part sealed under a key-encryption key (KEK), and
 * rotated so that the next key is published before anything is signed with
 * it and a retired key stays published until every token it signed has
 * expired.
 *
 * KEK: 32 bytes, read from the file named by as.kek_file (hex, 64
 * characters, file mode must not be group/world readable) or, if that is
 * not set, from the environment variable PORTCULLIS_KEK (hex). Sealing is
 * AES-256-GCM with a random 96-bit nonce and the kid as associated data:
 *   sealed = "pck1" || nonce(12) || ciphertext(PKCS#8 DER) || tag(16)
 *
 * Signing goes through pc_signer so that keys can later move to a separate
 * process or an HSM without touching callers (STYLE.md). */
#ifndef PC_AS_KEYS_H
#define PC_AS_KEYS_H

#include "core/result.h"
#include "jose/jws.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>

#define PC_KEK_BYTES 32
#define PC_KEK_ENV "PORTCULLIS_KEK"

typedef struct pc_kek {
    uint8_t key[PC_KEK_BYTES];
} pc_kek;

/* Load the KEK from file (if not NULL) or PORTCULLIS_KEK. */
PC_MUST_USE pc_result pc_kek_load(const char *file, pc_kek *out);
/* Create a new random KEK file (mode 0600, refuses to overwrite). */
PC_MUST_USE pc_result pc_kek_create(const char *file);
void pc_kek_wipe(pc_kek *kek);

PC_MUST_USE pc_result pc_key_seal(const pc_kek *kek, const char *kid, EVP_PKEY *pkey,
                                  uint8_t **out, size_t *out_len);
PC_MUST_USE pc_result pc_key_unseal(const pc_kek *kek, const char *kid, const uint8_t *sealed,
                                    size_t len, EVP_PKEY **out);

/* The keys the server holds in memory: the active signer and every
 * published public key. Immutable once built; shared by all workers. */
typedef struct pc_keyring pc_keyring;

/* Load keys from the store; if there is none, make one (alg) and store it
 * as active, plus a NEXT key so that the first rotation is instant. If no
 * key is ACTIVE (all retired) the oldest NEXT is promoted; if there is no
 * NEXT one is made. alg is only used for keys made here: existing keys keep
 * theirs. Every published key is unsealed, so a wrong KEK fails the load
 * (and nothing made during it is kept: one store transaction). */
PC_MUST_USE pc_result pc_keyring_load(pc_store *st, const pc_kek *kek, pc_jws_alg alg,
                                      pc_keyring **out);
void pc_keyring_free(pc_keyring *kr);
/* {"keys":[...]} of every published key (NEXT, ACTIVE, unexpired RETIRED),
 * each with kid, use "sig" and alg. Owned by the keyring. */
const char *pc_keyring_jwks_json(const pc_keyring *kr, size_t *len);
/* Sign an access token with the active key: header {alg, "typ":"at+jwt",
 * kid}, prepared at load; claims is the payload's JSON text (len bytes). */
PC_MUST_USE pc_result pc_keyring_sign_access_token(const pc_keyring *kr, const char *claims,
                                                   size_t len, char **out, size_t *out_len);
/* The public key for a kid we published (NEXT/ACTIVE/RETIRED), for
 * verifying our own tokens (introspection, the in-process gateway). */
EVP_PKEY *pc_keyring_public(const pc_keyring *kr, const char *kid, pc_jws_alg *alg);
const char *pc_keyring_active_kid(const pc_keyring *kr);

/* Rotation (CLI): the oldest NEXT becomes ACTIVE, ACTIVE becomes RETIRED
 * with retire_after = now + max_token_lifetime_s + clock_skew_s, a new NEXT
 * (alg) is made, and retired keys past their time are purged, all in one
 * store transaction. Refuses (changing nothing) if the KEK does not open
 * the NEXT and ACTIVE keys. A change of alg therefore signs from the
 * second rotation on: the first publishes a key of the new alg as NEXT.
 * A running server keeps signing with the key it loaded until it reloads
 * (SIGHUP), so reload soon after rotating. */
PC_MUST_USE pc_result pc_keys_rotate(pc_store *st, const pc_kek *kek, pc_jws_alg alg,
                                     uint32_t max_token_lifetime_s, uint32_t clock_skew_s,
                                     int64_t now);

#endif
