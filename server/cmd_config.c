/*
 * What the offline commands over a data directory (modeld select, modeld
 * replay) share before their own work: the configuration and the data
 * directory they run with. Parsing each command's arguments stays in its
 * own file.
 */
#include <stdio.h>

#include "server/commands.h"
#include "server/config.h"

int cmd_config_load(const char *prog, const char *config_path,
                    struct config *cfg, const char **dir)
{
    char err[512];

    config_default(cfg);
    if (config_path &&
        config_load_file(cfg, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (!*dir)
        *dir = cfg->data_dir;
    return 0;
}
