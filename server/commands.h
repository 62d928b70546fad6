/*
 * The subcommands of build/modeld. Each takes argv with argv[0] the
 * command's name ("serve", "demo", ...), handles --help itself, and
 * returns the process exit code (0 success, 1 failure, 2 usage error).
 */
#ifndef SERVER_COMMANDS_H
#define SERVER_COMMANDS_H

int cmd_serve(int argc, char **argv);   /* server/main.c */
int cmd_demo(int argc, char **argv);    /* server/cmd_demo.c */
int cmd_patch(int argc, char **argv);   /* server/cmd_patch.c */
int cmd_select(int argc, char **argv);  /* server/cmd_select.c */
int cmd_fetch(int argc, char **argv);   /* server/cmd_fetch.c */
int cmd_decode(int argc, char **argv);  /* server/cmd_patch.c */
int cmd_delta(int argc, char **argv);   /* server/cmd_delta.c */
int cmd_encode(int argc, char **argv);  /* server/cmd_delta.c */
int cmd_keygen(int argc, char **argv);  /* server/cmd_keygen.c */
int cmd_replay(int argc, char **argv);  /* server/cmd_replay.c */

struct config;
/*
 * server/cmd_config.c: cfg is config_path's configuration (--config; the
 * defaults when NULL) and *dir, when NULL (no --data), its data_dir.
 * 0, or 1 (the exit code) after saying why on stderr as "PROG: ...".
 */
int cmd_config_load(const char *prog, const char *config_path,
                    struct config *cfg, const char **dir);

#endif
