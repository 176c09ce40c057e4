/* Header hygiene: which headers cross the gateway, in each direction. */
#include "gw/hygiene.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <string.h>

/* The name lists below are pc_str tables (lengths known at compile time):
 * every header of every request and response is checked against them, and
 * a strlen per list entry showed in the gateway's profile. */
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool has_prefix_ci(pc_str s, pc_str prefix)
{
    return s.len >= prefix.len && pc_str_eq_ci((pc_str){s.ptr, prefix.len}, prefix);
}

static bool in_set_ci(pc_str name, const pc_str *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name.len == set[i].len && pc_str_eq_ci(name, set[i])) return true;
    return false;
}

bool pc_gw_hop_by_hop(pc_str name)
{
    /* RFC 9110 §7.6.1 and RFC 9112 §6.1, plus Keep-Alive and Proxy-*
     * (Proxy-Connection, Proxy-Authorization: meant for one hop). */
    static const pc_str names[] = {PC_STR("connection"), PC_STR("keep-alive"), PC_STR("te"),
                                   PC_STR("trailer"), PC_STR("transfer-encoding"),
                                   PC_STR("upgrade")};
    return in_set_ci(name, names, N_OF(names)) || has_prefix_ci(name, PC_STR("proxy-"));
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
    static const pc_str prefixes[] = {PC_STR("x-forwarded-"), PC_STR("x-portcullis-"),
                                      PC_STR("x-client-cert"), PC_STR("client-cert")};
    static const pc_str exact[] = {PC_STR("forwarded"), PC_STR("x-real-ip"),
                                   PC_STR("x-request-id"), PC_STR("x-fapi-interaction-id")};
    for (size_t i = 0; i < N_OF(prefixes); i++)
        if (has_prefix_ci(name, prefixes[i])) return true;
    if (in_set_ci(name, exact, N_OF(exact))) return true;
    return cert_header.len > 0 && pc_str_eq_ci(name, cert_header);
}

bool pc_gw_forward_request_header(pc_str name, pc_str connection, pc_str cert_header,
                                  bool strip_credentials)
{
    if (pc_gw_hop_by_hop(name) || pc_gw_connection_lists(connection, name)) return false;
    if (pc_gw_gateway_owned(name, cert_header)) return false;
    /* The HTTP client frames the body and names the upstream itself. */
    static const pc_str client_set[] = {PC_STR("host"), PC_STR("content-length"), PC_STR("expect")};
    if (in_set_ci(name, client_set, N_OF(client_set))) return false;
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
    static const pc_str core_set[] = {PC_STR("date"),         PC_STR("content-length"),
                                      PC_STR("content-type"), PC_STR("x-request-id"),
                                      PC_STR("x-fapi-interaction-id"), PC_STR("dpop-nonce")};
    return !in_set_ci(name, core_set, N_OF(core_set));
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
