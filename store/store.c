/*
 * The store's life cycle: opening the data directory, the catalog (SQLite
 * in the data directory, or PostgreSQL: connections, pragmas, schema
 * migrations, the prepared statements), closing, the last-error text and
 * the counters. Blobs are in store/blob.c, the catalog
 * writes and snapshots in store/catalog.c, the worker in store/worker.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/internal.h"

#define DEFAULT_BUSY_TIMEOUT_MS 5000
#define DEFAULT_LEVEL 19
#define DEFAULT_DELTA_MAX_FRACTION 0.9
#define DEFAULT_CROSS_MAX_BYTES ((uint64_t)256 << 20)
#define DEFAULT_DELTA_VERSIONS 4
#define DEFAULT_DELTA_STORAGE_BYTES ((uint64_t)16 << 30)
/* 2 s, 4 s, ... 512 s: ten attempts over about 17 minutes, long enough
 * for an operator to free descriptors or memory, short enough that a
 * blip costs seconds. */
#define DEFAULT_RETRY_BASE_MS 2000
#define DEFAULT_RETRY_MAX_MS 600000
#define DEFAULT_RETRY_ATTEMPTS 10
/* As many as the default HTTP threads: a miss in each at once. */
#define DEFAULT_READ_CONNECTIONS 4

/* SQLite's clock, so that no C code here needs one. */
#define NOW_S "CAST(strftime('%s', 'now') AS INTEGER)"

/*
 * Schema migrations, applied in order, each in its own transaction that
 * also sets PRAGMA user_version to its index + 1. Append new steps; never
 * edit a step that has shipped, or old data directories break.
 */
static const char *const migrations[] = {
    /* 1: the first schema. */
    "CREATE TABLE families ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  task TEXT NOT NULL DEFAULT '',"
    "  description TEXT NOT NULL DEFAULT '',"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  created_s INTEGER NOT NULL);"
    "CREATE TABLE blobs ("
    "  digest TEXT PRIMARY KEY,"
    "  size_bytes INTEGER NOT NULL,"
    "  created_s INTEGER NOT NULL,"
    /* The worker's zstd copy: pending, ready (DIR/blobs/..../<hex>.zst
     * exists), larger (not kept: not smaller than the blob), failed. */
    "  zstd_state TEXT NOT NULL DEFAULT 'pending' CHECK (zstd_state IN"
    "    ('pending', 'ready', 'larger', 'failed')),"
    "  zstd_size INTEGER);"
    "CREATE INDEX blobs_zstd_state ON blobs(zstd_state);"
    "CREATE TABLE variants ("
    "  id INTEGER PRIMARY KEY,"
    "  family_id INTEGER NOT NULL REFERENCES families(id),"
    "  name TEXT NOT NULL,"
    "  retired INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (family_id, name));"
    "CREATE TABLE versions ("
    "  id INTEGER PRIMARY KEY,"
    "  variant_id INTEGER NOT NULL REFERENCES variants(id),"
    "  version INTEGER NOT NULL,"
    "  blob_digest TEXT NOT NULL REFERENCES blobs(digest),"
    "  format TEXT NOT NULL DEFAULT '',"
    "  params INTEGER NOT NULL DEFAULT 0,"
    "  flops REAL NOT NULL,"
    "  accuracy REAL NOT NULL,"
    "  memory_bytes INTEGER NOT NULL DEFAULT 0,"
    "  size_bytes INTEGER NOT NULL,"
    "  rollout_percent INTEGER NOT NULL DEFAULT 100,"
    "  created_s INTEGER NOT NULL,"
    "  retired INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (variant_id, version));"
    "CREATE TABLE version_techniques ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  technique TEXT NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE version_latencies ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  device_class TEXT NOT NULL,"
    "  latency_ms REAL NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE version_energies ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  device_class TEXT NOT NULL,"
    "  energy_mj REAL NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE version_exits ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  flops REAL NOT NULL,"
    "  accuracy REAL NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE version_context ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE version_accelerators ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id) ON DELETE CASCADE,"
    "  pos INTEGER NOT NULL,"
    "  accelerator TEXT NOT NULL,"
    "  PRIMARY KEY (version_id, pos));"
    "CREATE TABLE deltas ("
    "  from_digest TEXT NOT NULL REFERENCES blobs(digest),"
    "  to_digest TEXT NOT NULL REFERENCES blobs(digest),"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN"
    "    ('pending', 'ready', 'failed', 'rejected')),"
    "  size_bytes INTEGER,"
    "  delta_digest TEXT,"
    "  error TEXT,"
    "  created_s INTEGER NOT NULL,"
    "  PRIMARY KEY (from_digest, to_digest));"
    "CREATE INDEX deltas_state ON deltas(state);"
    "CREATE INDEX deltas_to ON deltas(to_digest, state);",
    /* 2: the start-up epoch: generations are epoch << 32 plus writes since
     * start, so they never decrease across restarts (signed answers carry
     * them; a UE refuses a lower one). */
    "CREATE TABLE store_epoch (epoch INTEGER NOT NULL);"
    "INSERT INTO store_epoch(epoch) VALUES (0);",
    /* 3: the worker's retries of transient failures: attempts made and
     * when the next may start (ms since the epoch; 0: now). */
    "ALTER TABLE deltas ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE deltas ADD COLUMN retry_at_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN zstd_attempts INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN zstd_retry_at_ms INTEGER NOT NULL "
    "  DEFAULT 0;",
    /* 4: trust and control (store/trust.c): a version's rollout can be
     * paused; what UEs report about versions (one row per version, UE and
     * kind); the audit log of admin writes. */
    "ALTER TABLE versions ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE events ("
    "  version_id INTEGER NOT NULL REFERENCES versions(id),"
    "  ue TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  device_class TEXT NOT NULL DEFAULT '',"
    "  latency_ms REAL,"
    "  energy_mj REAL,"
    "  created_s INTEGER NOT NULL,"
    "  PRIMARY KEY (version_id, ue, kind));"
    "CREATE INDEX events_latency ON events(version_id, kind, device_class,"
    "  latency_ms);"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  time_s INTEGER NOT NULL,"
    "  token TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX audit_time ON audit(time_s);",
    /* 5: tensor codings. A ready delta keeps its zstd-patch file
     * (size_bytes, NULL when that one was not small enough) and/or its
     * modeld-tensor/1 file (tensor_size, only when smaller than the
     * zstd-patch one); last_served_s orders eviction (LRU); on_demand
     * marks deltas asked for by a select. A blob's modeld-bg/1 copy:
     * bg_state NULL (not asked: only published blobs get one), pending,
     * ready (DIR/blobs/.../<hex>.bg), larger (not smaller than its zstd
     * copy), none (no tensors found), failed. A version's TF.js
     * model.json: weights_manifest (hex). */
    "ALTER TABLE deltas ADD COLUMN tensor_size INTEGER;"
    "ALTER TABLE deltas ADD COLUMN last_served_s INTEGER;"
    "ALTER TABLE deltas ADD COLUMN on_demand INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN bg_state TEXT CHECK (bg_state IN"
    "  ('pending', 'ready', 'larger', 'none', 'failed'));"
    "ALTER TABLE blobs ADD COLUMN bg_size INTEGER;"
    "ALTER TABLE versions ADD COLUMN weights_manifest TEXT;"
    "CREATE INDEX blobs_bg_state ON blobs(bg_state);",
    /* 6: the catalog generation, shared by every daemon of a PostgreSQL
     * catalog (bumped by triggers there, see migrations_pg); SQLite keeps
     * it in memory, the table is only the same schema. */
    "CREATE TABLE catalog_generation ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  generation INTEGER NOT NULL);"
    "INSERT INTO catalog_generation(id, generation) VALUES (1, 1);",
    /* 7: event receipts (store/receipt.c). The catalog's secrets (the
     * receipt key, made by the first daemon that opens it, so that every
     * daemon of one catalog checks the receipts of the others), and
     * whether an event carried a valid receipt. */
    "CREATE TABLE secrets ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    "ALTER TABLE events ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;",
    /* 8: versions by blob: a select's on-demand delta asks whether the
     * UE's blob and the chosen one are of one family, and the worker looks
     * up a blob's TF.js manifest; both scanned every version of the
     * catalog (10,000 families: ~6M instructions a lookup, under the
     * writer's mutex). */
    "CREATE INDEX versions_blob ON versions(blob_digest);",
    /* 9: which of a version's lists (techniques, latencies, energies,
     * exits, context, accelerators: bits 0-5) have rows, so that reading a
     * snapshot skips the empty ones (six statements a version before: the
     * most part of re-reading a family of 200 variants after a write).
     * NULL for versions published before: every list is read. */
    "ALTER TABLE versions ADD COLUMN lists INTEGER;",
};

/*
 * PostgreSQL's text of a step where translating the SQLite text (store/
 * db.c) is not enough; NULL: the translation. Same step numbers.
 */
static const char *const migrations_pg[ARRAY_SIZE(migrations)] = {
    /* 6: any write to what snapshots hold moves the generation in the
     * writer's own transaction and wakes the listening daemons. */
    [5] =
    "CREATE TABLE catalog_generation ("
    "  id BIGINT PRIMARY KEY CHECK (id = 1),"
    "  generation BIGINT NOT NULL);"
    "INSERT INTO catalog_generation(id, generation) VALUES (1, 1);"
    "CREATE FUNCTION modeld_generation_bump() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "  UPDATE catalog_generation SET generation = generation + 1 "
    "  WHERE id = 1;"
    "  PERFORM pg_notify('modeld_catalog', '');"
    "  RETURN NULL;"
    "END $$;"
    "CREATE TRIGGER families_generation AFTER INSERT OR UPDATE OR DELETE "
    "  ON families FOR EACH STATEMENT "
    "  EXECUTE FUNCTION modeld_generation_bump();"
    "CREATE TRIGGER variants_generation AFTER INSERT OR UPDATE OR DELETE "
    "  ON variants FOR EACH STATEMENT "
    "  EXECUTE FUNCTION modeld_generation_bump();"
    "CREATE TRIGGER versions_generation AFTER INSERT OR UPDATE OR DELETE "
    "  ON versions FOR EACH STATEMENT "
    "  EXECUTE FUNCTION modeld_generation_bump();"
    "CREATE TRIGGER deltas_generation AFTER UPDATE OF state ON deltas "
    "  FOR EACH ROW WHEN (NEW.state = 'ready' AND OLD.state <> 'ready') "
    "  EXECUTE FUNCTION modeld_generation_bump();",
};

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_READ_BEGIN] = "BEGIN DEFERRED",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_BLOB_INSERT] =
        "INSERT OR IGNORE INTO blobs(digest, size_bytes, created_s) "
        "VALUES (?1, ?2, " NOW_S ")",
    [STMT_BLOB_GET] =
        "SELECT size_bytes, zstd_state, zstd_size, zstd_retry_at_ms, "
        "  zstd_attempts FROM blobs WHERE digest = ?1",
    [STMT_FAMILY_GET] =
        "SELECT id, deleted, task, description FROM families "
        "WHERE name = ?1",
    [STMT_FAMILY_INSERT] =
        "INSERT INTO families(name, task, description, deleted, created_s) "
        "VALUES (?1, ?2, ?3, 0, " NOW_S ")",
    [STMT_FAMILY_UPDATE] =
        "UPDATE families SET task = ?2, description = ?3, deleted = 0 "
        "WHERE id = ?1",
    [STMT_FAMILY_DELETE] =
        "UPDATE families SET deleted = 1 WHERE name = ?1 AND deleted = 0",
    [STMT_FAMILY_LIST] =
        "SELECT f.id, f.name, f.task, f.description, "
        "  (SELECT count(*) FROM variants v "
        "   WHERE v.family_id = f.id AND v.retired = 0) "
        "FROM families f WHERE f.deleted = 0 ORDER BY f.name",
    [STMT_VARIANT_UPSERT] =
        "INSERT INTO variants(family_id, name, retired) VALUES (?1, ?2, 0) "
        "ON CONFLICT (family_id, name) DO UPDATE SET retired = 0",
    [STMT_VARIANT_ID] =
        "SELECT id FROM variants WHERE family_id = ?1 AND name = ?2",
    [STMT_VARIANT_RETIRE] =
        "UPDATE variants SET retired = 1 WHERE name = ?2 AND retired = 0 "
        "AND family_id = "
        "  (SELECT id FROM families WHERE name = ?1 AND deleted = 0)",
    [STMT_VERSION_LAST] =
        "SELECT version, blob_digest FROM versions WHERE variant_id = ?1 "
        "ORDER BY version DESC LIMIT 1",
    [STMT_VERSION_LATEST_ROW] =
        "SELECT ver.id, v.name, ver.version, ver.blob_digest, "
        "  ver.size_bytes, ver.created_s, ver.format, ver.params, "
        "  ver.flops, ver.accuracy, ver.memory_bytes, ver.rollout_percent, "
        "  ver.paused, ver.retired, ver.weights_manifest, NULL, v.retired "
        "FROM variants v JOIN versions ver ON ver.variant_id = v.id "
        "WHERE v.family_id = ?1 AND v.name = ?2 "
        "ORDER BY ver.version DESC LIMIT 1",
    [STMT_VERSION_INSERT] =
        "INSERT INTO versions(variant_id, version, blob_digest, format, "
        "  params, flops, accuracy, memory_bytes, size_bytes, "
        "  rollout_percent, created_s, weights_manifest, lists) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
        "RETURNING id",
    [STMT_TECH_INSERT] =
        "INSERT INTO version_techniques(version_id, pos, technique) "
        "VALUES (?1, ?2, ?3)",
    [STMT_LATENCY_INSERT] =
        "INSERT INTO version_latencies(version_id, pos, device_class, "
        "  latency_ms) VALUES (?1, ?2, ?3, ?4)",
    [STMT_ENERGY_INSERT] =
        "INSERT INTO version_energies(version_id, pos, device_class, "
        "  energy_mj) VALUES (?1, ?2, ?3, ?4)",
    [STMT_EXIT_INSERT] =
        "INSERT INTO version_exits(version_id, pos, flops, accuracy) "
        "VALUES (?1, ?2, ?3, ?4)",
    [STMT_CONTEXT_INSERT] =
        "INSERT INTO version_context(version_id, pos, key, value) "
        "VALUES (?1, ?2, ?3, ?4)",
    [STMT_ACCEL_INSERT] =
        "INSERT INTO version_accelerators(version_id, pos, accelerator) "
        "VALUES (?1, ?2, ?3)",
    [STMT_TECH_LIST] =
        "SELECT technique FROM version_techniques WHERE version_id = ?1 "
        "ORDER BY pos",
    [STMT_LATENCY_LIST] =
        "SELECT device_class, latency_ms FROM version_latencies "
        "WHERE version_id = ?1 ORDER BY pos",
    [STMT_ENERGY_LIST] =
        "SELECT device_class, energy_mj FROM version_energies "
        "WHERE version_id = ?1 ORDER BY pos",
    [STMT_EXIT_LIST] =
        "SELECT flops, accuracy FROM version_exits WHERE version_id = ?1 "
        "ORDER BY pos",
    [STMT_CONTEXT_LIST] =
        "SELECT key, value FROM version_context WHERE version_id = ?1 "
        "ORDER BY pos",
    [STMT_ACCEL_LIST] =
        "SELECT accelerator FROM version_accelerators WHERE version_id = ?1 "
        "ORDER BY pos",
    [STMT_CROSS_LIST] =
        "SELECT ver.blob_digest, b.size_bytes FROM variants v "
        "JOIN versions ver ON ver.variant_id = v.id "
        "JOIN blobs b ON b.digest = ver.blob_digest "
        "WHERE v.family_id = ?1 AND v.id <> ?2 AND v.retired = 0 "
        "AND ver.version = "
        "  (SELECT max(version) FROM versions WHERE variant_id = v.id)",
    [STMT_DELTA_QUEUE] =
        "INSERT OR IGNORE INTO deltas(from_digest, to_digest, state, "
        "  created_s) VALUES (?1, ?2, 'pending', " NOW_S ")",
    [STMT_SNAP_VERSIONS] =
        "SELECT ver.id, v.name, ver.version, ver.blob_digest, "
        "  ver.size_bytes, ver.created_s, ver.format, ver.params, "
        "  ver.flops, ver.accuracy, ver.memory_bytes, ver.rollout_percent, "
        "  ver.paused, ver.retired, ver.weights_manifest, "
        "  (SELECT bg_size FROM blobs b WHERE b.digest = ver.blob_digest "
        "   AND b.bg_state = 'ready'), "
        /* 16: which lists to read; all (LISTS_ALL) when not known */
        "  coalesce(ver.lists, 63) "
        "FROM variants v JOIN versions ver ON ver.variant_id = v.id "
        "WHERE v.family_id = ?1 AND v.retired = 0 AND ver.retired = 0 "
        "ORDER BY v.name, ver.version DESC",
    [STMT_VARIANT_VERSIONS] =
        "SELECT ver.id, v.name, ver.version, ver.blob_digest, "
        "  ver.size_bytes, ver.created_s, ver.format, ver.params, "
        "  ver.flops, ver.accuracy, ver.memory_bytes, ver.rollout_percent, "
        "  ver.paused, ver.retired, ver.weights_manifest, NULL "
        "FROM variants v JOIN versions ver ON ver.variant_id = v.id "
        "WHERE v.family_id = ?1 AND v.name = ?2 ORDER BY ver.version",
    [STMT_SNAP_DELTAS] =
        "SELECT from_digest, size_bytes, tensor_size FROM deltas "
        "WHERE to_digest = ?1 AND state = 'ready' ORDER BY from_digest",
    [STMT_JOB_ZSTD] =
        "SELECT digest, size_bytes, zstd_attempts FROM blobs "
        "WHERE zstd_state = 'pending' AND zstd_retry_at_ms <= ?1 "
        "ORDER BY created_s, rowid LIMIT 1",
    [STMT_JOB_DELTA] =
        "SELECT from_digest, to_digest, attempts FROM deltas "
        "WHERE state = 'pending' AND retry_at_ms <= ?1 "
        "ORDER BY created_s, rowid LIMIT 1",
    [STMT_JOB_NEXT_RETRY] =
        "SELECT min(t) FROM ("
        "  SELECT min(retry_at_ms) AS t FROM deltas WHERE state = 'pending' "
        "  UNION ALL SELECT min(zstd_retry_at_ms) FROM blobs "
        "  WHERE zstd_state = 'pending')",
    [STMT_ZSTD_RETRY] =
        "UPDATE blobs SET zstd_attempts = ?2, zstd_retry_at_ms = ?3 "
        "WHERE digest = ?1",
    [STMT_DELTA_RETRY] =
        "UPDATE deltas SET attempts = ?3, retry_at_ms = ?4, error = ?5 "
        "WHERE from_digest = ?1 AND to_digest = ?2",
    [STMT_RETRY_FAILED_DELTAS] =
        "UPDATE deltas SET state = 'pending', attempts = 0, retry_at_ms = 0, "
        "  error = NULL WHERE state = 'failed'",
    [STMT_RETRY_WAITING_DELTAS] =
        "UPDATE deltas SET attempts = 0, retry_at_ms = 0 "
        "WHERE state = 'pending' AND retry_at_ms > 0",
    [STMT_RETRY_FAILED_ZSTD] =
        "UPDATE blobs SET zstd_state = 'pending', zstd_attempts = 0, "
        "  zstd_retry_at_ms = 0 WHERE zstd_state = 'failed'",
    [STMT_RETRY_WAITING_ZSTD] =
        "UPDATE blobs SET zstd_attempts = 0, zstd_retry_at_ms = 0 "
        "WHERE zstd_state = 'pending' AND zstd_retry_at_ms > 0",
    [STMT_ZSTD_DONE] =
        "UPDATE blobs SET zstd_state = ?2, zstd_size = ?3 WHERE digest = ?1",
    [STMT_DELTA_DONE] =
        "UPDATE deltas SET state = ?3, size_bytes = ?4, delta_digest = ?5, "
        "  error = ?6, tensor_size = ?7 "
        "WHERE from_digest = ?1 AND to_digest = ?2",
    [STMT_DELTA_COUNTS] =
        "SELECT coalesce(sum(state = 'pending'), 0), "
        "  coalesce(sum(state = 'ready'), 0), "
        "  coalesce(sum(CASE WHEN state = 'ready' THEN "
        "    coalesce(size_bytes, 0) + coalesce(tensor_size, 0) END), 0), "
        "  coalesce(sum(state = 'ready' AND tensor_size IS NOT NULL), 0) "
        "FROM deltas",
    [STMT_VERSIONS_RECENT] =
        "SELECT DISTINCT blob_digest FROM versions WHERE variant_id = ?1 "
        "AND version >= ?2",
    [STMT_BG_QUEUE] =
        "UPDATE blobs SET bg_state = 'pending' WHERE digest = ?1 "
        "AND bg_state IS NULL",
    [STMT_JOB_BG] =
        "SELECT digest FROM blobs WHERE bg_state = 'pending' "
        "ORDER BY created_s, rowid LIMIT 1",
    [STMT_BG_DONE] =
        "UPDATE blobs SET bg_state = ?2, bg_size = ?3 WHERE digest = ?1",
    [STMT_MANIFEST_OF] =
        "SELECT weights_manifest FROM versions WHERE blob_digest = ?1 "
        "AND weights_manifest IS NOT NULL ORDER BY id DESC LIMIT 1",
    [STMT_DELTA_SAME_FAMILY] =
        "SELECT 1 FROM versions a JOIN variants va ON va.id = a.variant_id "
        "JOIN versions b JOIN variants vb ON vb.id = b.variant_id "
        "WHERE a.blob_digest = ?1 AND b.blob_digest = ?2 "
        "AND va.family_id = vb.family_id LIMIT 1",
    [STMT_DELTA_DEMAND] =
        "INSERT OR IGNORE INTO deltas(from_digest, to_digest, state, "
        "  created_s, on_demand) VALUES (?1, ?2, 'pending', " NOW_S ", 1)",
    [STMT_DELTA_STATE] =
        "SELECT state FROM deltas WHERE from_digest = ?1 AND to_digest = ?2",
    [STMT_DELTA_TOUCH] =
        "UPDATE deltas SET last_served_s = " NOW_S " "
        "WHERE from_digest = ?1 AND to_digest = ?2 AND state = 'ready' "
        "AND coalesce(last_served_s, 0) < " NOW_S " - 60",
    [STMT_DELTA_LRU] =
        "SELECT from_digest, to_digest FROM deltas WHERE state = 'ready' "
        "AND NOT (from_digest = ?1 AND to_digest = ?2) "
        "ORDER BY coalesce(last_served_s, created_s), rowid LIMIT 1",
    [STMT_DELTA_DELETE] =
        "DELETE FROM deltas WHERE from_digest = ?1 AND to_digest = ?2",
    /* One writer at a time, as BEGIN IMMEDIATE gives on SQLite. */
    [STMT_WRITE_LOCK] = "SELECT 1",
    /* STMT_BLOB_GET, and on PostgreSQL claiming the row for the job. */
    [STMT_JOB_ZSTD_OF] =
        "SELECT size_bytes, zstd_state, zstd_size, zstd_retry_at_ms, "
        "  zstd_attempts FROM blobs WHERE digest = ?1",
    [STMT_GENERATION] =
        "SELECT generation FROM catalog_generation WHERE id = 1",
    [STMT_PING] = "SELECT 1",
    [STMT_MEASURED_LATENCY_CLASSES] =
        "SELECT device_class, count(*) FROM events WHERE version_id = ?1 "
        "AND kind = 'installed' AND device_class <> '' "
        "AND latency_ms IS NOT NULL GROUP BY device_class "
        "ORDER BY device_class LIMIT 16",
    [STMT_MEASURED_LATENCY_NTH] =
        "SELECT latency_ms FROM events WHERE version_id = ?1 "
        "AND kind = 'installed' AND device_class = ?2 "
        "AND latency_ms IS NOT NULL ORDER BY latency_ms LIMIT 1 OFFSET ?3",
    [STMT_MEASURED_ENERGY_CLASSES] =
        "SELECT device_class, count(*) FROM events WHERE version_id = ?1 "
        "AND kind = 'installed' AND device_class <> '' "
        "AND energy_mj IS NOT NULL GROUP BY device_class "
        "ORDER BY device_class LIMIT 16",
    [STMT_MEASURED_ENERGY_NTH] =
        "SELECT energy_mj FROM events WHERE version_id = ?1 "
        "AND kind = 'installed' AND device_class = ?2 "
        "AND energy_mj IS NOT NULL ORDER BY energy_mj LIMIT 1 OFFSET ?3",
    /* A version's statistics (store/trust.c), read on a read connection
     * by the versions listing and /metrics, on the writer by the pause
     * rule. */
    [STMT_EVENT_UES] =
        "SELECT count(DISTINCT ue), "
        "  count(DISTINCT CASE WHEN kind <> 'installed' THEN ue END), "
        "  count(DISTINCT CASE WHEN verified = 1 THEN ue END), "
        "  count(DISTINCT CASE WHEN verified = 1 AND kind <> 'installed' "
        "    THEN ue END) "
        "FROM events WHERE version_id = ?1",
    [STMT_EVENT_KINDS] =
        "SELECT kind, count(*) FROM events WHERE version_id = ?1 "
        "GROUP BY kind",
    [STMT_VARIANT_VERSION_IDS] =
        "SELECT ver.id FROM families f JOIN variants v ON v.family_id = f.id "
        "JOIN versions ver ON ver.variant_id = v.id "
        "WHERE f.name = ?1 AND f.deleted = 0 AND v.name = ?2 "
        "ORDER BY ver.version",
    [STMT_METRIC_VERSIONS] =
        "SELECT f.name, v.name, ver.version, ver.id, ver.paused "
        "FROM versions ver JOIN variants v ON v.id = ver.variant_id "
        "JOIN families f ON f.id = v.family_id "
        "WHERE ver.retired = 0 AND v.retired = 0 AND f.deleted = 0 "
        "AND EXISTS (SELECT 1 FROM events e WHERE e.version_id = ver.id) "
        "ORDER BY ver.id DESC LIMIT ?1",
};

/*
 * PostgreSQL's text of a statement where translating the SQLite text is
 * not enough. Worker jobs are claimed row by row with FOR UPDATE SKIP
 * LOCKED inside the job's transaction, so that the workers of several
 * daemons share one queue and each job is done once.
 */
static const char *const stmt_sql_pg[STMT_COUNT] = {
    /* No boolean sums, no rowid, no JOIN without ON in PostgreSQL. */
    [STMT_DELTA_COUNTS] =
        "SELECT count(*) FILTER (WHERE state = 'pending'), "
        "  count(*) FILTER (WHERE state = 'ready'), "
        "  coalesce(sum(CASE WHEN state = 'ready' THEN "
        "    coalesce(size_bytes, 0) + coalesce(tensor_size, 0) END), 0), "
        "  count(*) FILTER (WHERE state = 'ready' AND tensor_size IS NOT NULL) "
        "FROM deltas",
    [STMT_JOB_BG] =
        "SELECT digest FROM blobs WHERE bg_state = 'pending' "
        "ORDER BY created_s, digest LIMIT 1 FOR UPDATE SKIP LOCKED",
    [STMT_DELTA_SAME_FAMILY] =
        "SELECT 1 FROM versions a JOIN variants va ON va.id = a.variant_id "
        "CROSS JOIN versions b JOIN variants vb ON vb.id = b.variant_id "
        "WHERE a.blob_digest = ?1 AND b.blob_digest = ?2 "
        "AND va.family_id = vb.family_id LIMIT 1",
    [STMT_DELTA_LRU] =
        "SELECT from_digest, to_digest FROM deltas WHERE state = 'ready' "
        "AND NOT (from_digest = ?1 AND to_digest = ?2) "
        "ORDER BY coalesce(last_served_s, created_s), from_digest, to_digest "
        "LIMIT 1",
    /* A snapshot's reads see one state, on a primary or a standby. */
    [STMT_READ_BEGIN] = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    [STMT_WRITE_LOCK] = "SELECT pg_advisory_xact_lock(7469001)",
    [STMT_JOB_ZSTD] =
        "SELECT digest, size_bytes, zstd_attempts FROM blobs "
        "WHERE zstd_state = 'pending' AND zstd_retry_at_ms <= ?1 "
        "ORDER BY created_s, digest LIMIT 1 FOR UPDATE SKIP LOCKED",
    [STMT_JOB_DELTA] =
        "SELECT from_digest, to_digest, attempts FROM deltas "
        "WHERE state = 'pending' AND retry_at_ms <= ?1 "
        "ORDER BY created_s, from_digest, to_digest LIMIT 1 "
        "FOR UPDATE SKIP LOCKED",
    [STMT_JOB_ZSTD_OF] =
        "SELECT size_bytes, zstd_state, zstd_size, zstd_retry_at_ms, "
        "  zstd_attempts FROM blobs WHERE digest = ?1 "
        "FOR UPDATE SKIP LOCKED",
};

/* This thread's connection between store_db_lock and store_db_unlock
 * (NULL: the write connection). */
static _Thread_local struct store_conn *this_conn;

/* "This thread's last failing call" (store.h): one buffer per thread. */
static _Thread_local char last_error[STORE_ERR_SIZE];

void store_options_default(struct store_options *out)
{
    memset(out, 0, sizeof(*out));
    out->busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS;
    out->run_worker = true;
    out->delta_level = DEFAULT_LEVEL;
    out->compress_level = DEFAULT_LEVEL;
    out->delta_max_fraction = DEFAULT_DELTA_MAX_FRACTION;
    out->delta_cross_variants = true;
    out->delta_cross_max_bytes = DEFAULT_CROSS_MAX_BYTES;
    out->catalog_poll_ms = 1000;
    out->delta_versions = DEFAULT_DELTA_VERSIONS;
    out->delta_storage_max_bytes = DEFAULT_DELTA_STORAGE_BYTES;
    out->tensor_coding = true;
    out->retry_base_ms = DEFAULT_RETRY_BASE_MS;
    out->retry_max_ms = DEFAULT_RETRY_MAX_MS;
    out->retry_attempts = DEFAULT_RETRY_ATTEMPTS;
    out->rollout_max_failure_share = 0.2;
    out->rollout_min_reports = 20;
    out->pause_needs_receipt = true;
    out->latency_min_reports = 5;
    out->read_connections = DEFAULT_READ_CONNECTIONS;
}

const char *store_errmsg(const struct store *st)
{
    (void)st;
    return last_error[0] ? last_error : "no error";
}

void store_err_text(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
}

enum store_status store_err_os(struct store *st, const char *op,
                               const char *path, int err)
{
    store_err_text("%s %s: %s", op, path ? path : "", strerror(err));
    if (st)
        atomic_fetch_add(&st->errors, 1);
    if (err == ENOSPC || err == EDQUOT)
        return STORE_NO_SPACE;
    if (err == ENOMEM)
        return STORE_NO_MEMORY;
    return STORE_IO_ERROR;
}

/* This thread's connection's handle and statements. */
static struct db *cur_db(struct store *st)
{
    return this_conn ? this_conn->db : st->db;
}

static struct db_stmt **cur_stmts(struct store *st)
{
    return this_conn ? this_conn->stmt : st->stmt;
}

const char *store_stmt_sql(enum stmt_id id)
{
    return stmt_sql[id];
}

const char *store_stmt_sql_for(const struct db *db, enum stmt_id id)
{
    if (db_kind(db) == DB_POSTGRESQL && stmt_sql_pg[id])
        return stmt_sql_pg[id];
    return stmt_sql[id];
}

enum store_status store_err_db(struct store *st, const char *op, int rc)
{
    return store_err_conn(st, st ? cur_db(st) : NULL, op, rc);
}

enum store_status store_err_conn(struct store *st, struct db *db,
                                 const char *op, int rc)
{
    (void)rc;
    store_err_text("%s: %s", op, db ? db_errmsg(db) : "no catalog");
    if (!st)
        return STORE_DB_ERROR;
    atomic_fetch_add(&st->errors, 1);
    switch (db ? db_errclass(db) : DB_ERR_OTHER) {
    case DB_ERR_FULL:
        return STORE_NO_SPACE;
    case DB_ERR_NOMEM:
        return STORE_NO_MEMORY;
    case DB_ERR_UNAVAILABLE:
        atomic_store(&st->catalog_down, true);
        atomic_fetch_add(&st->catalog_unavailable, 1);
        return STORE_UNAVAILABLE;
    default:
        return STORE_DB_ERROR;
    }
}

void store_db_lock(struct store *st, enum store_role role)
{
    struct store_conn *c = NULL;

    if (role == STORE_ROLE_JOB && st->job.conn.db)
        c = &st->job.conn;
    else if (role == STORE_ROLE_WATCH && st->watch.conn.db)
        c = &st->watch.conn;
    /* Those are one thread's own; the writer is shared. */
    if (!c)
        pthread_mutex_lock(&st->db_mu);
    this_conn = c;
}

void store_db_unlock(struct store *st)
{
    struct store_conn *c = this_conn;

    this_conn = NULL;
    if (!c)
        pthread_mutex_unlock(&st->db_mu);
}

struct db_stmt *store_stmt(struct store *st, enum stmt_id id)
{
    struct db_stmt *s = cur_stmts(st)[id];

    db_reset(s);
    return s;
}

enum store_status store_stmt_run(struct store *st, enum stmt_id id,
                                 const char *op)
{
    struct db_stmt *s = cur_stmts(st)[id];
    int rc = db_step(s);
    enum store_status status = STORE_OK;

    if (rc != DB_DONE && rc != DB_ROW)
        status = store_err_db(st, op, rc);
    db_reset(s);
    return status;
}

enum store_status store_tx_begin(struct store *st)
{
    enum store_status rc;

    (void)store_stmt(st, STMT_BEGIN);
    rc = store_stmt_run(st, STMT_BEGIN, "BEGIN IMMEDIATE");
    if (rc == STORE_OK && db_kind(cur_db(st)) == DB_POSTGRESQL) {
        (void)store_stmt(st, STMT_WRITE_LOCK);
        rc = store_stmt_run(st, STMT_WRITE_LOCK, "taking the write lock");
        if (rc != STORE_OK)
            store_tx_rollback(st);
    }
    return rc;
}

enum store_status store_tx_begin_job(struct store *st)
{
    (void)store_stmt(st, STMT_BEGIN);
    return store_stmt_run(st, STMT_BEGIN, "BEGIN (job)");
}

/*
 * PostgreSQL: the catalog generation as this transaction's triggers left
 * it, 0 when unknown. Noted after the commit, it keeps the watcher from
 * reading our own write as another daemon's (the writer moves the local
 * generation itself). Not with a separate read server: a replica may not
 * have the write yet when the writer's next select reads it, and the
 * watcher's later look is what corrects that.
 */
static uint64_t own_generation(struct store *st)
{
    struct db_stmt *s;
    uint64_t gen = 0;

    if (db_kind(cur_db(st)) != DB_POSTGRESQL || st->opt.catalog_read_url[0])
        return 0;
    s = store_stmt(st, STMT_GENERATION);
    if (db_step(s) == DB_ROW)
        gen = (uint64_t)db_column_int64(s, 0);
    db_reset(s);
    return gen;
}

void store_generation_seen(struct store *st, uint64_t gen, bool *out_moved)
{
    pthread_mutex_lock(&st->watch_mu);
    *out_moved = gen > st->db_generation && st->db_generation != 0;
    if (gen > st->db_generation)
        st->db_generation = gen;
    pthread_mutex_unlock(&st->watch_mu);
}

enum store_status store_tx_commit(struct store *st)
{
    enum store_status rc;
    uint64_t gen = own_generation(st);
    bool moved;

    (void)store_stmt(st, STMT_COMMIT);
    rc = store_stmt_run(st, STMT_COMMIT, "COMMIT");
    if (rc == STORE_OK) {
        atomic_store(&st->catalog_down, false);
        if (gen)
            store_generation_seen(st, gen, &moved);
    }
    return rc;
}

void store_tx_rollback(struct store *st)
{
    struct db_stmt *s = store_stmt(st, STMT_ROLLBACK);

    if (db_in_transaction(cur_db(st)))
        (void)db_step(s);
    db_reset(s);
}

void store_generation_bump(struct store *st)
{
    pthread_mutex_lock(&st->cache_mu);
    st->generation++;
    pthread_mutex_unlock(&st->cache_mu);
}

bool store_catalog_is_down(struct store *st)
{
    return atomic_load(&st->catalog_down);
}

bool store_is_postgresql(const struct store *st)
{
    return st->db && db_kind(st->db) == DB_POSTGRESQL;
}

unsigned store_retry_after_s(struct store *st)
{
    int64_t ms = 0;

    pthread_mutex_lock(&st->db_mu);
    if (st->db)
        ms = db_retry_after_ms(st->db);
    pthread_mutex_unlock(&st->db_mu);
    return ms <= 1000 ? 1 : (unsigned)((ms + 999) / 1000);
}

/* ---- open ------------------------------------------------------------ */

static enum store_status make_dir(struct store *st, const char *path)
{
    if (mkdir(path, STORE_DIR_MODE) != 0 && errno != EEXIST)
        return store_err_os(st, "mkdir", path, errno);
    return STORE_OK;
}

static enum store_status make_dirs(struct store *st)
{
    static const char *const subdirs[] = { "", "/blobs", "/blobs/sha256",
                                           "/deltas", "/tmp" };
    char path[STORE_PATH_SIZE];
    enum store_status rc;

    for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
        snprintf(path, sizeof(path), "%s%s", st->dir, subdirs[i]);
        rc = make_dir(st, path);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

static enum store_status exec_sql(struct store *st, const char *sql,
                                  const char *op)
{
    return db_exec(st->db, sql) == 0 ? STORE_OK : store_err_db(st, op, 0);
}

/* One integer from a one-off query (pragmas, the schema version). */
static enum store_status query_int(struct store *st, const char *sql,
                                   int64_t *out)
{
    struct db_stmt *s = NULL;
    enum store_status status = STORE_OK;
    int rc;

    if (db_prepare(st->db, sql, &s) != 0)
        return store_err_db(st, sql, 0);
    rc = db_step(s);
    if (rc == DB_ROW)
        *out = db_column_int64(s, 0);
    else if (rc == DB_DONE)
        *out = 0;
    else
        status = store_err_db(st, sql, rc);
    db_finalize(s);
    return status;
}

static enum store_status lite_fail(struct store *st, sqlite3 *lite,
                                   const char *op)
{
    store_err_text("%s: %s", op, sqlite3_errmsg(lite));
    atomic_fetch_add(&st->errors, 1);
    return STORE_DB_ERROR;
}

static enum store_status set_pragmas(struct store *st)
{
    sqlite3 *lite = db_sqlite(st->db);
    sqlite3_stmt *s = NULL;
    enum store_status status = STORE_OK;
    int rc;

    rc = sqlite3_busy_timeout(lite, st->opt.busy_timeout_ms);
    if (rc != SQLITE_OK)
        return lite_fail(st, lite, "busy_timeout");
    rc = sqlite3_prepare_v2(lite, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return lite_fail(st, lite, "PRAGMA journal_mode");
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        status = lite_fail(st, lite, "PRAGMA journal_mode");
    } else if (strcmp((const char *)sqlite3_column_text(s, 0), "wal") != 0) {
        store_err_text("PRAGMA journal_mode: WAL refused (%s)",
                       (const char *)sqlite3_column_text(s, 0));
        atomic_fetch_add(&st->errors, 1);
        status = STORE_DB_ERROR;
    }
    sqlite3_finalize(s);
    if (status != STORE_OK)
        return status;
    /*
     * synchronous = FULL, not NORMAL: in WAL mode NORMAL stays consistent
     * but may lose the last commits on power loss, and an admin's 201 for
     * a publish must survive it. Writes are rare, so the extra fsync per
     * commit costs nothing that matters.
     */
    return exec_sql(st,
                    "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
                    "pragmas");
}

/*
 * The schema version: SQLite's PRAGMA user_version; on PostgreSQL a
 * one-row table, read and written inside the migration's transaction.
 */
static enum store_status schema_version(struct store *st, int64_t *out)
{
    if (db_kind(st->db) == DB_SQLITE)
        return query_int(st, "PRAGMA user_version", out);
    return query_int(st, "SELECT version FROM modeld_schema", out);
}

static enum store_status migrate_sqlite(struct store *st, int64_t version)
{
    char sql[64];
    enum store_status rc;

    for (size_t i = (size_t)version; i < ARRAY_SIZE(migrations); i++) {
        rc = exec_sql(st, "BEGIN IMMEDIATE", "migration BEGIN");
        if (rc != STORE_OK)
            return rc;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", i + 1);
        rc = exec_sql(st, migrations[i], "migration");
        if (rc == STORE_OK)
            rc = exec_sql(st, sql, "migration user_version");
        if (rc == STORE_OK)
            rc = exec_sql(st, "COMMIT", "migration COMMIT");
        if (rc != STORE_OK) {
            (void)db_exec(st->db, "ROLLBACK");
            return rc;
        }
    }
    return STORE_OK;
}

/* Checks that version is one this build can migrate from. */
static enum store_status version_known(struct store *st, int64_t version)
{
    if (version < 0 || (uint64_t)version > ARRAY_SIZE(migrations)) {
        store_err_text("the catalog has schema version %lld; this build "
                       "knows up to %zu",
                       (long long)version, ARRAY_SIZE(migrations));
        atomic_fetch_add(&st->errors, 1);
        return STORE_DB_ERROR;
    }
    return STORE_OK;
}

/*
 * PostgreSQL: all pending steps in one transaction (PostgreSQL's DDL is
 * transactional), under an advisory lock so that daemons starting
 * together migrate once.
 */
static enum store_status migrate_postgresql(struct store *st)
{
    char sql[96];
    int64_t version = 0;
    enum store_status rc;

    rc = exec_sql(st,
                  "BEGIN; SELECT pg_advisory_xact_lock(7469000);"
                  "CREATE TABLE IF NOT EXISTS modeld_schema ("
                  "  version INTEGER NOT NULL);"
                  "INSERT INTO modeld_schema(version) SELECT 0 "
                  "WHERE NOT EXISTS (SELECT 1 FROM modeld_schema);",
                  "migration BEGIN");
    if (rc == STORE_OK)
        rc = schema_version(st, &version);
    if (rc == STORE_OK)
        rc = version_known(st, version);
    for (size_t i = (size_t)version;
         rc == STORE_OK && i < ARRAY_SIZE(migrations); i++) {
        rc = exec_sql(st, migrations_pg[i] ? migrations_pg[i]
                                           : migrations[i],
                      "migration");
        snprintf(sql, sizeof(sql), "UPDATE modeld_schema SET version = %zu",
                 i + 1);
        if (rc == STORE_OK)
            rc = exec_sql(st, sql, "migration version");
    }
    if (rc == STORE_OK)
        rc = exec_sql(st, "COMMIT", "migration COMMIT");
    if (rc != STORE_OK)
        (void)db_exec(st->db, "ROLLBACK");
    return rc;
}

static enum store_status migrate(struct store *st)
{
    int64_t version = 0;
    enum store_status rc;

    if (db_kind(st->db) == DB_POSTGRESQL)
        return migrate_postgresql(st);
    rc = schema_version(st, &version);
    if (rc == STORE_OK)
        rc = version_known(st, version);
    if (rc == STORE_OK)
        rc = migrate_sqlite(st, version);
    return rc;
}

/* A read-only store changes nothing, so the schema must already be this
 * build's. */
static enum store_status check_schema(struct store *st)
{
    int64_t version = 0;
    enum store_status rc;

    if (db_kind(st->db) == DB_SQLITE) {
        if (sqlite3_busy_timeout(db_sqlite(st->db),
                                 st->opt.busy_timeout_ms) != SQLITE_OK)
            return lite_fail(st, db_sqlite(st->db), "busy_timeout");
    }
    rc = schema_version(st, &version);
    if (rc != STORE_OK)
        return rc;
    if ((uint64_t)version != ARRAY_SIZE(migrations)) {
        store_err_text("catalog.db has schema version %lld, this build "
                       "reads %zu; start the daemon once to migrate it",
                       (long long)version, ARRAY_SIZE(migrations));
        return STORE_DB_ERROR;
    }
    return STORE_OK;
}

/* Moves the start-up epoch on, durably, before anything is served: every
 * generation of this run is above every generation of the runs before. */
static enum store_status next_epoch(struct store *st)
{
    int64_t epoch = 0;
    enum store_status rc = exec_sql(st,
                                    "BEGIN IMMEDIATE;"
                                    "UPDATE store_epoch SET epoch = epoch + 1;",
                                    "epoch");

    if (rc == STORE_OK)
        rc = query_int(st, "SELECT epoch FROM store_epoch", &epoch);
    if (rc == STORE_OK)
        rc = exec_sql(st, "COMMIT", "epoch COMMIT");
    if (rc != STORE_OK) {
        (void)db_exec(st->db, "ROLLBACK");
        return rc;
    }
    st->generation = (uint64_t)epoch << 32;
    return STORE_OK;
}

/* Prepares every statement on c's connection, in its dialect. */
static enum store_status prepare_conn(struct store *st, struct db *db,
                                      struct db_stmt **stmt)
{
    for (size_t i = 0; i < STMT_COUNT; i++) {
        const char *sql = store_stmt_sql_for(db, (enum stmt_id)i);

        if (db_prepare(db, sql, &stmt[i]) != 0) {
            store_err_text("prepare: %s", db_errmsg(db));
            atomic_fetch_add(&st->errors, 1);
            return STORE_DB_ERROR;
        }
    }
    return STORE_OK;
}

static void close_conn(struct db *db, struct db_stmt **stmt)
{
    for (size_t i = 0; i < STMT_COUNT; i++) {
        db_finalize(stmt[i]);
        stmt[i] = NULL;
    }
    db_close(db);
}

/* The delta counters' starting values: the one count of the table, at
 * open. */
static enum store_status count_deltas(struct store *st)
{
    struct db_stmt *s = store_stmt(st, STMT_DELTA_COUNTS);
    enum store_status rc = STORE_OK;
    int src = db_step(s);

    if (src == DB_ROW) {
        atomic_store(&st->deltas_pending_now, db_column_int64(s, 0));
        atomic_store(&st->deltas_ready_now, db_column_int64(s, 1));
        atomic_store(&st->delta_storage_bytes_now,
                     db_column_int64(s, 2));
        atomic_store(&st->deltas_tensor_now, db_column_int64(s, 3));
    } else {
        rc = store_err_db(st, "counting deltas", src);
    }
    db_reset(s);
    return rc;
}

/* A further PostgreSQL connection for one thread, with its statements. */
static enum store_status open_conn(struct store *st, const char *url,
                                   struct store_reader *r)
{
    char err[STORE_ERR_SIZE];

    r->conn.stmt = r->stmt;
    if (db_open_postgresql(url, &r->conn.db, err, sizeof(err)) != 0) {
        store_err_text("%s", err);
        atomic_fetch_add(&st->errors, 1);
        return STORE_UNAVAILABLE;
    }
    return prepare_conn(st, r->conn.db, r->stmt);
}

static enum store_status open_postgresql(struct store *st)
{
    const char *read_url = st->opt.catalog_read_url[0]
                               ? st->opt.catalog_read_url
                               : st->opt.catalog_url;
    char err[STORE_ERR_SIZE];
    enum store_status rc;

    if (st->opt.read_only) {
        store_err_text("a read-only store needs the SQLite catalog");
        return STORE_DB_ERROR;
    }
    if (db_open_postgresql(st->opt.catalog_url, &st->db, err,
                           sizeof(err)) != 0) {
        store_err_text("%s", err);
        atomic_fetch_add(&st->errors, 1);
        return STORE_UNAVAILABLE;
    }
    st->writer.db = st->db;
    rc = migrate(st);
    if (rc == STORE_OK)
        rc = next_epoch(st);
    if (rc == STORE_OK)
        rc = prepare_conn(st, st->db, st->stmt);
    if (rc == STORE_OK)
        rc = store_trust_prepare(st);
    if (rc == STORE_OK)
        rc = store_receipt_key_load(st);
    if (rc == STORE_OK && st->opt.run_worker)
        rc = open_conn(st, st->opt.catalog_url, &st->job);
    if (rc == STORE_OK)
        rc = open_conn(st, read_url, &st->watch);
    if (rc == STORE_OK)
        rc = count_deltas(st);
    if (rc == STORE_OK)
        rc = store_readers_open(st, "");
    return rc;
}


static enum store_status open_db(struct store *st)
{
    char path[STORE_PATH_SIZE];
    char err[STORE_ERR_SIZE];
    enum store_status rc;

    if (st->opt.catalog_url[0]) {
        if (!db_url_is_postgresql(st->opt.catalog_url)) {
            store_err_text("catalog_url must start with postgresql://");
            return STORE_DB_ERROR;
        }
        return open_postgresql(st);
    }
    snprintf(path, sizeof(path), "%s/catalog.db", st->dir);
    if (db_open_sqlite(path, st->opt.read_only, &st->db, err,
                       sizeof(err)) != 0) {
        st->writer.db = st->db;
        store_err_text("%s", err);
        atomic_fetch_add(&st->errors, 1);
        return STORE_DB_ERROR;
    }
    st->writer.db = st->db;
    if (st->opt.read_only) {
        rc = check_schema(st);
    } else {
        rc = set_pragmas(st);
        if (rc == STORE_OK)
            rc = migrate(st);
        if (rc == STORE_OK)
            rc = next_epoch(st);
    }
    if (rc == STORE_OK)
        rc = prepare_conn(st, st->db, st->stmt);
    if (rc == STORE_OK)
        rc = store_trust_prepare(st);
    if (rc == STORE_OK)
        rc = store_receipt_key_load(st);
    if (rc == STORE_OK)
        rc = count_deltas(st);
    /* The readers open once the writer has made the file WAL. */
    if (rc == STORE_OK && !st->opt.read_only)
        rc = store_readers_open(st, path);
    return rc;
}

static struct store *store_new(const char *dir,
                               const struct store_options *opt)
{
    struct store *st = calloc(1, sizeof(*st));
    pthread_condattr_t attr;

    if (!st)
        return NULL;
    st->lock_fd = -1;
    st->dir = strdup(dir);
    if (!st->dir) {
        free(st);
        return NULL;
    }
    if (opt)
        st->opt = *opt;
    else
        store_options_default(&st->opt);
    pthread_mutex_init(&st->db_mu, NULL);
    pthread_mutex_init(&st->demand_mu, NULL);
    pthread_mutex_init(&st->watch_mu, NULL);
    pthread_cond_init(&st->watch_cv, NULL);
    atomic_init(&st->catalog_down, false);
    atomic_init(&st->catalog_unavailable, 0);
    atomic_init(&st->catalog_refreshes, 0);
    pthread_mutex_init(&st->readers_mu, NULL);
    pthread_cond_init(&st->readers_cv, NULL);
    pthread_cond_init(&st->flight_cv, NULL);
    st->writer.stmt = st->stmt;
    pthread_mutex_init(&st->cache_mu, NULL);
    pthread_mutex_init(&st->work_mu, NULL);
    pthread_cond_init(&st->work_cv, NULL);
    /* store_worker_wait_idle measures its timeout on the monotonic clock. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st->idle_cv, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&st->tmp_counter, 0);
    atomic_init(&st->deltas_made, 0);
    atomic_init(&st->deltas_failed, 0);
    atomic_init(&st->deltas_rejected, 0);
    atomic_init(&st->compressed_made, 0);
    atomic_init(&st->errors, 0);
    atomic_init(&st->snapshot_builds, 0);
    atomic_init(&st->job_retries, 0);
    atomic_init(&st->jobs_gave_up, 0);
    atomic_init(&st->deltas_pending_now, 0);
    atomic_init(&st->deltas_ready_now, 0);
    atomic_init(&st->delta_storage_bytes_now, 0);
    atomic_init(&st->deltas_tensor_now, 0);
    atomic_init(&st->stop, false);
    st->generation = 1;
    return st;
}

/* One daemon per data directory: a second one would empty tmp/ under the
 * first one's uploads. The kernel drops the lock when its process dies,
 * even by SIGKILL. */
static enum store_status lock_dir(struct store *st)
{
    char path[STORE_PATH_SIZE];

    snprintf(path, sizeof(path), "%s/lock", st->dir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0)
        return store_err_os(st, "opening", path, errno);
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            store_err_text("data directory %s is in use by another modeld",
                           st->dir);
            return STORE_IO_ERROR;
        }
        return store_err_os(st, "locking", path, errno);
    }
    return STORE_OK;
}

enum store_status store_open(const char *dir, const struct store_options *opt,
                             struct store **out)
{
    struct store *st = NULL;
    enum store_status rc;

    /* Room for DIR/blobs/sha256/ab/<hex>.zst and DIR/deltas/<a>-<b>. */
    if (!dir || strlen(dir) > STORE_PATH_SIZE - 256) {
        store_err_text("data directory path too long");
        return STORE_IO_ERROR;
    }
    st = store_new(dir, opt);
    if (!st) {
        store_err_text("out of memory opening %s", dir);
        return STORE_NO_MEMORY;
    }
    if (st->opt.read_only) {
        rc = open_db(st);
    } else {
        rc = make_dirs(st);
        if (rc == STORE_OK)
            rc = lock_dir(st);
        if (rc == STORE_OK)
            rc = store_tmp_clean(st);
        if (rc == STORE_OK)
            rc = open_db(st);
        if (rc == STORE_OK && st->opt.run_worker)
            rc = store_worker_start(st);
        if (rc == STORE_OK && store_is_postgresql(st))
            rc = store_watch_start(st);
    }
    if (rc != STORE_OK) {
        store_close(st);
        return rc;
    }
    *out = st;
    return STORE_OK;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    store_watch_stop(st);
    store_worker_stop(st);
    store_readers_close(st);
    close_conn(st->watch.conn.db, st->watch.stmt);
    close_conn(st->job.conn.db, st->job.stmt);
    store_trust_finalize(st);
    store_receipt_key_free(st);
    close_conn(st->db, st->stmt);
    pthread_mutex_lock(&st->cache_mu);
    store_cache_clear(st);
    pthread_mutex_unlock(&st->cache_mu);
    free(st->cache);
    pthread_cond_destroy(&st->idle_cv);
    pthread_cond_destroy(&st->work_cv);
    pthread_mutex_destroy(&st->work_mu);
    pthread_mutex_destroy(&st->cache_mu);
    pthread_cond_destroy(&st->watch_cv);
    pthread_mutex_destroy(&st->watch_mu);
    pthread_cond_destroy(&st->flight_cv);
    pthread_cond_destroy(&st->readers_cv);
    pthread_mutex_destroy(&st->readers_mu);
    pthread_mutex_destroy(&st->db_mu);
    pthread_mutex_destroy(&st->demand_mu);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    free(st->dir);
    free(st);
}

static uint64_t nonnegative(int64_t v)
{
    return v > 0 ? (uint64_t)v : 0;
}

/* Counters only: a scrape takes no lock and reads no table. */
void store_stats_get(struct store *st, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->deltas_made = atomic_load(&st->deltas_made);
    out->deltas_failed = atomic_load(&st->deltas_failed);
    out->deltas_rejected = atomic_load(&st->deltas_rejected);
    out->compressed_made = atomic_load(&st->compressed_made);
    out->deltas_pending = nonnegative(atomic_load(&st->deltas_pending_now));
    out->deltas_ready = nonnegative(atomic_load(&st->deltas_ready_now));
    out->job_retries = atomic_load(&st->job_retries);
    out->jobs_gave_up = atomic_load(&st->jobs_gave_up);
    out->deltas_evicted = atomic_load(&st->deltas_evicted);
    out->deltas_on_demand = atomic_load(&st->deltas_on_demand);
    out->bg_made = atomic_load(&st->bg_made);
    out->delta_storage_max_bytes = st->opt.delta_storage_max_bytes;
    out->delta_storage_bytes =
        nonnegative(atomic_load(&st->delta_storage_bytes_now));
    out->deltas_tensor_ready = nonnegative(atomic_load(&st->deltas_tensor_now));
    out->errors = atomic_load(&st->errors);
    out->catalog_down = atomic_load(&st->catalog_down);
    out->catalog_unavailable = atomic_load(&st->catalog_unavailable);
    out->catalog_refreshes = atomic_load(&st->catalog_refreshes);
    out->snapshot_builds = atomic_load(&st->snapshot_builds);
    pthread_mutex_lock(&st->cache_mu);
    out->generation = st->generation;
    pthread_mutex_unlock(&st->cache_mu);
}
