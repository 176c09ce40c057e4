/* The development PKI's entry points: each checks its options, then runs
 * the same steps (parse names, load the issuer, make a key, make the
 * certificate, save both) with one owner for everything allocated. */
#include "pki/pki_internal.h" /* includes pki/pki.h */

#include <string.h>
#include <strings.h>

static const char *const default_ca_subject = "CN=portcullis development CA,O=portcullis dev";
static const char *default_server_sans[] = {"DNS:localhost", "IP:127.0.0.1", "IP:::1"};

pc_result pc_key_type_parse(const char *s, pc_key_type *out)
{
    static const pc_key_type all[] = {PC_KEY_EC_P256, PC_KEY_EC_P384, PC_KEY_RSA_2048,
                                      PC_KEY_RSA_3072, PC_KEY_ED25519};
    for (size_t i = 0; s != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcasecmp(s, pc_pki_key_type_name(all[i])) == 0) {
            *out = all[i];
            return PC_OK;
        }
    }
    return pc_fail(PC_ERR_USAGE,
                   "unknown key type '%.40s' (expected p256, p384, rsa2048, rsa3072 or ed25519)",
                   s ? s : "");
}

/* How one kind of certificate differs from the others. */
struct profile {
    pc_pki_role role;
    bool self_signed;
    uint32_t default_days;
};

static const struct profile ca_profile = {PC_PKI_ROLE_CA, true, 3650};
static const struct profile server_profile = {PC_PKI_ROLE_SERVER, false, 365};
static const struct profile client_profile = {PC_PKI_ROLE_CLIENT, false, 365};
static const struct profile self_signed_profile = {PC_PKI_ROLE_CLIENT, true, 365};

/* Everything one issuance allocates; freed in one place. */
struct issuance {
    X509_NAME *subject;
    GENERAL_NAMES *sans;
    X509 *ca;
    EVP_PKEY *ca_key;
    EVP_PKEY *key;
    X509 *cert;
};

static void issuance_free(struct issuance *is)
{
    X509_free(is->cert);
    EVP_PKEY_free(is->key);
    EVP_PKEY_free(is->ca_key);
    X509_free(is->ca);
    GENERAL_NAMES_free(is->sans);
    X509_NAME_free(is->subject);
}

/* The name becomes a file name inside the PKI directory, so it may not
 * climb out of it or hide as a dot file. */
static pc_result check_name(const char *name)
{
    PC_ENSURE(name != NULL && name[0] != '\0', PC_ERR_USAGE, "a name is required");
    size_t len = strlen(name);
    PC_ENSURE(len <= PC_PKI_MAX_NAME, PC_ERR_USAGE, "name longer than %d characters",
              PC_PKI_MAX_NAME);
    PC_ENSURE(name[0] != '.' && name[0] != '-', PC_ERR_USAGE,
              "name '%s' may not start with '.' or '-'", name);
    PC_ENSURE(strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
                  len,
              PC_ERR_USAGE, "name '%s' may contain only letters, digits, '.', '_' and '-'", name);
    return PC_OK;
}

static pc_result check_opts(const pc_pki_issue *o, const struct profile *pf, const char *name)
{
    PC_ENSURE(o != NULL && o->dir != NULL && o->dir[0] != '\0', PC_ERR_USAGE,
              "a PKI directory is required");
    PC_GUARD(check_name(name));
    /* Only init may write the CA's files: a leaf called "ca" would replace
     * the CA's key with --force. */
    PC_ENSURE(pf->role == PC_PKI_ROLE_CA || strcmp(name, "ca") != 0, PC_ERR_USAGE,
              "the name 'ca' is reserved for the CA");
    PC_ENSURE(o->days <= PC_PKI_MAX_DAYS, PC_ERR_USAGE, "validity of %u days is over the %u limit",
              o->days, PC_PKI_MAX_DAYS);
    PC_ENSURE(o->n_sans == 0 || o->sans != NULL, PC_ERR_USAGE, "SAN list missing");
    return PC_OK;
}

/* "CN=<name>" unless a subject was given. */
static pc_result parse_subject(const pc_pki_issue *o, const char *name, const char *fallback,
                               X509_NAME **out)
{
    if (o->subject != NULL) return pc_pki_parse_dn(o->subject, out);
    if (fallback != NULL) return pc_pki_parse_dn(fallback, out);
    X509_NAME *n = X509_NAME_new();
    if (n == NULL ||
        X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)name,
                                   -1, -1, 0) != 1) {
        X509_NAME_free(n);
        return pc_fail_ossl("subject CN");
    }
    *out = n;
    return PC_OK;
}

static pc_result parse_sans(const pc_pki_issue *o, const struct profile *pf, GENERAL_NAMES **out)
{
    if (o->n_sans > 0) return pc_pki_parse_sans(o->sans, o->n_sans, out);
    if (pf->role == PC_PKI_ROLE_SERVER)
        return pc_pki_parse_sans(default_server_sans,
                                 sizeof default_server_sans / sizeof default_server_sans[0], out);
    return PC_OK;
}

static pc_result issue_steps(const pc_pki_issue *o, const struct profile *pf, const char *name,
                             const char *default_subject, struct issuance *is)
{
    PC_GUARD(check_opts(o, pf, name));
    pc_pki_paths paths;
    PC_GUARD(pc_pki_make_paths(o->dir, name, &paths));
    /* Refuse before the slow part (an RSA key takes a while) and again,
     * atomically, when the files are committed. */
    if (!o->overwrite) PC_GUARD(pc_pki_refuse_existing(&paths));
    PC_GUARD(parse_subject(o, name, default_subject, &is->subject));
    PC_GUARD(parse_sans(o, pf, &is->sans));
    if (!pf->self_signed) PC_GUARD(pc_pki_load_ca(o->dir, &is->ca, &is->ca_key));
    PC_GUARD(pc_pki_keygen(o->key_type, &is->key));

    pc_pki_cert_req req = {
        .role = pf->role,
        .subject = is->subject,
        .sans = is->sans,
        .key = is->key,
        .issuer = is->ca,
        .issuer_key = is->ca_key,
        .days = o->days ? o->days : pf->default_days,
    };
    PC_GUARD(pc_pki_make_cert(&req, &is->cert));
    PC_GUARD(pc_pki_make_dir(o->dir));
    return pc_pki_save(&paths, is->cert, is->key, o->overwrite);
}

static pc_result issue(const pc_pki_issue *o, const struct profile *pf, const char *name,
                       const char *default_subject)
{
    struct issuance is = {0};
    pc_result r = issue_steps(o, pf, name, default_subject, &is);
    issuance_free(&is);
    return r;
}

pc_result pc_pki_init(const pc_pki_issue *opts)
{
    return issue(opts, &ca_profile, "ca", default_ca_subject);
}

pc_result pc_pki_issue_server(const pc_pki_issue *opts)
{
    return issue(opts, &server_profile, opts ? opts->name : NULL, NULL);
}

pc_result pc_pki_issue_client(const pc_pki_issue *opts)
{
    return issue(opts, &client_profile, opts ? opts->name : NULL, NULL);
}

pc_result pc_pki_issue_self_signed(const pc_pki_issue *opts)
{
    return issue(opts, &self_signed_profile, opts ? opts->name : NULL, NULL);
}
