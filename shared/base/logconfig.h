/* logconfig.h — what a daemon's `-l PATH` means.
 *
 * Nodepool's daemons take `-l` as a Python logging configuration (fileConfig
 * INI or dictConfig YAML), and their unit files pass one. poold's `-l` is a
 * log file to append to, so a copied unit file would append log lines to the
 * operator's logging configuration. A PATH whose content is a Python logging
 * configuration is therefore read, never written: the daemon logs to the
 * file its first file handler names (or to stderr when it has none). Any
 * other PATH (missing, empty, or holding log lines) is poold's log file. */
#pragma once

/* Decide where to log for `-l PATH`. On success returns 0 with *ret_logfile
 * (caller frees; NULL means stderr) and *ret_note (caller frees; NULL, or a
 * line for the log saying how PATH was read). -errno when PATH exists but
 * cannot be read. */
int logconfig_resolve(const char *path, char **ret_logfile, char **ret_note);
