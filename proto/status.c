/* status: see status.h. */
#include "proto/status.h"

#include <string.h>

static const struct {
    const char *name;
    const char *text;
} table[] = {
#define ZC_STATUS_ROW(code, name, text) [code] = {#name, text},
    ZC_STATUS_TABLE(ZC_STATUS_ROW)
#undef ZC_STATUS_ROW
};

const char *zc_status_name(int code)
{
    return code >= 0 && code < ZC_STATUS_COUNT ? table[code].name : "UNKNOWN";
}

const char *zc_status_text(int code)
{
    return code >= 0 && code < ZC_STATUS_COUNT ? table[code].text : "unknown status code";
}

int zc_status_parse(const char *name)
{
    for (int i = 0; i < ZC_STATUS_COUNT; i++)
        if (strcmp(table[i].name, name) == 0)
            return i;
    return -1;
}
