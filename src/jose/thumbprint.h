/* Certificate thumbprints for sender-constrained tokens. */
#ifndef PC_JOSE_THUMBPRINT_H
#define PC_JOSE_THUMBPRINT_H

#include "core/result.h"

#include <openssl/x509.h>

/* base64url(SHA-256) is 43 characters; +1 for the NUL. */
#define PC_X5T_S256_LEN 43
#define PC_X5T_S256_BUF 44

/* RFC 8705 §3.1 x5t#S256: base64url(SHA-256(DER of the certificate)). */
PC_MUST_USE pc_result pc_x5t_s256(X509 *cert, char out[PC_X5T_S256_BUF]);

#endif
