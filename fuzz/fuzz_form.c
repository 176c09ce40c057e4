/* Fuzz the form decoder: on success every field must be NUL-terminated
 * within the buffer, non-empty-named, unique, and free of NUL bytes. */
#include "as/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pc_form f;
    if (!pc_ok(pc_form_parse((const char *)data, size, &f))) return 0;
    for (size_t i = 0; i < f.n; i++) {
        const pc_form_field *a = &f.fields[i];
        if (a->name.len == 0 || a->name.len > PC_FORM_MAX_NAME) abort();
        if (a->name.ptr[a->name.len] != '\0' || a->value.ptr[a->value.len] != '\0') abort();
        if (memchr(a->value.ptr, 0, a->value.len) || memchr(a->name.ptr, 0, a->name.len)) abort();
        for (size_t j = 0; j < i; j++)
            if (pc_str_eq(a->name, f.fields[j].name) && !pc_str_eq(a->name, PC_STR("resource")))
                abort();
        if (pc_form_get(&f, a->name.ptr).ptr == NULL) abort();
    }
    pc_form_free(&f);
    return 0;
}
