/*
 * `modeld keygen --out FILE`: a new Ed25519 signing key for signed
 * decisions, written as PEM (PKCS #8) with mode 0600; never over an
 * existing file. Prints the key's kid. The key handling is server/sign.c's.
 */
#include <stdio.h>
#include <string.h>

#include "server/commands.h"
#include "server/sign.h"

static const char usage_text[] =
    "usage: modeld keygen --out FILE\n"
    "\n"
    "Writes a new Ed25519 private key (PEM, mode 0600) to FILE, which must\n"
    "not exist yet, and prints its kid (the RFC 7638 thumbprint that signed\n"
    "answers name in keyid and GET /v1/keys lists). Point the signing_key\n"
    "config key at it; keep the previous key's file in verify_keys while\n"
    "UEs may still hold answers it signed.\n"
    "\n"
    "Exit status: 0 written, 1 failure, 2 usage error.\n";

int
cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    char kid[SIGN_KID_SIZE];
    char err[512];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && !out) {
            out = argv[++i];
            continue;
        }
        fprintf(stderr, "modeld keygen: unknown or incomplete option "
                        "\"%s\"\n", argv[i]);
        fputs(usage_text, stderr);
        return 2;
    }
    if (!out || !out[0]) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (sign_keygen(out, kid, err, sizeof(err)) != 0) {
        fprintf(stderr, "modeld keygen: %s\n", err);
        return 1;
    }
    printf("%s\n", kid);
    return 0;
}
