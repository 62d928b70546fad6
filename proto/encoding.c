/*
 * Accept-Encoding (RFC 9110 section 12.5.3): does a client accept a given
 * content coding? Only the coding's own entry counts ("*" is not taken as
 * consent to zstd), and q=0 refuses it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

/* The q value of one element's parameters ("; q=0.5"); 1 when absent. */
static double
element_q(const char *params, const char *end)
{
    const char *p = params;

    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            char num[16];
            size_t n = 0;

            p += 2;
            while (p < end && n < sizeof(num) - 1 &&
                   (isdigit((unsigned char)*p) || *p == '.'))
                num[n++] = *p++;
            num[n] = '\0';
            return n ? strtod(num, NULL) : 0;
        }
        while (p < end && *p != ';')
            p++;
    }
    return 1;
}

bool
proto_accepts_coding(const char *header, const char *coding)
{
    size_t clen = strlen(coding);
    const char *p = header;

    if (!header)
        return false;
    while (*p) {
        const char *elem, *end, *name_end;

        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        elem = p;
        while (*p && *p != ',')
            p++;
        end = p;
        name_end = elem;
        while (name_end < end && *name_end != ';' && *name_end != ' ' &&
               *name_end != '\t')
            name_end++;
        if ((size_t)(name_end - elem) == clen &&
            strncasecmp(elem, coding, clen) == 0)
            return element_q(name_end, end) > 0;
    }
    return false;
}
