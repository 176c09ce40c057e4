/* Who the peer is, for the RFC 9440 mode (pure functions: unit tested and
 * fuzzed): trusted proxy ranges, and the Client-Cert header a trusted
 * TLS-terminating proxy sets. */
#ifndef PC_GW_PEER_H
#define PC_GW_PEER_H

#include "core/result.h"
#include "core/str.h"
#include "jose/thumbprint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest RFC 9440 Client-Cert value we decode: a certificate is 1-2 KiB,
 * a long chain's leaf still far below this. */
#define PC_GW_MAX_CERT_HEADER 16384u

typedef struct pc_gw_cidr {
    int family;               /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
} pc_gw_cidr;

/* "10.0.0.0/8", "::1", "192.168.1.7" (a bare address is one host).
 * PC_ERR_USAGE on anything else, a prefix past the family's bits included. */
PC_MUST_USE pc_result pc_gw_cidr_parse(const char *s, pc_gw_cidr *out);
/* Is sa (IPv4, IPv6, or IPv4-mapped IPv6) inside one of set[0..n)? */
bool pc_gw_cidr_match(const pc_gw_cidr *set, size_t n, const struct sockaddr *sa);

/* RFC 9440 §2.1: Client-Cert = sf-binary, ":" base64(DER) ":". On a
 * well-formed value holding exactly one DER certificate, its RFC 8705
 * thumbprint; false otherwise (out untouched). */
bool pc_gw_client_cert_x5t(pc_str value, char out[PC_X5T_S256_BUF]);

#endif
