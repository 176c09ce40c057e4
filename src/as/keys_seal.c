/* The key-encryption key and the sealed form of signing keys (keys.h):
 *   sealed = "pck1" || nonce(12) || AES-256-GCM(PKCS#8 DER) || tag(16)
 * with the kid as associated data, so a sealed key copied under another
 * kid does not open. Plaintext key bytes live only in buffers wiped before
 * they are freed. */
#include "as/keys.h"
#include "core/str.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_MAGIC "pck1"
#define SEAL_MAGIC_LEN 4
#define SEAL_NONCE 12 /* 96 bits: GCM's native nonce size (NIST SP 800-38D §8.2) */
#define SEAL_TAG 16
#define SEAL_OVERHEAD (SEAL_MAGIC_LEN + SEAL_NONCE + SEAL_TAG)
/* A PKCS#8 RSA-8192 key is about 4.9 KiB; anything much larger is not ours. */
#define SEAL_MAX 16384
#define KEK_HEX (PC_KEK_BYTES * 2)

void pc_kek_wipe(pc_kek *kek)
{
    if (kek != NULL) pc_wipe(kek->key, sizeof kek->key);
}

/* 64 hex characters -> 32 bytes. where names the source in messages; the
 * value itself is never echoed. */
static pc_result parse_hex(const char *hex, size_t len, pc_kek *out, const char *where)
{
    PC_ENSURE(len == KEK_HEX, PC_ERR_USAGE,
              "%s: expected %d hex characters (a %d-byte key), got %zu characters", where,
              KEK_HEX, PC_KEK_BYTES, len);
    for (size_t i = 0; i < PC_KEK_BYTES; i++) {
        int hi = pc_hexval(hex[2 * i]), lo = pc_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            pc_kek_wipe(out);
            return pc_fail(PC_ERR_USAGE, "%s: not hexadecimal (expected %d characters 0-9a-f)",
                           where, KEK_HEX);
        }
        out->key[i] = (uint8_t)(hi << 4 | lo);
    }
    return PC_OK;
}

/* The file may hold the key and one trailing newline. */
static pc_result read_kek_fd(int fd, const char *file, pc_kek *out)
{
    char buf[KEK_HEX + 8];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            pc_wipe(buf, sizeof buf);
            return pc_fail(PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
        }
        if (n == 0 || (len += (size_t)n) == sizeof buf) break;
    }
    if (len > 0 && buf[len - 1] == '\n') len--;
    char where[4200];
    snprintf(where, sizeof where, "kek file %s", file);
    pc_result r = parse_hex(buf, len, out, where);
    pc_wipe(buf, sizeof buf);
    return r;
}

static pc_result load_file(const char *file, pc_kek *out)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
    struct stat sb;
    pc_result r = PC_OK;
    if (fstat(fd, &sb) != 0)
        r = pc_fail(PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        r = pc_fail(PC_ERR_USAGE, "kek file %s: not a regular file", file);
    else if ((sb.st_mode & 077) != 0)
        /* A KEK others can read protects nothing; refuse rather than warn,
         * as ssh does for private keys. */
        r = pc_fail(PC_ERR_USAGE,
                    "kek file %s is accessible by group or others (mode %04o); "
                    "run: chmod 600 %s",
                    file, (unsigned)(sb.st_mode & 07777), file);
    if (pc_ok(r)) r = read_kek_fd(fd, file, out);
    close(fd);
    return r;
}

pc_result pc_kek_load(const char *file, pc_kek *out)
{
    memset(out, 0, sizeof *out);
    if (file != NULL) return load_file(file, out);
    const char *env = getenv(PC_KEK_ENV);
    PC_ENSURE(env != NULL && env[0] != '\0', PC_ERR_USAGE,
              "no key-encryption key: set as.kek_file, or " PC_KEK_ENV
              " to 64 hex characters (portcullis keys init-kek creates a kek file)");
    return parse_hex(env, strlen(env), out, PC_KEK_ENV);
}

static pc_result write_all(int fd, const char *buf, size_t len, const char *file)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        PC_ENSURE(n > 0, PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
        buf += n;
        len -= (size_t)n;
    }
    PC_ENSURE(fsync(fd) == 0, PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
    return PC_OK;
}

pc_result pc_kek_create(const char *file)
{
    /* O_EXCL: an existing KEK is never replaced; the keys sealed under it
     * would be lost for good. */
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST)
        return pc_fail(PC_ERR_IO, "kek file %s exists; refusing to overwrite it", file);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "kek file %s: %s", file, strerror(errno));
    pc_kek kek;
    char hex[KEK_HEX + 1];
    pc_result r = PC_OK;
    if (RAND_priv_bytes(kek.key, sizeof kek.key) != 1) r = pc_fail_ossl("kek: RAND_priv_bytes");
    if (pc_ok(r)) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < PC_KEK_BYTES; i++) {
            hex[2 * i] = digits[kek.key[i] >> 4];
            hex[2 * i + 1] = digits[kek.key[i] & 15];
        }
        hex[KEK_HEX] = '\n';
        r = write_all(fd, hex, sizeof hex, file);
    }
    pc_kek_wipe(&kek);
    pc_wipe(hex, sizeof hex);
    close(fd);
    if (!pc_ok(r)) unlink(file);
    return r;
}

/* ---- AES-256-GCM ------------------------------------------------------------ */

/* Encrypt (enc) or decrypt len bytes in -> out with the kid as AAD. On
 * decryption tag is the expected tag; a mismatch fails with PC_ERR_CRYPTO. */
static pc_result gcm(int enc, const pc_kek *kek, const char *kid, const uint8_t *nonce,
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    PC_ENSURE(len <= INT_MAX && strlen(kid) <= INT_MAX, PC_ERR_INTERNAL, "seal: too long");
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    PC_ENSURE(ctx != NULL, PC_ERR_CRYPTO, "seal: out of memory");
    int outl = 0, finl = 0;
    bool ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE, NULL) == 1 &&
              EVP_CipherInit_ex(ctx, NULL, NULL, kek->key, nonce, enc) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &outl, (const uint8_t *)kid, (int)strlen(kid)) == 1 &&
              EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1 &&
              (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) == 1);
    bool auth = ok && EVP_CipherFinal_ex(ctx, out + outl, &finl) == 1;
    if (auth && enc) auth = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) return pc_fail_ossl("seal: AES-256-GCM");
    if (!auth && enc) return pc_fail_ossl("seal: AES-256-GCM");
    PC_ENSURE(auth, PC_ERR_CRYPTO,
              "key %s: cannot unseal: wrong KEK, or the sealed key was altered", kid);
    return PC_OK;
}

pc_result pc_key_seal(const pc_kek *kek, const char *kid, EVP_PKEY *pkey, uint8_t **out,
                      size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    if (p8 == NULL) return pc_fail_ossl("seal: PKCS#8 encoding");
    uint8_t *der = NULL;
    int der_len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    PKCS8_PRIV_KEY_INFO_free(p8); /* clears the key octets it held */
    if (der_len <= 0) return pc_fail_ossl("seal: PKCS#8 encoding");
    size_t total = SEAL_OVERHEAD + (size_t)der_len;
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        OPENSSL_clear_free(der, (size_t)der_len);
        return pc_fail(PC_ERR_INTERNAL, "seal: out of memory");
    }
    uint8_t *nonce = buf + SEAL_MAGIC_LEN, *ct = nonce + SEAL_NONCE;
    pc_result r = PC_OK;
    if (RAND_bytes(nonce, SEAL_NONCE) != 1) r = pc_fail_ossl("seal: RAND_bytes");
    if (pc_ok(r)) r = gcm(1, kek, kid, nonce, der, (size_t)der_len, ct, ct + der_len);
    OPENSSL_clear_free(der, (size_t)der_len);
    if (!pc_ok(r)) {
        free(buf);
        return r;
    }
    memcpy(buf, SEAL_MAGIC, SEAL_MAGIC_LEN);
    *out = buf;
    *out_len = total;
    return PC_OK;
}

/* PKCS#8 DER -> key; the whole buffer must be one PrivateKeyInfo. */
static pc_result decode_pkcs8(const char *kid, const uint8_t *der, size_t len, EVP_PKEY **out)
{
    const uint8_t *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *pkey = NULL;
    if (p8 != NULL && p == der + len) pkey = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (pkey == NULL) {
        pc_result r = pc_fail_ossl("unseal: PKCS#8 decoding");
        return pc_fail(r.err, "key %s: unsealed bytes are not a PKCS#8 private key", kid);
    }
    *out = pkey;
    return PC_OK;
}

pc_result pc_key_unseal(const pc_kek *kek, const char *kid, const uint8_t *sealed, size_t len,
                        EVP_PKEY **out)
{
    *out = NULL;
    PC_ENSURE(sealed != NULL && len > SEAL_OVERHEAD && len <= SEAL_MAX &&
                  memcmp(sealed, SEAL_MAGIC, SEAL_MAGIC_LEN) == 0,
              PC_ERR_CRYPTO, "key %s: not a sealed key (format pck1)", kid);
    const uint8_t *nonce = sealed + SEAL_MAGIC_LEN, *ct = nonce + SEAL_NONCE;
    size_t ct_len = len - SEAL_OVERHEAD;
    uint8_t tag[SEAL_TAG];
    memcpy(tag, ct + ct_len, SEAL_TAG);
    uint8_t *der = malloc(ct_len);
    PC_ENSURE(der != NULL, PC_ERR_INTERNAL, "unseal: out of memory");
    pc_result r = gcm(0, kek, kid, nonce, ct, ct_len, der, tag);
    if (pc_ok(r)) r = decode_pkcs8(kid, der, ct_len, out);
    OPENSSL_cleanse(der, ct_len);
    free(der);
    return r;
}
