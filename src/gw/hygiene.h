/* Header hygiene for the gateway (pure functions: unit tested and fuzzed).
 *
 * Both ways, hop-by-hop headers are dropped (RFC 9110 §7.6.1: Connection,
 * every name Connection lists, Keep-Alive, Proxy-*, TE, Trailer,
 * Transfer-Encoding, Upgrade). Towards the upstream we also drop every
 * header the gateway sets itself, so a client can never spoof them: the
 * X-Forwarded-* family, Forwarded, X-Client-Cert*, Client-Cert* (RFC 9440,
 * unless it came from a trusted proxy and the mode is on), the identity
 * headers X-Portcullis-*, X-Request-Id and x-fapi-interaction-id. */
#ifndef PC_GW_HYGIENE_H
#define PC_GW_HYGIENE_H

#include "core/str.h"

#include <stdbool.h>
#include <stddef.h>

/* FAPI x-fapi-interaction-id: we echo what the client sent if it looks
 * like an identifier (a UUID is 36 characters); otherwise we make one. */
#define PC_GW_MAX_INTERACTION_ID 64
/* Longest X-Forwarded-For we accept from a trusted proxy. */
#define PC_GW_MAX_FORWARDED_FOR 512
/* Buffer for a generated UUID (36 characters + NUL). */
#define PC_GW_UUID_BUF 37
/* Generated UUIDs per call of the CSPRNG (per thread). */
#define PC_GW_UUID_BATCH 32

/* Is name a hop-by-hop header by itself (not counting Connection's list)? */
bool pc_gw_hop_by_hop(pc_str name);
/* Does the Connection header value list name (comma-separated tokens,
 * case-insensitive)? */
bool pc_gw_connection_lists(pc_str connection, pc_str name);
/* Is this a header only the gateway may set towards the upstream?
 * cert_header is the configured RFC 9440 header name ("Client-Cert"). */
bool pc_gw_gateway_owned(pc_str name, pc_str cert_header);
/* Should a request header be forwarded upstream? connection is the value
 * of the request's Connection header (PC_STR_NULL if none). Authorization
 * and DPoP are consumed by the gateway on an auth: route (strip_credentials)
 * and never reach the upstream there. Host, Content-Length and Expect are
 * set by the gateway's HTTP client. */
bool pc_gw_forward_request_header(pc_str name, pc_str connection, pc_str cert_header,
                                  bool strip_credentials);
/* Should an upstream response header reach the client? Besides hop-by-hop
 * headers, drop what the server core sets (Date, Content-Length,
 * Content-Type is passed separately, X-Request-Id),
 * x-fapi-interaction-id (ours is authoritative) and DPoP-Nonce (ours). */
bool pc_gw_forward_response_header(pc_str name, pc_str connection);

/* A plausible X-Forwarded-For: 1..PC_GW_MAX_FORWARDED_FOR characters of
 * hex digits, '.', ':', ',' and spaces (IP literals and separators). */
bool pc_gw_forwarded_for_ok(pc_str v);

/* 1..PC_GW_MAX_INTERACTION_ID characters of [A-Za-z0-9-]. */
bool pc_gw_interaction_id_ok(pc_str id);
/* A random (version 4) UUID, lower-case hex. */
void pc_gw_uuid4(char out[PC_GW_UUID_BUF]);

#endif
