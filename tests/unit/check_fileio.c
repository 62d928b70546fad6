/*
 * Unit tests of fileio/: the one write-all, pwrite-all, fsync of a
 * directory, crash-safe put and whole-file mapping that store/, the
 * commands and the UE client (client/) share. A fresh directory per test,
 * the real filesystem.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio/fileio.h"
#include "tests/lib/fixture.h"

static char dir[64];

static void dir_setup(void)
{
    fixture_dir_make(dir, sizeof(dir), "/tmp/check_fileio.XXXXXX");
}

static void dir_teardown(void)
{
    fixture_dir_remove(dir);
}

static void path_in(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", dir, rel);
}

/* Entries of the test directory (no temporary may be left behind). */
static size_t count_entries(void)
{
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir(dir);

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole content of path (at most cap bytes); its length. */
static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n;

    ck_assert_int_ge(fd, 0);
    n = read(fd, buf, cap);
    close(fd);
    ck_assert_int_ge(n, 0);
    return (size_t)n;
}

/* ---- write-all ------------------------------------------------------------ */

struct pipe_reader {
    int fd;
    size_t got;
    unsigned char sum;
};

static void *pipe_drain(void *arg)
{
    struct pipe_reader *r = arg;
    unsigned char buf[4096];
    ssize_t n;

    while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            r->sum ^= buf[i];
        r->got += (size_t)n;
    }
    return NULL;
}

/* A pipe takes 64 KiB at a time: 1 MiB needs many short writes. */
START_TEST(test_fileio_write_all_short_writes)
{
    const size_t len = 1 << 20;
    unsigned char *data = malloc(len);
    unsigned char sum = 0;
    struct pipe_reader r = { 0 };
    pthread_t t;
    int p[2];

    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < len; i++) {
        data[i] = (unsigned char)(i * 2654435761u >> 24);
        sum ^= data[i];
    }
    ck_assert_int_eq(pipe(p), 0);
    r.fd = p[0];
    ck_assert_int_eq(pthread_create(&t, NULL, pipe_drain, &r), 0);
    ck_assert_int_eq(fileio_write_all(p[1], data, len), 0);
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
    ck_assert_uint_eq(r.got, len);
    ck_assert_uint_eq(r.sum, sum);
    /* A closed descriptor: -1 and errno, no loop. */
    ck_assert_int_eq(fileio_write_all(p[1], data, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    free(data);
}
END_TEST

/* At an offset, past the end too (a hole), without moving the position;
 * the position-based write goes on where it was. */
START_TEST(test_fileio_pwrite_all_at_offset)
{
    char path[512], buf[32];
    int fd;

    path_in(path, sizeof(path), "f");
    fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fileio_write_all(fd, "abcdef", 6), 0);
    ck_assert_int_eq(fileio_pwrite_all(fd, "XY", 2, 2), 0);
    ck_assert_int_eq(fileio_pwrite_all(fd, "Z", 1, 8), 0);
    ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 6);
    ck_assert_int_eq(fileio_write_all(fd, "g", 1), 0);
    close(fd);
    ck_assert_uint_eq(read_file(path, buf, sizeof(buf)), 9);
    ck_assert_int_eq(memcmp(buf, "abXYefg\0Z", 9), 0);
    ck_assert_int_eq(fileio_pwrite_all(fd, "x", 1, 0), -1);
    ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* ---- read to the end ------------------------------------------------------ */

struct pieces {
    size_t calls, bytes, stop_after;
    unsigned char sum;
};

static int count_piece(void *ctx, const void *data, size_t len)
{
    struct pieces *p = ctx;
    const unsigned char *b = data;

    p->calls++;
    p->bytes += len;
    for (size_t i = 0; i < len; i++)
        p->sum ^= b[i];
    return p->stop_after && p->calls >= p->stop_after ? 7 : 0;
}

/* Every byte once, in pieces no larger than the buffer; a handler that
 * stops ends it with 1; a read error is -1 with errno. */
START_TEST(test_fileio_read_each)
{
    enum { LEN = 100000 };
    unsigned char *data = malloc(LEN), buf[4096], sum = 0;
    struct pieces p = { 0 };
    char path[512];
    int fd;

    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < LEN; i++) {
        data[i] = (unsigned char)(i * 2654435761u >> 24);
        sum ^= data[i];
    }
    path_in(path, sizeof(path), "data");
    write_file(path, data, LEN);
    fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fileio_read_each(fd, buf, sizeof(buf), count_piece, &p),
                     0);
    ck_assert_uint_eq(p.bytes, LEN);
    ck_assert_uint_eq(p.sum, sum);
    ck_assert_uint_ge(p.calls, (LEN + sizeof(buf) - 1) / sizeof(buf));

    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    memset(&p, 0, sizeof(p));
    p.stop_after = 2;
    ck_assert_int_eq(fileio_read_each(fd, buf, sizeof(buf), count_piece, &p),
                     1);
    ck_assert_uint_eq(p.calls, 2);
    close(fd);

    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(fileio_read_each(fd, buf, sizeof(buf), count_piece, &p),
                     -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_uint_eq(p.calls, 0);
    free(data);
}
END_TEST

/* ---- directories ---------------------------------------------------------- */

START_TEST(test_fileio_fsync_dir_and_parent)
{
    char path[512];

    ck_assert_int_eq(fileio_fsync_dir(dir), 0);
    path_in(path, sizeof(path), "nope");
    ck_assert_int_eq(fileio_fsync_dir(path), -1);
    ck_assert_int_eq(errno, ENOENT);
    path_in(path, sizeof(path), "file-to-come");
    ck_assert_int_eq(fileio_fsync_parent(path), 0);
    ck_assert_int_eq(fileio_fsync_parent("relative-name"), 0);
    ck_assert_int_eq(fileio_fsync_parent("/top-level-name"), 0);
    ck_assert_int_eq(fileio_fsync_parent("/nope-dir/x"), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- put ------------------------------------------------------------------ */

/* The whole content or nothing, no temporary left; exclusive keeps what
 * is there; the mode less the umask (0600, as mkstemp makes it, and
 * another mode). */
START_TEST(test_fileio_put)
{
    char path[512], buf[32];
    mode_t mask = umask(0);
    struct stat sb;

    umask(mask);
    path_in(path, sizeof(path), "out");
    ck_assert_int_eq(fileio_put(path, "first\n", 6, 0600, false), 0);
    ck_assert_int_eq(fileio_put(path, "second\n", 7, 0600, false), 0);
    ck_assert_int_eq(fileio_put(path, "third\n", 6, 0600, true), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_uint_eq(read_file(path, buf, sizeof(buf)), 7);
    ck_assert_int_eq(memcmp(buf, "second\n", 7), 0);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0600 & ~(unsigned)mask);
    ck_assert_uint_eq(count_entries(), 1);

    path_in(path, sizeof(path), "shared");
    ck_assert_int_eq(fileio_put(path, "", 0, 0644, true), 0);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_uint_eq(sb.st_mode & 0777, 0644 & ~(unsigned)mask);
    ck_assert_uint_eq(sb.st_size, 0);
    ck_assert_uint_eq(count_entries(), 2);

    path_in(path, sizeof(path), "no-such-dir/out");
    ck_assert_int_eq(fileio_put(path, "x", 1, 0600, false), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_uint_eq(count_entries(), 2);
}
END_TEST

/* Streaming: written through t.fd, invisible until the commit; a discard
 * or a failed commit leaves nothing; an exclusive commit keeps what is
 * there and removes its temporary. */
START_TEST(test_fileio_tmp_commit_and_discard)
{
    struct fileio_tmp t;
    char path[512], buf[32];
    struct stat sb;

    path_in(path, sizeof(path), "out");
    ck_assert_int_eq(fileio_tmp_open(&t, path, 0600), 0);
    ck_assert_int_ge(t.fd, 0);
    ck_assert_ptr_nonnull(t.path);
    ck_assert_int_eq(strncmp(t.path, path, strlen(path)), 0);
    ck_assert_int_eq(fileio_write_all(t.fd, "streamed", 8), 0);
    ck_assert_int_eq(stat(path, &sb), -1);          /* not there yet */
    ck_assert_uint_eq(count_entries(), 1);
    ck_assert_int_eq(fileio_tmp_commit(&t, path, false), 0);
    ck_assert_int_eq(t.fd, -1);
    ck_assert_ptr_null(t.path);
    ck_assert_uint_eq(read_file(path, buf, sizeof(buf)), 8);
    ck_assert_int_eq(memcmp(buf, "streamed", 8), 0);
    ck_assert_uint_eq(count_entries(), 1);

    ck_assert_int_eq(fileio_tmp_open(&t, path, 0644), 0);
    ck_assert_int_eq(fileio_write_all(t.fd, "dropped", 7), 0);
    fileio_tmp_discard(&t);
    fileio_tmp_discard(&t);                           /* twice: nothing */
    ck_assert_uint_eq(count_entries(), 1);

    ck_assert_int_eq(fileio_tmp_open(&t, path, 0600), 0);
    ck_assert_int_eq(fileio_write_all(t.fd, "exclusive", 9), 0);
    ck_assert_int_eq(fileio_tmp_commit(&t, path, true), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_ptr_null(t.path);
    ck_assert_uint_eq(read_file(path, buf, sizeof(buf)), 8);
    ck_assert_uint_eq(count_entries(), 1);

    /* A commit into a directory that is gone: -1, no temporary left. */
    ck_assert_int_eq(fileio_tmp_open(&t, path, 0600), 0);
    path_in(path, sizeof(path), "no-such-dir/out");
    ck_assert_int_eq(fileio_tmp_commit(&t, path, false), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_uint_eq(count_entries(), 1);

    path_in(path, sizeof(path), "no-such-dir/out");
    ck_assert_int_eq(fileio_tmp_open(&t, path, 0600), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(t.fd, -1);
    ck_assert_ptr_null(t.path);
    fileio_tmp_discard(&t);
}
END_TEST

/* ---- mapping -------------------------------------------------------------- */

START_TEST(test_fileio_map)
{
    struct fileio_map m = { 0 };
    char path[512];
    int fd;

    path_in(path, sizeof(path), "empty");
    write_file(path, "", 0);
    fd = open(path, O_RDONLY);
    ck_assert_int_eq(fileio_map_fd(fd, &m), 0);
    close(fd);
    ck_assert_ptr_nonnull(m.data);
    ck_assert_uint_eq(m.len, 0);
    fileio_unmap(&m);
    ck_assert_ptr_null(m.data);

    path_in(path, sizeof(path), "text");
    write_file(path, "hello", 5);
    fd = open(path, O_RDONLY);
    ck_assert_int_eq(fileio_map_fd(fd, &m), 0);
    close(fd);                           /* the mapping outlives the fd */
    ck_assert_uint_eq(m.len, 5);
    ck_assert_mem_eq(m.data, "hello", 5);
    fileio_unmap(&m);
    fileio_unmap(&m);                    /* twice: nothing */

    fd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_eq(fileio_map_fd(fd, &m), -1);
    ck_assert_int_eq(errno, EINVAL);
    close(fd);
}
END_TEST

/* By name: the descriptor is not left open, failures leave *out alone. */
START_TEST(test_fileio_map_path)
{
    struct fileio_map m = { 0 }, untouched = { "sentinel", 8 };
    char path[512];
    int before, after;

    before = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(before, 0);
    close(before);
    path_in(path, sizeof(path), "text");
    write_file(path, "hello", 5);
    ck_assert_int_eq(fileio_map_path(path, &m), 0);
    ck_assert_uint_eq(m.len, 5);
    ck_assert_mem_eq(m.data, "hello", 5);
    fileio_unmap(&m);

    path_in(path, sizeof(path), "nope");
    ck_assert_int_eq(fileio_map_path(path, &untouched), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(fileio_map_path(dir, &untouched), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_str_eq(untouched.data, "sentinel");
    ck_assert_uint_eq(untouched.len, 8);

    after = open("/dev/null", O_RDONLY);     /* the lowest free fd again */
    ck_assert_int_eq(after, before);
    close(after);
}
END_TEST

static Suite *fileio_suite(void)
{
    Suite *s = suite_create("fileio");
    TCase *tc = tcase_create("files");

    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_fileio_write_all_short_writes);
    tcase_add_test(tc, test_fileio_pwrite_all_at_offset);
    tcase_add_test(tc, test_fileio_read_each);
    tcase_add_test(tc, test_fileio_fsync_dir_and_parent);
    tcase_add_test(tc, test_fileio_put);
    tcase_add_test(tc, test_fileio_tmp_commit_and_discard);
    tcase_add_test(tc, test_fileio_map);
    tcase_add_test(tc, test_fileio_map_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fileio_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
