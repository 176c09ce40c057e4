/* Parsing the credentials of a resource request (pure functions: unit
 * tested and fuzzed by fuzz/fuzz_gw_authz.c).
 *
 *   credentials = auth-scheme 1*SP token68          (RFC 9110 §11.4)
 *   token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *
 * The scheme is Bearer (RFC 6750 §2.1) or DPoP (RFC 9449 §7.1), compared
 * case-insensitively (FAPI conformance suite:
 * access-token-type-header-case-sensitivity). */
#ifndef PC_GW_AUTHZ_H
#define PC_GW_AUTHZ_H

#include "core/result.h"
#include "core/str.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest access token we look at; the AS refuses longer ones too. */
#define PC_GW_MAX_TOKEN 8192
/* Longest scope claim we compare against. */
#define PC_GW_MAX_SCOPE 4096

typedef enum pc_gw_scheme {
    PC_GW_SCHEME_NONE = 0,
    PC_GW_SCHEME_BEARER,
    PC_GW_SCHEME_DPOP,
} pc_gw_scheme;

/* Parse one Authorization header value. PC_ERR_PROTO with a message for
 * an unknown scheme, a missing, oversize or malformed token. */
PC_MUST_USE pc_result pc_gw_parse_authorization(pc_str value, pc_gw_scheme *scheme,
                                                pc_str *token);

/* Does a query string or a form body carry an access_token parameter?
 * (FAPI 2.0 §5.3.4-2: never accepted; RFC 6750 §2.2/§2.3 are off.) */
bool pc_gw_has_access_token_param(pc_str query_or_form);

/* Is every one of required[0..n) a token of the space-separated scope?
 * On false, *missing is the first one absent. */
bool pc_gw_scope_covers(pc_str scope, char *const *required, size_t n, const char **missing);

/* Is the token a JWS compact serialization (exactly two dots)? Anything
 * else is opaque: only its AS can say what it is (RFC 7662). */
bool pc_gw_token_is_jwt(pc_str token);

/* Why an RFC 7662 answer of the AS `issuer` does not admit its token as an
 * access token at `now` (unix seconds), or NULL. answer NULL: inactive. An
 * active answer is refused when its iss, if present, is not issuer; its
 * token_type, if present, neither Bearer nor DPoP (case-insensitive: a
 * refresh token is not one); its exp, if present, not an integer or
 * passed (a cached answer must not outlive the token). */
const char *pc_gw_introspection_refusal(const json_t *answer, const char *issuer, int64_t now);

/* Copy s into out (cap bytes) keeping only characters allowed inside an
 * RFC 6750 §3 quoted error_description (%x20-21 / %x23-5B / %x5D-7E). */
void pc_gw_challenge_text(const char *s, char *out, size_t cap);

#endif
