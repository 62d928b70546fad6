/*
 * fileio: the small POSIX file helpers that both sides of modeld use:
 * write everything (at the file position or at an offset), read a file to
 * its end in pieces, fsync a directory, put a whole file crash-safely, map
 * a whole file. One copy each, for store/ (blobs, deltas, compressed
 * copies), the commands in server/ and the UE library in client/. It
 * depends on libc only (no SQLite, no libmicrohttpd, no curl), so client/
 * links it without pulling in the daemon. Every function reports with
 * errno; callers say what failed.
 */
#ifndef FILEIO_FILEIO_H
#define FILEIO_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* As proto/proto.h spells it (an identical redefinition is allowed). */
#ifndef MUST_CHECK
#if defined(__GNUC__)
#define MUST_CHECK __attribute__((warn_unused_result))
#else
#define MUST_CHECK
#endif
#endif

/* Writes all len bytes of data to fd at its file position, through short
 * writes and EINTR. 0, or -1 with errno set. */
MUST_CHECK int fileio_write_all(int fd, const void *data, size_t len);
/* The same at offset off (pwrite), leaving the file position alone. */
MUST_CHECK int fileio_pwrite_all(int fd, const void *data, size_t len,
                                 uint64_t off);
/*
 * Reads the file open on fd from its position to its end, in pieces of at
 * most buf_len bytes through buf (retrying EINTR), and hands each piece to
 * fn, which returns 0 to go on. 0 at the end of the file; 1 when fn
 * stopped it; -1 with errno set when a read failed.
 */
MUST_CHECK int fileio_read_each(int fd, void *buf, size_t buf_len,
                                int (*fn)(void *ctx, const void *data,
                                          size_t len),
                                void *ctx);
/* fsyncs the directory dir (so that a rename or create in it is durable).
 * 0, or -1 with errno set. */
MUST_CHECK int fileio_fsync_dir(const char *dir);
/* fsyncs the directory holding path ("." without a slash, "/" for
 * "/name"). */
MUST_CHECK int fileio_fsync_parent(const char *path);
/*
 * A file written beside its final name and put in place whole (kill -9,
 * full disk: path never holds part of it): fileio_tmp_open creates
 * "<path>.tmp-XXXXXX" with mode less the umask; the caller writes t->fd;
 * fileio_tmp_commit fsyncs and closes it, renames it over path
 * (exclusive: links it, which keeps an existing path and fails with
 * EEXIST) and fsyncs the directory; fileio_tmp_discard drops it. Commit
 * and discard always leave no temporary behind (t is spent either way).
 * 0, or -1 with errno set.
 */
struct fileio_tmp {
    int fd;
    char *path;                   /* malloc'd; NULL once renamed or gone */
};
MUST_CHECK int fileio_tmp_open(struct fileio_tmp *t, const char *path,
                               unsigned mode);
MUST_CHECK int fileio_tmp_commit(struct fileio_tmp *t, const char *path,
                                 bool exclusive);
void fileio_tmp_discard(struct fileio_tmp *t);
/*
 * Writes len bytes of data to path so that path never holds part of them
 * (kill -9, full disk): a temporary file beside it, fsync, then a rename
 * over path (exclusive: a link, which keeps an existing path and fails
 * with EEXIST), and the directory's fsync. The file gets mode less the
 * umask. On failure the temporary is gone. 0, or -1 with errno set.
 */
MUST_CHECK int fileio_put(const char *path, const void *data, size_t len,
                          unsigned mode, bool exclusive);

/* A whole file mapped read-only. */
struct fileio_map {
    const void *data;             /* non-NULL once mapped, even when empty */
    size_t len;
};
/* Maps the regular file open on fd (the fd may be closed afterwards).
 * 0, or -1 with errno set (EINVAL: not a regular file). */
MUST_CHECK int fileio_map_fd(int fd, struct fileio_map *out);
/* Opens path read-only and maps it as fileio_map_fd does; the descriptor
 * is closed again either way. 0, or -1 with errno set. */
MUST_CHECK int fileio_map_path(const char *path, struct fileio_map *out);
/* Unmaps; a zeroed or already unmapped map does nothing. */
void fileio_unmap(struct fileio_map *m);

#endif
