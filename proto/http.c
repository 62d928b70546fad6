/*
 * HTTP header values the server needs: a single byte Range (RFC 9110
 * 14.2), If-None-Match lists (RFC 9110 13.1.2) and whether a Content-Type
 * names JSON. Pure string work; the server picks the status and writes
 * the headers.
 */
#include <string.h>
#include <strings.h>

#include "proto/proto.h"

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static const char *skip_ows_to(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Reads 1*DIGIT into *out; NULL when there are none or they overflow. */
static const char *read_u64(const char *p, uint64_t *out)
{
    uint64_t x = 0;
    const char *start = p;

    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');

        if (x > (UINT64_MAX - d) / 10)
            return NULL;
        x = x * 10 + d;
        p++;
    }
    if (p == start)
        return NULL;
    *out = x;
    return p;
}

/* One range-spec between p and end (trimmed). */
static enum proto_range_kind one_range(const char *p, const char *end,
                                       uint64_t size, uint64_t *out_start,
                                       uint64_t *out_len)
{
    uint64_t first = 0, last = 0;
    bool has_first, has_last;

    has_first = *p != '-';
    if (has_first) {
        p = read_u64(p, &first);
        if (!p)
            return PROTO_RANGE_FULL;
        p = skip_ows_to(p, end);
    }
    if (p >= end || *p != '-')
        return PROTO_RANGE_FULL;
    p = skip_ows_to(p + 1, end);
    has_last = p < end;
    if (has_last) {
        p = read_u64(p, &last);
        if (!p || skip_ows_to(p, end) != end)
            return PROTO_RANGE_FULL;
    }
    if (!has_first && !has_last)
        return PROTO_RANGE_FULL;
    if (has_first && has_last && last < first)
        return PROTO_RANGE_FULL;

    if (!has_first) {
        /* suffix-range: the last `last` bytes */
        if (last == 0 || size == 0)
            return PROTO_RANGE_UNSATISFIABLE;
        if (last > size)
            last = size;
        *out_start = size - last;
        *out_len = last;
        return PROTO_RANGE_PARTIAL;
    }
    if (first >= size)
        return PROTO_RANGE_UNSATISFIABLE;
    if (!has_last || last >= size)
        last = size - 1;
    *out_start = first;
    *out_len = last - first + 1;
    return PROTO_RANGE_PARTIAL;
}

enum proto_range_kind proto_range_parse(const char *header, uint64_t size,
                                        uint64_t *out_start,
                                        uint64_t *out_len)
{
    const char *p, *spec = NULL, *spec_end = NULL;
    size_t specs = 0;

    if (!header)
        return PROTO_RANGE_FULL;
    p = skip_ows(header);
    if (strncasecmp(p, "bytes", 5) != 0)
        return PROTO_RANGE_FULL;
    p = skip_ows(p + 5);
    if (*p != '=')
        return PROTO_RANGE_FULL;
    p++;

    /* 1#range-spec: empty list elements are allowed and ignored. */
    while (*p) {
        const char *start = skip_ows(p);
        const char *end = start;

        while (*end && *end != ',')
            end++;
        p = *end ? end + 1 : end;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end == start)
            continue;
        if (++specs > 1)
            return PROTO_RANGE_FULL;
        spec = start;
        spec_end = end;
    }
    if (specs != 1)
        return PROTO_RANGE_FULL;
    return one_range(spec, spec_end, size, out_start, out_len);
}

bool proto_etag_list_matches(const char *header, const char *etag)
{
    size_t etag_len;
    const char *p;

    if (!header || !etag)
        return false;
    etag_len = strlen(etag);
    p = header;
    for (;;) {
        const char *tag, *end;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        if (*p == '*') {
            p = skip_ows(p + 1);
            if (*p == '\0' || *p == ',')
                return true;
            return false;
        }
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        tag = p;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            if (!end)
                return false;
            end++;
        } else {
            /* Unquoted tags are invalid; tolerate them, compared with the
             * etag's quotes removed. */
            end = p;
            while (*end && *end != ',' && *end != ' ' && *end != '\t')
                end++;
            if (etag_len >= 2 && (size_t)(end - tag) == etag_len - 2 &&
                memcmp(tag, etag + 1, etag_len - 2) == 0)
                return true;
            p = end;
            continue;
        }
        if ((size_t)(end - tag) == etag_len && memcmp(tag, etag, etag_len) == 0)
            return true;
        p = end;
    }
}

bool proto_media_type_is_json(const char *header)
{
    const char *p, *end, *slash;
    size_t len;

    if (!header)
        return false;
    p = skip_ows(header);
    end = p;
    while (*end && *end != ';' && *end != ' ' && *end != '\t')
        end++;
    len = (size_t)(end - p);
    if (*skip_ows(end) != '\0' && *skip_ows(end) != ';')
        return false;
    slash = memchr(p, '/', len);
    if (!slash || slash == p || slash + 1 == end)
        return false;
    if (len == 16 && strncasecmp(p, "application/json", 16) == 0)
        return true;
    return (size_t)(end - slash - 1) > 5 && strncasecmp(end - 5, "+json", 5) == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil), so no time zone or locale is involved. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool proto_time_parse(const char *s, int64_t *out_s)
{
    unsigned y, mo, d, h, mi, se, oh = 0, om = 0;
    int64_t t;
    int sign = 0;
    size_t i = 19;

    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
        !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 60)
        return false;
    if (s[i] == '.') {
        i++;
        if (s[i] < '0' || s[i] > '9')
            return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0') {
        sign = 0;
    } else if ((s[i] == '+' || s[i] == '-') && strlen(s + i) == 6 &&
               digits(s + i + 1, 2, &oh) && s[i + 3] == ':' &&
               digits(s + i + 4, 2, &om) && oh < 24 && om < 60) {
        sign = s[i] == '+' ? 1 : -1;
    } else {
        return false;
    }
    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    t -= sign * (int64_t)(oh * 3600 + om * 60);
    *out_s = t;
    return true;
}
