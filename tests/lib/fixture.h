/*
 * What the unit tests that work on files share (header only, like
 * tensorgen.h): a fresh temporary directory per test and its removal, and
 * reading a small file descriptor whole. Failures are Check assertions.
 */
#ifndef TESTS_LIB_FIXTURE_H
#define TESTS_LIB_FIXTURE_H

#include <check.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static inline int
fixture_remove_entry(const char *path, const struct stat *sb, int flag,
                     struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A fresh directory named by template (ending in XXXXXX) into dir, which
 * holds size bytes. */
static inline void
fixture_dir_make(char *dir, size_t size, const char *template)
{
    snprintf(dir, size, "%s", template);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* Removes dir and everything below it. */
static inline void
fixture_dir_remove(const char *dir)
{
    nftw(dir, fixture_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The size bytes fd holds (a small test file), read whole; closes fd. The
 * caller frees the buffer. */
static inline unsigned char *
fixture_read_fd(int fd, uint64_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    size_t got = 0;

    ck_assert_ptr_nonnull(buf);
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);

        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    close(fd);
    return buf;
}

#endif
