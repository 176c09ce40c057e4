/* base64url without padding (RFC 4648 §5, as JOSE uses it: RFC 7515 §2). */
#ifndef PC_JOSE_B64URL_H
#define PC_JOSE_B64URL_H

#include "core/result.h"

#include <stddef.h>
#include <stdint.h>

/* Characters needed to encode n bytes, without padding or NUL. */
#define PC_B64URL_ENCODED_LEN(n) (((n) * 4 + 2) / 3)
/* Upper bound of bytes that decoding n characters yields. */
#define PC_B64URL_DECODED_MAX(n) (((n) * 3) / 4 + 1)

/* Encode len bytes into out (cap bytes, NUL-terminated). Fails with
 * PC_ERR_INTERNAL if out is too small. *out_len excludes the NUL. */
PC_MUST_USE pc_result pc_b64url_encode(const uint8_t *in, size_t len, char *out, size_t cap,
                                       size_t *out_len);
/* Decode strictly: only [A-Za-z0-9_-], no padding, no whitespace, and the
 * unused low bits of the last character must be zero (so one string has
 * exactly one decoding). Fails with PC_ERR_PROTO on anything else. */
PC_MUST_USE pc_result pc_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                                       size_t *out_len);

#endif
