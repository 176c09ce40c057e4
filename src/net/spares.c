/* A worker's spare connection buffers (see pc_spares in internal.h). Only
 * the worker's own thread touches them, so no lock. A buffer handed out
 * again still holds another connection's bytes, exactly as memory from
 * malloc may: every reader is bounded by the length written. */
#include "net/internal.h"

#include <stdlib.h>

char *pc_spares_take(pc_spares *s, size_t cap)
{
    if (s->n > 0 && s->cap == cap) return s->buf[--s->n];
    return malloc(cap);
}

void pc_spares_give(pc_spares *s, char *buf, size_t cap)
{
    if (buf == NULL) return;
    /* One size at a time: after a reload changes the head limit, the old
     * size drains away and the new one takes over. */
    if (s->n == PC_SPARE_BUFFERS || (s->n > 0 && s->cap != cap)) {
        free(buf);
        return;
    }
    s->cap = cap;
    s->buf[s->n++] = buf;
}

void pc_spares_clear(pc_spares *s)
{
    while (s->n > 0) free(s->buf[--s->n]);
}
