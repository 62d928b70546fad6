/*
 * build/modeld-apply: `modeld patch` and `modeld decode` (server/cmd_patch.c,
 * the same code) in a binary of their own, linked with only what applying
 * needs: proto/'s decoders, libzstd and libcrypto's SHA-256.
 *
 *   modeld-apply OLD DELTA OUT           (= modeld patch OLD DELTA OUT)
 *   modeld-apply decode [--digest D] IN OUT   (= modeld decode ...)
 *
 * Why: this is what a UE ships to apply an update. build/modeld is the
 * server and links libmicrohttpd, GnuTLS, libpq, libcurl, SQLite and
 * jansson; loading and relocating those 38 libraries costs every `modeld
 * patch` about 12 ms of CPU and 6 MB of RSS before it reads a byte, more
 * than applying a small model takes. `make bench` measures the UE-side
 * apply with this binary (and `modeld patch` beside it, README).
 */
#include <string.h>

#include "server/commands.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "patch") == 0)
        return cmd_patch(argc - 1, argv + 1);
    return cmd_patch(argc, argv);
}
