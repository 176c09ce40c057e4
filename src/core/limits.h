/* Every limit portcullis enforces, with its default and why that value
 * (sqlite's sqliteLimit.h, relayd's relayd.h). Config values override the
 * PC_DEFAULT_* ones within the PC_*_MAX hard bounds; the PC_MAX_* ones are
 * fixed. docs/configuration.md documents each. */
#ifndef PC_CORE_LIMITS_H
#define PC_CORE_LIMITS_H

/* Request line plus all header lines, in bytes. 16 KiB fits real browsers'
 * and API clients' headers (a large JWT plus cookies) while bounding what a
 * slow client can make us hold. nginx's large_client_header_buffers is 32k
 * in 4 buffers of 8k. Refused with 431. */
#define PC_DEFAULT_MAX_HEADER_BYTES (16u * 1024u)
#define PC_MAX_HEADER_BYTES_MAX (1024u * 1024u)

/* Header fields in one request. 64 is far above any legitimate API client
 * (curl sends 3, browsers about 15); Apache's LimitRequestFields is 100.
 * Refused with 431. */
#define PC_DEFAULT_MAX_HEADER_COUNT 64u
#define PC_MAX_HEADER_COUNT_MAX 1024u

/* Request body bytes. 1 MiB is nginx's client_max_body_size default and
 * ample for token requests and JSON APIs. Refused with 413. */
#define PC_DEFAULT_MAX_BODY_BYTES (1024u * 1024u)
#define PC_MAX_BODY_BYTES_MAX (64u * 1024u * 1024u)

/* Time allowed from accept (TLS handshake included) or from the end of the
 * previous response until a request's headers are complete. Bounds
 * slowloris. nginx's client_header_timeout is 60s; an API client needs far
 * less. Refused with 408. */
#define PC_DEFAULT_HEADER_TIMEOUT_MS 10000u
/* Time allowed between body bytes once the headers are in. */
#define PC_DEFAULT_BODY_TIMEOUT_MS 30000u
/* How long a keep-alive connection may sit idle between requests. */
#define PC_DEFAULT_IDLE_TIMEOUT_MS 60000u
/* How long SIGTERM waits for in-flight requests before closing them. */
#define PC_DEFAULT_SHUTDOWN_TIMEOUT_MS 10000u

/* Open client connections, over all workers and per client IP. A refused
 * connection is answered 503 (overall) or 429 (per IP) and closed. */
#define PC_DEFAULT_MAX_CONNECTIONS 10000u
#define PC_DEFAULT_MAX_CONNECTIONS_PER_IP 256u
/* Connections being refused with a status at once; past this a refused
 * connection is closed without a response so refusing stays cheap. */
#define PC_MAX_REFUSING_CONNECTIONS 64u

/* Requests served on one keep-alive connection before we close it, so that
 * long-lived connections still move to a reloaded config eventually. */
#define PC_DEFAULT_MAX_REQUESTS_PER_CONNECTION 10000u

/* Worker threads. */
#define PC_MAX_WORKERS 256u

/* Routes in one config. */
#define PC_MAX_ROUTES 4096u
/* Segments in one route template and named parameters in one route. */
#define PC_MAX_PATH_SEGMENTS 32u
#define PC_MAX_ROUTE_PARAMS 16u

/* Config file size: a config is hand-written text; 4 MiB is generous. */
#define PC_MAX_CONFIG_BYTES (4u * 1024u * 1024u)
/* Nesting depth of the YAML config. */
#define PC_MAX_CONFIG_DEPTH 16u

/* Bytes of one JSON log line; longer lines are truncated with "...". */
#define PC_MAX_LOG_LINE 4096u
/* Bytes of the per-worker access log buffer before it is flushed. */
#define PC_ACCESS_LOG_BUFFER (64u * 1024u)

/* A response a built-in handler builds in memory. */
#define PC_MAX_RESPONSE_HEADER_BYTES (16u * 1024u)

#endif
