/* Header hygiene: which headers cross the gateway, in each direction. */
#include "gw/hygiene.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

static bool has_prefix_ci(pc_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && pc_str_eq_lit_ci((pc_str){s.ptr, n}, prefix);
}

bool pc_gw_hop_by_hop(pc_str name)
{
    /* RFC 9110 §7.6.1 and RFC 9112 §6.1, plus Keep-Alive and Proxy-*
     * (Proxy-Connection, Proxy-Authorization: meant for one hop). */
    static const char *const names[] = {"connection", "keep-alive", "te", "trailer",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (pc_str_eq_lit_ci(name, names[i])) return true;
    return has_prefix_ci(name, "proxy-");
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool pc_gw_connection_lists(pc_str connection, pc_str name)
{
    /* Connection = #connection-option (RFC 9110 §7.6.1): tokens separated
     * by commas and optional whitespace. */
    size_t i = 0;
    while (i < connection.len) {
        while (i < connection.len && (is_ows(connection.ptr[i]) || connection.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < connection.len && connection.ptr[i] != ',') i++;
        size_t end = i;
        while (end > start && is_ows(connection.ptr[end - 1])) end--;
        if (end > start && pc_str_eq_ci((pc_str){connection.ptr + start, end - start}, name))
            return true;
    }
    return false;
}

bool pc_gw_gateway_owned(pc_str name, pc_str cert_header)
{
    static const char *const prefixes[] = {"x-forwarded-", "x-portcullis-", "x-client-cert",
                                           "client-cert"};
    static const char *const exact[] = {"forwarded", "x-real-ip", "x-request-id",
                                        "x-fapi-interaction-id"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (has_prefix_ci(name, prefixes[i])) return true;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (pc_str_eq_lit_ci(name, exact[i])) return true;
    return cert_header.len > 0 && pc_str_eq_ci(name, cert_header);
}

bool pc_gw_forward_request_header(pc_str name, pc_str connection, pc_str cert_header,
                                  bool strip_credentials)
{
    if (pc_gw_hop_by_hop(name) || pc_gw_connection_lists(connection, name)) return false;
    if (pc_gw_gateway_owned(name, cert_header)) return false;
    /* The HTTP client frames the body and names the upstream itself. */
    static const char *const client_set[] = {"host", "content-length", "expect"};
    for (size_t i = 0; i < sizeof client_set / sizeof client_set[0]; i++)
        if (pc_str_eq_lit_ci(name, client_set[i])) return false;
    if (strip_credentials && (pc_str_eq_lit_ci(name, "authorization") || pc_str_eq_lit_ci(name, "dpop")))
        return false;
    return true;
}

bool pc_gw_forward_response_header(pc_str name, pc_str connection)
{
    if (pc_gw_hop_by_hop(name) || pc_gw_connection_lists(connection, name)) return false;
    /* Date, Content-Length and X-Request-Id are the core's; Content-Type
     * goes separately; the interaction id and DPoP nonces are the
     * gateway's (a client must never get a nonce we did not issue). */
    static const char *const core_set[] = {"date", "content-length", "content-type",
                                           "x-request-id", "x-fapi-interaction-id",
                                           "dpop-nonce"};
    for (size_t i = 0; i < sizeof core_set / sizeof core_set[0]; i++)
        if (pc_str_eq_lit_ci(name, core_set[i])) return false;
    return true;
}

bool pc_gw_header_value_safe(const char *v)
{
    for (; *v; v++)
        if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f) return false;
    return true;
}

bool pc_gw_forwarded_for_ok(pc_str v)
{
    if (v.len == 0 || v.len > PC_GW_MAX_FORWARDED_FOR) return false;
    bool digit = false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != '.' && c != ':' && c != ',' && c != ' ') return false;
        digit |= hex;
    }
    return digit;
}

bool pc_gw_interaction_id_ok(pc_str id)
{
    if (id.len == 0 || id.len > PC_GW_MAX_INTERACTION_ID) return false;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-'))
            return false;
    }
    return true;
}

void pc_gw_uuid4(char out[PC_GW_UUID_BUF])
{
    /* Random bytes are drawn PC_GW_UUID_BATCH ids at a time per thread:
     * RAND_bytes costs about as much for 16 bytes as for 512 (a lock and
     * a fork check per call). */
    static _Thread_local uint8_t batch[16 * PC_GW_UUID_BATCH];
    static _Thread_local size_t left;
    uint8_t b[16];
    if (left == 0 && RAND_bytes(batch, sizeof batch) == 1) left = sizeof batch;
    if (left >= sizeof b) {
        memcpy(b, batch + sizeof batch - left, sizeof b);
        left -= sizeof b;
    } else {
        /* The CSPRNG failing is not a state to continue in quietly, but an
         * interaction id is not a secret: fall back to a fixed nil-like id
         * rather than abort a request. */
        memset(b, 0, sizeof b);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 (RFC 9562 §5.4) */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    /* 8-4-4-4-12 hex digits; formatted by hand (this runs per request). */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof b; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
