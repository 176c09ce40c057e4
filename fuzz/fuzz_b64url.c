/* libFuzzer target for the strict base64url decoder (RFC 4648 §5, unpadded
 * per RFC 7515 §2). Besides "no crash, no overflow" it checks the
 * properties the strict decoder promises:
 *   1. whatever decodes re-encodes to exactly the input (one string, one
 *      decoding: no padding, whitespace or stray trailing bits slip by);
 *   2. encoding any bytes and decoding the result gives the bytes back;
 *   3. the exact output size suffices and one byte less is refused.
 * Buffers are heap-allocated at their exact sizes so ASan sees any write
 * past them. */
#include "jose/b64url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode(const uint8_t *data, size_t size)
{
    size_t cap = PC_B64URL_DECODED_MAX(size);
    uint8_t *dec = malloc(cap);
    if (dec == NULL) abort();
    size_t dec_len = 0;
    if (pc_ok(pc_b64url_decode((const char *)data, size, dec, cap, &dec_len))) {
        if (dec_len > cap || PC_B64URL_ENCODED_LEN(dec_len) != size) abort();
        char *enc = malloc(size + 1);
        if (enc == NULL) abort();
        size_t enc_len = 0;
        if (!pc_ok(pc_b64url_encode(dec, dec_len, enc, size + 1, &enc_len))) abort();
        if (enc_len != size || memcmp(enc, data, size) != 0) abort();
        free(enc);
        /* Property 3: exactly dec_len bytes of room works, one less fails. */
        uint8_t *exact = malloc(dec_len ? dec_len : 1);
        if (exact == NULL) abort();
        if (!pc_ok(pc_b64url_decode((const char *)data, size, exact, dec_len, NULL))) abort();
        if (dec_len > 0 && pc_ok(pc_b64url_decode((const char *)data, size, exact, dec_len - 1,
                                                  NULL)))
            abort();
        free(exact);
    } else if (dec_len != 0) {
        abort();
    }
    free(dec);
}

static void check_encode(const uint8_t *data, size_t size)
{
    size_t enc_cap = PC_B64URL_ENCODED_LEN(size) + 1;
    char *enc = malloc(enc_cap);
    uint8_t *dec = malloc(size ? size : 1);
    if (enc == NULL || dec == NULL) abort();
    size_t enc_len = 0, dec_len = 0;
    if (!pc_ok(pc_b64url_encode(data, size, enc, enc_cap, &enc_len))) abort();
    if (enc_len != enc_cap - 1 || enc[enc_len] != '\0') abort();
    /* One byte less room than documented must be refused. */
    if (pc_ok(pc_b64url_encode(data, size, enc, enc_cap - 1, NULL))) abort();
    if (!pc_ok(pc_b64url_decode(enc, enc_len, dec, size, &dec_len))) abort();
    if (dec_len != size || (size && memcmp(dec, data, size) != 0)) abort();
    free(dec);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode(data, size);
    check_encode(data, size);
    return 0;
}
