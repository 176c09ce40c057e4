#include "core/str.h"
#include "as/form.h"

#include <stdlib.h>
#include <string.h>

/* Decode [p, p+n) into out; returns bytes written or -1. */
static long decode(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '+') {
            out[o++] = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = pc_hexval((unsigned char)p[i + 1]), lo = pc_hexval((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            int b = hi * 16 + lo;
            if (b == 0) return -1;
            out[o++] = (char)b;
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            return -1;
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

pc_result pc_form_parse(const char *body, size_t len, pc_form *out)
{
    memset(out, 0, sizeof *out);
    /* Decoding never lengthens; each field adds two NULs. */
    out->buf_len = len + 2 * PC_FORM_MAX_FIELDS + 1;
    out->buf = malloc(out->buf_len);
    PC_ENSURE(out->buf != NULL, PC_ERR_INTERNAL, "out of memory");
    char *w = out->buf;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end == i) { /* empty pair: "a=1&&b=2" or a trailing '&' */
            i = end + 1;
            continue;
        }
        const char *eq = memchr(body + i, '=', end - i);
        if (eq == NULL) {
            pc_form_free(out);
            return pc_fail(PC_ERR_PROTO, "form field without '='");
        }
        if (out->n == PC_FORM_MAX_FIELDS) {
            pc_form_free(out);
            return pc_fail(PC_ERR_PROTO, "more than %d form fields", PC_FORM_MAX_FIELDS);
        }
        size_t nlen = (size_t)(eq - (body + i));
        long dn = decode(body + i, nlen, w);
        if (dn <= 0 || dn > PC_FORM_MAX_NAME) {
            pc_form_free(out);
            return pc_fail(PC_ERR_PROTO, dn == 0 ? "empty form field name"
                                                 : "invalid form field name or percent-encoding");
        }
        pc_form_field *f = &out->fields[out->n];
        f->name = (pc_str){w, (size_t)dn};
        w += dn + 1;
        long dv = decode(eq + 1, end - nlen - 1 - i, w);
        if (dv < 0) {
            /* Format before freeing: the name lives in out->buf. */
            pc_result r = pc_fail(PC_ERR_PROTO, "invalid percent-encoding in form field '%.*s'",
                                  (int)f->name.len, f->name.ptr);
            pc_form_free(out);
            return r;
        }
        f->value = (pc_str){w, (size_t)dv};
        w += dv + 1;
        /* RFC 8707 §2: resource may be repeated; nothing else may. */
        bool repeatable = pc_str_eq(f->name, PC_STR("resource"));
        for (size_t k = 0; k < out->n && !repeatable; k++) {
            if (pc_str_eq(out->fields[k].name, f->name)) {
                pc_result r = pc_fail(PC_ERR_PROTO, "parameter '%.*s' given more than once",
                                      (int)f->name.len, f->name.ptr);
                pc_form_free(out);
                return r;
            }
        }
        out->n++;
        i = end + 1;
    }
    return PC_OK;
}

void pc_form_free(pc_form *f)
{
    if (f->buf) {
        /* Forms carry client assertions: do not leave them in freed memory. */
        pc_wipe(f->buf, f->buf_len);
        free(f->buf);
    }
    f->buf = NULL;
    f->n = 0;
}

pc_str pc_form_get(const pc_form *f, const char *name)
{
    pc_str n = pc_str_c(name);
    for (size_t i = 0; i < f->n; i++)
        if (pc_str_eq(f->fields[i].name, n)) return f->fields[i].value;
    return PC_STR_NULL;
}

size_t pc_form_count(const pc_form *f, const char *name)
{
    pc_str n = pc_str_c(name);
    size_t c = 0;
    for (size_t i = 0; i < f->n; i++) c += pc_str_eq(f->fields[i].name, n);
    return c;
}
