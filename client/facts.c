/*
 * Device facts the client measures itself, where Linux exposes them: free
 * memory (MemAvailable of /proc/meminfo), battery level and charging
 * (/sys/class/power_supply), whether the default route is a cellular link
 * (a metered guess from /proc/net/route and the interface's name), and a
 * short compute benchmark. Anything not measurable stays unset; every fact
 * can be overridden by the report or --set (client/report.c).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/internal.h"

static uint64_t mem_available(const char *path)
{
    char line[256];
    unsigned long long kb;
    uint64_t out = 0;
    FILE *f = fopen(path, "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            out = (uint64_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return out;
}

/* First line of dir/name/file without the newline; false when absent. */
static bool read_attr(const char *dir, const char *name, const char *file,
                      char *out, size_t cap)
{
    char path[1024];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
    f = fopen(path, "r");
    if (!f)
        return false;
    if (!fgets(out, (int)cap, f)) {
        fclose(f);
        return false;
    }
    fclose(f);
    n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    return true;
}

static void battery(const char *dir, struct client_facts *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char v[64];
    bool mains_online = false;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' ||
            !read_attr(dir, e->d_name, "type", v, sizeof(v)))
            continue;
        if (strcasecmp(v, "Mains") == 0 || strcasecmp(v, "USB") == 0) {
            if (read_attr(dir, e->d_name, "online", v, sizeof(v)) &&
                strcmp(v, "1") == 0)
                mains_online = true;
            continue;
        }
        if (strcasecmp(v, "Battery") != 0 || out->has_battery)
            continue;
        if (read_attr(dir, e->d_name, "capacity", v, sizeof(v))) {
            double pct = strtod(v, NULL);

            if (pct >= 0 && pct <= 100) {
                out->battery_percent = pct;
                out->has_battery = true;
            }
        }
        if (read_attr(dir, e->d_name, "status", v, sizeof(v)))
            out->charging = strcasecmp(v, "Charging") == 0 ||
                            strcasecmp(v, "Full") == 0;
    }
    closedir(d);
    if (out->has_battery && mains_online)
        out->charging = true;
}

/* The default route's interface looks cellular (wwan0, rmnet_data0, ...). */
static void metered(struct client_facts *out)
{
    static const char *const cellular[] = { "wwan", "rmnet", "ccmni", "usb",
                                            "ppp", "pdp" };
    char line[256], ifname[CLIENT_IFACE_SIZE];
    unsigned long dest;
    FILE *f = fopen("/proc/net/route", "r");

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%31s %lx", ifname, &dest) != 2 || dest != 0)
            continue;
        out->has_metered = true;
        out->metered = false;
        snprintf(out->route_iface, sizeof(out->route_iface), "%s", ifname);
        for (size_t i = 0; i < sizeof(cellular) / sizeof(cellular[0]); i++)
            if (strncmp(ifname, cellular[i], strlen(cellular[i])) == 0)
                out->metered = true;
        break;
    }
    fclose(f);
}

uint64_t client_facts_memory(const struct client_options *o)
{
    return mem_available(o->meminfo_path ? o->meminfo_path : "/proc/meminfo");
}

void client_facts_measure(const struct client_options *o,
                          struct client_facts *out)
{
    memset(out, 0, sizeof(*out));
    out->memory_bytes = client_facts_memory(o);
    battery(o->power_supply_dir ? o->power_supply_dir
                                : "/sys/class/power_supply",
            out);
    metered(out);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A 64x64 single-precision matrix product repeated for about 30 ms: the
 * shape of a small dense layer, vectorisable by the compiler, 2 * 64^3
 * FLOP per round. The result feeds the next round so nothing is skipped.
 */
double client_benchmark_gflops(void)
{
    enum { N = 64 };
    static float a[N][N], b[N][N], c[N][N];
    double start, elapsed = 0, flop = 0;
    volatile float sink = 0;

    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            a[i][j] = (float)((i * 7 + j * 3) % 17) / 17.0f;
            b[i][j] = (float)((i * 5 + j * 11) % 13) / 13.0f;
        }
    start = now_s();
    while (elapsed < 0.03) {
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < N; j++)
                c[i][j] = 0;
            for (int k = 0; k < N; k++) {
                float aik = a[i][k];

                for (int j = 0; j < N; j++)
                    c[i][j] += aik * b[k][j];
            }
        }
        a[0][0] = c[N - 1][N - 1] * 1e-6f;
        flop += 2.0 * N * N * N;
        elapsed = now_s() - start;
    }
    sink = c[0][0];
    (void)sink;
    return elapsed > 0 ? flop / elapsed / 1e9 : 0;
}

/*
 * The compute probe (README "The histories"): a fixed small fp32 kernel,
 * a 32x32 matrix product (c += a b, 2 * 32^3 FLOP, 12 KiB: in L1 on any
 * device, so it measures the core's arithmetic at its current clock, not
 * memory), run in blocks of CLIENT_PROBE_ROUNDS products. Each block is
 * timed; blocks run until CLIENT_PROBE_BUDGET_S has passed (at least
 * CLIENT_PROBE_MIN_BLOCKS, at most CLIENT_PROBE_MAX_BLOCKS) and the
 * fastest block is the result: a preemption or a page fault slows one
 * block, not all of them, and a core still ramping up its clock from idle
 * is past it by the last blocks; a thermally throttled core is slow in
 * every block. Each product feeds the next, so nothing is optimised away.
 */
double client_compute_probe(double (*clock_s)(void *ctx), void *ctx)
{
    enum { N = 32 };
    float a[N][N], b[N][N], c[N][N];
    double start, prev, best = 0;
    const double flop = 2.0 * N * N * N * CLIENT_PROBE_ROUNDS;
    volatile float sink;

    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            a[i][j] = (float)((i * 7 + j * 3) % 17) / 17.0f;
            b[i][j] = (float)((i * 5 + j * 11) % 13) / 13.0f;
            c[i][j] = 0;
        }
    start = prev = clock_s ? clock_s(ctx) : now_s();
    for (int blk = 0; blk < CLIENT_PROBE_MAX_BLOCKS; blk++) {
        double t, dt;

        for (int r = 0; r < CLIENT_PROBE_ROUNDS; r++) {
            for (int i = 0; i < N; i++)
                for (int k = 0; k < N; k++) {
                    float aik = a[i][k];

                    for (int j = 0; j < N; j++)
                        c[i][j] += aik * b[k][j];
                }
            a[r % N][0] = c[N - 1][r % N] * 1e-6f;
        }
        t = clock_s ? clock_s(ctx) : now_s();
        dt = t - prev;
        prev = t;
        if (dt > 0 && flop / dt / 1e9 > best)
            best = flop / dt / 1e9;
        if (blk + 1 >= CLIENT_PROBE_MIN_BLOCKS &&
            t - start >= CLIENT_PROBE_BUDGET_S)
            break;
    }
    sink = c[0][0];
    (void)sink;
    return best;
}

double client_facts_compute(const struct client_options *o)
{
    char buf[64];
    double v = 0;
    FILE *f;

    if (!o->compute_probe_path)
        return client_compute_probe(NULL, NULL);
    f = fopen(o->compute_probe_path, "r");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f))
        v = strtod(buf, NULL);
    fclose(f);
    return v > 0 && v <= 1e9 ? v : 0;
}
