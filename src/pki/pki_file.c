/* The PKI directory: paths, creation, atomic writes, loading the CA. */
#include "pki/pki_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

pc_result pc_pki_make_paths(const char *dir, const char *name, pc_pki_paths *out)
{
    int a = snprintf(out->cert, sizeof out->cert, "%s/%s.pem", dir, name);
    int b = snprintf(out->key, sizeof out->key, "%s/%s.key", dir, name);
    PC_ENSURE(a > 0 && (size_t)a < sizeof out->cert && b > 0 && (size_t)b < sizeof out->key,
              PC_ERR_USAGE, "path too long: %.100s/%s", dir, name);
    return PC_OK;
}

static pc_result mkdir_one(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0) return PC_OK;
    int err = errno;
    struct stat st;
    if (err == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return PC_OK;
    return pc_fail(PC_ERR_IO, "cannot create directory %s: %s", path,
                   err == EEXIST ? "exists and is not a directory" : strerror(err));
}

/* Like `mkdir -p -m 0700`: parents get the umask's default, the PKI
 * directory itself holds private keys and is for its owner only. */
pc_result pc_pki_make_dir(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    PC_ENSURE(len > 0 && len < sizeof path, PC_ERR_USAGE, "bad PKI directory '%.100s'", dir);
    memcpy(path, dir, len + 1);
    while (len > 1 && path[len - 1] == '/') path[--len] = '\0';
    for (char *p = path + 1; *p; p++) {
        if (*p != '/' || p[-1] == '/') continue;
        *p = '\0';
        pc_result r = mkdir_one(path, 0777);
        *p = '/';
        PC_GUARD(r);
    }
    return mkdir_one(path, 0700);
}

static pc_result refuse_if_exists(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return pc_fail(PC_ERR_IO, "%s already exists (use --force to replace it)", path);
    PC_ENSURE(errno == ENOENT, PC_ERR_IO, "cannot check %s: %s", path, strerror(errno));
    return PC_OK;
}

pc_result pc_pki_refuse_existing(const pc_pki_paths *paths)
{
    PC_GUARD(refuse_if_exists(paths->cert));
    return refuse_if_exists(paths->key);
}

static pc_result write_all(int fd, const char *data, size_t len, const char *path)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        PC_ENSURE(n > 0, PC_ERR_IO, "cannot write %s: %s", path,
                  n < 0 ? strerror(errno) : "short write");
        data += n;
        len -= (size_t)n;
    }
    return PC_OK;
}

/* Write data to a new temporary file next to path. O_EXCL with the final
 * mode given to open() means the file never exists with wider permissions,
 * not even between open and a chmod. */
static pc_result write_temp(const char *path, const char *data, size_t len, mode_t mode,
                            char tmp[PATH_MAX])
{
    unsigned char rnd[4] = {0};
    if (RAND_bytes(rnd, sizeof rnd) != 1) return pc_fail_ossl("RAND_bytes");
    int n = snprintf(tmp, PATH_MAX, "%s.tmp-%ld-%02x%02x%02x%02x", path, (long)getpid(),
                     rnd[0], rnd[1], rnd[2], rnd[3]);
    PC_ENSURE(n > 0 && n < PATH_MAX, PC_ERR_USAGE, "path too long: %.100s", path);

    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
    PC_ENSURE(fd >= 0, PC_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    pc_result r = write_all(fd, data, len, tmp);
    if (pc_ok(r) && fsync(fd) != 0)
        r = pc_fail(PC_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && pc_ok(r))
        r = pc_fail(PC_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (!pc_ok(r)) unlink(tmp);
    return r;
}

/* Move tmp to path. Without overwrite, link() is the atomic "create only
 * if absent": a file that appeared since the early check is not replaced. */
static pc_result commit(const char *tmp, const char *path, bool overwrite)
{
    if (overwrite) {
        if (rename(tmp, path) == 0) return PC_OK;
        return pc_fail(PC_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return PC_OK;
    }
    if (errno == EEXIST)
        return pc_fail(PC_ERR_IO, "%s already exists (use --force to replace it)", path);
    return pc_fail(PC_ERR_IO, "cannot create %s: %s", path, strerror(errno));
}

/* PEM text of the certificate or, when key is set, of the private key as
 * unencrypted PKCS #8 (RFC 5958; "BEGIN PRIVATE KEY"). The key goes to a
 * secure-heap BIO, which is wiped when freed. */
static pc_result to_pem(X509 *cert, EVP_PKEY *key, BIO **out)
{
    BIO *bio = BIO_new(key ? BIO_s_secmem() : BIO_s_mem());
    if (bio == NULL) return pc_fail_ossl("BIO_new");
    int ok = key ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_X509(bio, cert);
    if (ok != 1) {
        BIO_free(bio);
        return pc_fail_ossl(key ? "encoding the private key" : "encoding the certificate");
    }
    *out = bio;
    return PC_OK;
}

static pc_result write_pem(BIO *pem, const char *path, mode_t mode, char tmp[PATH_MAX])
{
    char *data = NULL;
    long len = BIO_get_mem_data(pem, &data);
    PC_ENSURE(len > 0 && data != NULL, PC_ERR_INTERNAL, "empty PEM for %s", path);
    return write_temp(path, data, (size_t)len, mode, tmp);
}

/* The key is committed first: a certificate on disk always has its key.
 * If the certificate then cannot be committed, a key this call created is
 * removed again so that a retry does not trip over it. */
static pc_result save_pems(const pc_pki_paths *paths, BIO *cert_pem, BIO *key_pem, bool overwrite)
{
    char cert_tmp[PATH_MAX], key_tmp[PATH_MAX];
    PC_GUARD(write_pem(key_pem, paths->key, 0600, key_tmp));
    pc_result r = write_pem(cert_pem, paths->cert, 0644, cert_tmp);
    if (!pc_ok(r)) {
        unlink(key_tmp);
        return r;
    }
    r = commit(key_tmp, paths->key, overwrite);
    if (!pc_ok(r)) {
        unlink(key_tmp);
        unlink(cert_tmp);
        return r;
    }
    r = commit(cert_tmp, paths->cert, overwrite);
    if (!pc_ok(r)) {
        unlink(cert_tmp);
        if (!overwrite) unlink(paths->key);
    }
    return r;
}

pc_result pc_pki_save(const pc_pki_paths *paths, X509 *cert, EVP_PKEY *key, bool overwrite)
{
    BIO *cert_pem = NULL, *key_pem = NULL;
    PC_GUARD(to_pem(cert, NULL, &cert_pem));
    pc_result r = to_pem(NULL, key, &key_pem);
    if (pc_ok(r)) r = save_pems(paths, cert_pem, key_pem, overwrite);
    BIO_free(key_pem);
    BIO_free(cert_pem);
    return r;
}

/* Never prompt on the terminal for a passphrase: the development CA key is
 * unencrypted, and a prompt would hang scripts. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) { return -1; }

static pc_result load_pem(const char *path, X509 **cert, EVP_PKEY **key)
{
    FILE *f = fopen(path, "re");
    int err = errno;
    PC_ENSURE(f != NULL, PC_ERR_IO, "cannot read %s: %s%s", path, strerror(err),
              err == ENOENT ? " (run 'portcullis pki init' first)" : "");
    bool ok = cert ? (*cert = PEM_read_X509(f, NULL, no_passphrase, NULL)) != NULL
                   : (*key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL)) != NULL;
    fclose(f);
    if (ok) return PC_OK;
    char what[PATH_MAX + 32];
    snprintf(what, sizeof what, "cannot load %s", path);
    return pc_fail_ossl(what);
}

static pc_result check_ca(const char *dir, X509 *cert, EVP_PKEY *key)
{
    PC_ENSURE(X509_check_ca(cert) >= 1, PC_ERR_USAGE, "%s/ca.pem is not a CA certificate", dir);
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return pc_fail(PC_ERR_USAGE, "%s/ca.key does not belong to %s/ca.pem", dir, dir);
    }
    return PC_OK;
}

pc_result pc_pki_load_ca(const char *dir, X509 **cert, EVP_PKEY **key)
{
    pc_pki_paths paths;
    PC_GUARD(pc_pki_make_paths(dir, "ca", &paths));
    X509 *c = NULL;
    EVP_PKEY *k = NULL;
    pc_result r = load_pem(paths.cert, &c, NULL);
    if (pc_ok(r)) r = load_pem(paths.key, NULL, &k);
    if (pc_ok(r)) r = check_ca(dir, c, k);
    if (!pc_ok(r)) {
        EVP_PKEY_free(k);
        X509_free(c);
        return r;
    }
    *cert = c;
    *key = k;
    return PC_OK;
}
