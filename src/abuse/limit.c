/* Rate limits on requests: the key a policy names, the throttle factor of a
 * sanctioned client, the RateLimit headers (draft-ietf-httpapi-ratelimit-
 * headers) on every response under a policy, and 429 with Retry-After.
 * Also the token endpoint's failure limits. */
#include "abuse/internal.h"
#include "core/log.h"
#include "net/server.h"

#include <stdio.h>
#include <string.h>

/* Room for the RateLimit fields of PC_CONFIG_MAX_POLICY_REFS (8) policies. */
#define HEADER_CAP 1024
#define ONE_FIELD 160

/* "<policy>|c=<client_id>|s=<sub>|i=<ip>|r=<route>", the parts the policy
 * names. The policy's name leads so two policies never share a bucket,
 * and it (not the index) survives a reload that reorders policies. A key
 * too long for the limiter counts against its fallback bucket. */
static pc_str build_key(const pc_rate_limit_config *p, const pc_abuse_who *w, char *buf,
                        size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s", p->name);
    struct {
        unsigned bit;
        const char *tag;
        pc_str v;
    } parts[] = {{PC_RL_KEY_CLIENT, "|c=", w->client_id},
                 {PC_RL_KEY_SUB, "|s=", w->sub},
                 {PC_RL_KEY_IP, "|i=", pc_str_c(w->ip)},
                 {PC_RL_KEY_ROUTE, "|r=", pc_str_c(w->route ? w->route : "")}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!(p->key & parts[i].bit)) continue;
        if (n + 3 + parts[i].v.len >= cap) return (pc_str){buf, cap}; /* too long: fallback */
        memcpy(buf + n, parts[i].tag, 3);
        if (parts[i].v.len) memcpy(buf + n + 3, parts[i].v.ptr, parts[i].v.len);
        n += 3 + parts[i].v.len;
    }
    return (pc_str){buf, n};
}

/* A throttled client's quota and burst, scaled down (at least 1). */
static pc_rl_policy scaled(const pc_rl_policy *p, double factor)
{
    pc_rl_policy s = *p;
    if (factor >= 1.0) return s;
    uint32_t q = (uint32_t)((double)p->quota * factor);
    uint32_t b = (uint32_t)((double)(p->burst ? p->burst : p->quota) * factor);
    s.quota = q ? q : 1;
    s.burst = b ? b : 1;
    return s;
}

static void append(char *buf, size_t cap, size_t *len, const char *field)
{
    int n = snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", field);
    if (n > 0 && (size_t)n < cap - *len) *len += (size_t)n;
}

bool pc_abuse_limit(pc_abuse *a, pc_request *r, const size_t *policies, size_t n,
                    const pc_abuse_who *w, const char *interaction_id)
{
    if (n == 0) return true;
    int64_t now = pc_abuse_now_us();
    double factor = w->client_id.len ? pc_sanctions_factor(a->sh->sanctions, w->client_id, now)
                                     : 1.0;
    char policy_hdr[HEADER_CAP], state_hdr[HEADER_CAP];
    size_t plen = 0, slen = 0;
    policy_hdr[0] = state_hdr[0] = '\0';
    uint32_t retry = 0;
    const char *refused_by = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t idx = policies[i];
        const pc_rate_limit_config *pc = &a->cfg->rate_limits[idx];
        pc_rl_policy p = scaled(&a->policies[idx], factor);
        char kbuf[PC_RL_MAX_KEY + 1];
        pc_str key = build_key(pc, w, kbuf, sizeof kbuf);
        pc_rl_result res = pc_rl_check(a->sh->rl, key, &p, now);
        char pf[ONE_FIELD], sf[ONE_FIELD];
        pc_rl_format(&p, &res, pf, sizeof pf, sf, sizeof sf);
        append(policy_hdr, sizeof policy_hdr, &plen, pf);
        append(state_hdr, sizeof state_hdr, &slen, sf);
        if (!res.allowed) {
            if (res.retry_after_s > retry) retry = res.retry_after_s;
            if (refused_by == NULL) refused_by = pc->name;
            if (a->counters[idx]) atomic_fetch_add(&a->counters[idx]->refused, 1);
        }
    }
    pc_response_header(r, "RateLimit-Policy", (pc_str){policy_hdr, plen});
    pc_response_header(r, "RateLimit", (pc_str){state_hdr, slen});
    if (refused_by == NULL) return true;
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry ? retry : 1);
    pc_response_header(r, "Retry-After", pc_str_c(ra));
    if (interaction_id) pc_response_header(r, "x-fapi-interaction-id", pc_str_c(interaction_id));
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_INFO, "rate_limited")) {
        pc_log_cstr(&l, "req", pc_request_id(r));
        pc_log_cstr(&l, "policy", refused_by);
        pc_log_str(&l, "client_id", w->client_id);
        pc_log_cstr(&l, "ip", w->ip);
        pc_log_uint(&l, "retry_after_s", retry);
        pc_log_bool(&l, "throttled", factor < 1.0);
        pc_log_end(&l);
    }
    char detail[160];
    snprintf(detail, sizeof detail, "rate limit \"%s\" exceeded%s; retry after %u s", refused_by,
             factor < 1.0 ? " (this client is throttled)" : "", retry ? retry : 1);
    pc_respond_problem(r, 429, detail);
    return false;
}

bool pc_abuse_quarantined(pc_abuse *a, pc_str client_id, int64_t *until_s)
{
    if (client_id.len == 0) return false;
    int64_t until = 0;
    if (!pc_sanctions_quarantined(a->sh->sanctions, client_id, pc_abuse_now_us(), &until))
        return false;
    atomic_fetch_add(&a->sh->quarantine_refused, 1);
    if (until_s) *until_s = until / 1000000;
    return true;
}

/* ---- the token endpoint's failure limits -------------------------------- */

static pc_rl_policy failure_policy(uint32_t per_minute)
{
    return (pc_rl_policy){.name = "auth-failures", .quota = per_minute, .window_s = 60,
                          .burst = per_minute};
}

static pc_str failure_key(char *buf, size_t cap, const char *tag, pc_str v)
{
    /* By hand, not snprintf: two of these run on every token request. */
    size_t tl = strlen(tag), vl = v.ptr ? v.len : 0;
    if (tl + vl >= cap) {
        /* Too long: the limiter's fallback bucket (fail closed). */
        memset(buf, 0, cap);
        return (pc_str){buf, cap};
    }
    memcpy(buf, tag, tl);
    if (vl) memcpy(buf + tl, v.ptr, vl);
    buf[tl + vl] = '\0';
    return (pc_str){buf, tl + vl};
}

bool pc_abuse_auth_allowed(pc_abuse *a, pc_str client_id, const char *ip, uint32_t *retry_after_s)
{
    int64_t now = pc_abuse_now_us();
    const pc_as_config *ac = &a->cfg->as;
    char kbuf[PC_RL_MAX_KEY + 1];
    uint32_t retry = 0;
    bool ok = true;
    if (client_id.len) {
        pc_rl_policy p = failure_policy(ac->auth_failures_per_minute);
        pc_rl_result res = pc_rl_peek(a->sh->failures, failure_key(kbuf, sizeof kbuf, "c|", client_id), &p, now);
        if (!res.allowed) {
            ok = false;
            retry = res.retry_after_s;
        }
    }
    pc_rl_policy p = failure_policy(ac->auth_failures_per_minute_per_ip);
    pc_rl_result res = pc_rl_peek(a->sh->failures, failure_key(kbuf, sizeof kbuf, "i|", pc_str_c(ip)), &p, now);
    if (!res.allowed) {
        ok = false;
        if (res.retry_after_s > retry) retry = res.retry_after_s;
    }
    if (!ok) atomic_fetch_add(&a->sh->auth_refused, 1);
    if (retry_after_s) *retry_after_s = retry ? retry : 1;
    return ok;
}

void pc_abuse_auth_failed(pc_abuse *a, pc_str client_id, const char *ip)
{
    int64_t now = pc_abuse_now_us();
    const pc_as_config *ac = &a->cfg->as;
    char kbuf[PC_RL_MAX_KEY + 1];
    if (client_id.len) {
        pc_rl_policy p = failure_policy(ac->auth_failures_per_minute);
        (void)pc_rl_check(a->sh->failures, failure_key(kbuf, sizeof kbuf, "c|", client_id), &p, now);
    }
    pc_rl_policy p = failure_policy(ac->auth_failures_per_minute_per_ip);
    (void)pc_rl_check(a->sh->failures, failure_key(kbuf, sizeof kbuf, "i|", pc_str_c(ip)), &p, now);
    if (client_id.len) pc_abuse_on_credential(a, client_id, PC_DET_AUTH_FAILURE, (pc_str){NULL, 0});
}
