/* base64url (RFC 4648 §5, unpadded as in RFC 7515 §2): vectors, round
 * trips and the strictness the header promises. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jose/b64url.h"

#include <stdio.h>
#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct vector {
    const char *raw;
    size_t raw_len;
    const char *enc;
};

/* RFC 4648 §10 with the padding removed, the url-alphabet characters, and
 * the JWS header of RFC 7515 §3.3 (with its CR LF). */
static const struct vector vectors[] = {
    {"", 0, ""},
    {"f", 1, "Zg"},
    {"fo", 2, "Zm8"},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg"},
    {"fooba", 5, "Zm9vYmE"},
    {"foobar", 6, "Zm9vYmFy"},
    {"\xfb\xef\xbe", 3, "----"},
    {"\xff\xff\xff", 3, "____"},
    {"\xfb\xff", 2, "-_8"},
    {"\x00\x00\x00", 3, "AAAA"},
    {"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}", 30, "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"},
};
#define N_VECTORS (sizeof vectors / sizeof vectors[0])

static void test_vectors_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VECTORS; i++) {
        char out[128];
        size_t len = 99;
        assert_true(pc_ok(pc_b64url_encode((const uint8_t *)vectors[i].raw, vectors[i].raw_len,
                                           out, sizeof out, &len)));
        assert_string_equal(out, vectors[i].enc);
        assert_int_equal(len, strlen(vectors[i].enc));
        assert_int_equal(len, PC_B64URL_ENCODED_LEN(vectors[i].raw_len));
    }
}

static void test_vectors_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VECTORS; i++) {
        uint8_t out[128];
        size_t len = 99;
        const char *enc = vectors[i].enc;
        assert_true(pc_ok(pc_b64url_decode(enc, strlen(enc), out, sizeof out, &len)));
        assert_int_equal(len, vectors[i].raw_len);
        assert_memory_equal(out, vectors[i].raw, len);
        assert_true(len <= PC_B64URL_DECODED_MAX(strlen(enc)));
    }
}

static void fill(uint8_t *buf, size_t n, uint32_t seed)
{
    /* A small LCG: varied bytes, reproducible failures. */
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
}

/* Every length 0..64, with buffers of exactly the documented size. */
static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 64; n++) {
        for (uint32_t seed = 1; seed <= 8; seed++) {
            uint8_t raw[64], back[PC_B64URL_DECODED_MAX(PC_B64URL_ENCODED_LEN(64))];
            char enc[PC_B64URL_ENCODED_LEN(64) + 1];
            fill(raw, n, seed * 7919u + (uint32_t)n);
            size_t enc_len = 0, back_len = 0;
            size_t cap = PC_B64URL_ENCODED_LEN(n) + 1;
            assert_true(pc_ok(pc_b64url_encode(raw, n, enc, cap, &enc_len)));
            assert_int_equal(enc_len, PC_B64URL_ENCODED_LEN(n));
            assert_int_equal(strlen(enc), enc_len);
            assert_int_equal(strspn(enc, alphabet), enc_len);
            /* Decode into exactly n bytes: the capacity check is not off by one. */
            assert_true(pc_ok(pc_b64url_decode(enc, enc_len, back, n, &back_len)));
            assert_int_equal(back_len, n);
            if (n) assert_memory_equal(back, raw, n);
            assert_true(n <= PC_B64URL_DECODED_MAX(enc_len));
        }
    }
}

static void test_every_byte_value(void **state)
{
    (void)state;
    uint8_t raw[256], back[256];
    char enc[PC_B64URL_ENCODED_LEN(256) + 1];
    for (int i = 0; i < 256; i++) raw[i] = (uint8_t)i;
    size_t enc_len = 0, back_len = 0;
    assert_true(pc_ok(pc_b64url_encode(raw, sizeof raw, enc, sizeof enc, &enc_len)));
    assert_true(pc_ok(pc_b64url_decode(enc, enc_len, back, sizeof back, &back_len)));
    assert_int_equal(back_len, 256);
    assert_memory_equal(back, raw, 256);
}

static void expect_decode_fails(const char *in, size_t len)
{
    uint8_t out[64];
    size_t out_len = 77;
    pc_result r = pc_b64url_decode(in, len, out, sizeof out, &out_len);
    if (pc_ok(r)) fail_msg("decoding '%.*s' (%zu) succeeded", (int)len, in, len);
    assert_int_equal(r.err, PC_ERR_PROTO);
    assert_int_equal(out_len, 0);
    assert_true(strlen(pc_errmsg()) > 0);
}

static void test_rejects_padding(void **state)
{
    (void)state;
    expect_decode_fails("Zg==", 4);
    expect_decode_fails("Zm8=", 4);
    expect_decode_fails("Zg=", 3);
    expect_decode_fails("====", 4);
    expect_decode_fails("Zm9vYg==", 8);
}

static void test_rejects_standard_alphabet(void **state)
{
    (void)state;
    expect_decode_fails("+A", 2);
    expect_decode_fails("/w", 2);
    expect_decode_fails("Zm9v+_-A", 8);
    expect_decode_fails("Zm9v/_-A", 8);
    expect_decode_fails("ab+/", 4);
}

static void test_rejects_whitespace(void **state)
{
    (void)state;
    expect_decode_fails(" Zm9v", 5);
    expect_decode_fails("Zm9v\n", 5);
    expect_decode_fails("Zm9v\r\nYmFy", 10);
    expect_decode_fails("Zm 9v", 5);
    expect_decode_fails("Zm9v\tYg", 7);
    expect_decode_fails("Zm9vYmF ", 8);
}

static void test_rejects_other_bytes(void **state)
{
    (void)state;
    expect_decode_fails("Zm\0v", 4);
    expect_decode_fails("Zm\x80v", 4);
    expect_decode_fails("Zm9v\xff\xff\xff\xff", 8);
    expect_decode_fails("Zm9v.", 5);
    /* Only the 64 alphabet characters decode, in every position. */
    for (int c = 0; c < 256; c++) {
        bool valid = c != 0 && strchr(alphabet, c) != NULL;
        for (size_t pos = 0; pos < 4; pos++) {
            char in[8] = "AAAAAAAA";
            in[pos] = (char)c;
            uint8_t out[8];
            size_t len = 0;
            pc_result r = pc_b64url_decode(in, 8, out, sizeof out, &len);
            assert_int_equal(pc_ok(r), valid);
        }
    }
}

/* RFC 4648 §3.5: a final character whose unused bits are set is refused,
 * so each byte string has exactly one encoding. */
static void test_rejects_nonzero_trailing_bits(void **state)
{
    (void)state;
    expect_decode_fails("Zh", 2);   /* 'h' = 33: low four bits 0001 */
    expect_decode_fails("Zm9", 3);  /* '9' = 61: low two bits 01 */
    expect_decode_fails("Zm9vYh", 6);
    expect_decode_fails("Zm9vYmF", 7);
    /* The canonical forms of the same prefixes decode. */
    uint8_t out[8];
    size_t len = 0;
    assert_true(pc_ok(pc_b64url_decode("Zg", 2, out, sizeof out, &len)));
    assert_true(pc_ok(pc_b64url_decode("Zm8", 3, out, sizeof out, &len)));
    /* Exhaustively: of the 64 last characters of a 2-char string, exactly
     * the 4 with zero low bits decode; of a 3-char string, 16. */
    int ok2 = 0, ok3 = 0;
    for (int i = 0; i < 64; i++) {
        char two[2] = {'A', alphabet[i]}, three[3] = {'A', 'A', alphabet[i]};
        ok2 += pc_ok(pc_b64url_decode(two, 2, out, sizeof out, &len));
        ok3 += pc_ok(pc_b64url_decode(three, 3, out, sizeof out, &len));
    }
    assert_int_equal(ok2, 4);
    assert_int_equal(ok3, 16);
}

static void test_rejects_impossible_length(void **state)
{
    (void)state;
    expect_decode_fails("Z", 1);
    expect_decode_fails("Zm9vY", 5);
    expect_decode_fails("Zm9vYmFyZ", 9);
}

static void test_decode_output_too_small(void **state)
{
    (void)state;
    uint8_t out[6];
    size_t len = 5;
    pc_result r = pc_b64url_decode("Zm9vYmFy", 8, out, 5, &len);
    assert_false(pc_ok(r));
    assert_int_equal(r.err, PC_ERR_PROTO);
    assert_int_equal(len, 0);
    r = pc_b64url_decode("Zm9v", 4, out, 2, &len);
    assert_false(pc_ok(r));
    r = pc_b64url_decode("Zg", 2, NULL, 0, &len);
    assert_false(pc_ok(r));
    /* Nothing to decode needs no room at all. */
    assert_true(pc_ok(pc_b64url_decode("", 0, NULL, 0, &len)));
    assert_int_equal(len, 0);
}

static void test_encode_output_too_small(void **state)
{
    (void)state;
    char out[9];
    size_t len = 0;
    /* "foobar" needs 8 characters plus the NUL. */
    pc_result r = pc_b64url_encode((const uint8_t *)"foobar", 6, out, 8, &len);
    assert_false(pc_ok(r));
    assert_int_equal(r.err, PC_ERR_INTERNAL);
    r = pc_b64url_encode((const uint8_t *)"", 0, out, 0, &len);
    assert_false(pc_ok(r));
    r = pc_b64url_encode((const uint8_t *)"f", 1, NULL, 0, &len);
    assert_false(pc_ok(r));
    assert_true(pc_ok(pc_b64url_encode((const uint8_t *)"foobar", 6, out, 9, &len)));
    assert_string_equal(out, "Zm9vYmFy");
    /* An empty input still writes the terminator. */
    assert_true(pc_ok(pc_b64url_encode(NULL, 0, out, 1, &len)));
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
}

static void test_out_len_optional(void **state)
{
    (void)state;
    char enc[8];
    uint8_t dec[4];
    assert_true(pc_ok(pc_b64url_encode((const uint8_t *)"foo", 3, enc, sizeof enc, NULL)));
    assert_true(pc_ok(pc_b64url_decode(enc, 4, dec, sizeof dec, NULL)));
    assert_memory_equal(dec, "foo", 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_encode),
        cmocka_unit_test(test_vectors_decode),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_every_byte_value),
        cmocka_unit_test(test_rejects_padding),
        cmocka_unit_test(test_rejects_standard_alphabet),
        cmocka_unit_test(test_rejects_whitespace),
        cmocka_unit_test(test_rejects_other_bytes),
        cmocka_unit_test(test_rejects_nonzero_trailing_bits),
        cmocka_unit_test(test_rejects_impossible_length),
        cmocka_unit_test(test_decode_output_too_small),
        cmocka_unit_test(test_encode_output_too_small),
        cmocka_unit_test(test_out_len_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
