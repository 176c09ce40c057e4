/* Revoking every live token of a client at once: the detectors' revoke
 * action (abuse/abuse.h). Rather than finding each token (we keep none),
 * the client gets a cutoff: any of its tokens issued at or before it is
 * revoked. The table is consulted on every token check, so an empty one
 * costs one atomic load. An entry can go once max_access_token_lifetime
 * has passed since its cutoff: no token from before it is still alive.
 * iat has one-second resolution, so a token issued in the same second as
 * the cutoff is revoked too: the error is towards safety (the client asks
 * again a second later). Kept across reloads (AS shared state); not across
 * restarts, like the quarantines that go with it. */
#include "as/as_internal.h"
#include "core/log.h"

#include <string.h>

static int find(const pc_as_shared *sh, pc_str id)
{
    for (size_t i = 0; i < PC_AS_MAX_CUTOFFS; i++) {
        const char *e = sh->cutoffs[i].client_id;
        if (e[0] && strlen(e) == id.len && memcmp(e, id.ptr, id.len) == 0) return (int)i;
    }
    return -1;
}

void pc_as_revoke_client(void *as_state, pc_str client_id)
{
    pc_as *as = as_state;
    pc_as_shared *sh = as->sh;
    if (client_id.len == 0 || client_id.len > PC_CLIENT_MAX_ID) return;
    int64_t now = pc_as_now();
    pthread_mutex_lock(&sh->cutoff_mu);
    int i = find(sh, client_id);
    if (i < 0) {
        /* A free slot, else one whose tokens have all expired, else the
         * oldest cutoff (the error is towards keeping the newer one). */
        int64_t oldest = INT64_MAX;
        for (size_t j = 0; j < PC_AS_MAX_CUTOFFS && i < 0; j++)
            if (!sh->cutoffs[j].client_id[0] ||
                sh->cutoffs[j].at + PC_AS_MAX_TOKEN_LIFETIME_S < now)
                i = (int)j;
        for (size_t j = 0; j < PC_AS_MAX_CUTOFFS && i < 0; j++)
            if (sh->cutoffs[j].at < oldest) oldest = sh->cutoffs[j].at;
        for (size_t j = 0; j < PC_AS_MAX_CUTOFFS && i < 0; j++)
            if (sh->cutoffs[j].at == oldest) i = (int)j;
        memcpy(sh->cutoffs[i].client_id, client_id.ptr, client_id.len);
        sh->cutoffs[i].client_id[client_id.len] = '\0';
        atomic_fetch_add(&sh->n_cutoffs, 1);
    }
    sh->cutoffs[i].at = now;
    pthread_mutex_unlock(&sh->cutoff_mu);
    pc_logline l;
    if (pc_log_begin(&l, PC_LOG_WARN, "client_tokens_revoked")) {
        pc_log_str(&l, "client_id", client_id);
        pc_log_int(&l, "issued_before", now + 1);
        pc_log_end(&l);
    }
}

bool pc_as_client_cut_off(pc_as_shared *sh, const json_t *claims)
{
    if (atomic_load(&sh->n_cutoffs) == 0) return false;
    const json_t *cid = json_object_get(claims, "client_id");
    const json_t *iat = json_object_get(claims, "iat");
    if (!json_is_string(cid) || !json_is_integer(iat)) return false;
    pc_str id = {json_string_value(cid), json_string_length(cid)};
    pthread_mutex_lock(&sh->cutoff_mu);
    int i = find(sh, id);
    bool cut = i >= 0 && json_integer_value(iat) <= sh->cutoffs[i].at;
    pthread_mutex_unlock(&sh->cutoff_mu);
    return cut;
}

bool pc_as_token_client_revoked(void *as_state, const json_t *claims)
{
    pc_as *as = as_state;
    return pc_as_client_cut_off(as->sh, claims);
}
