// The stats daemon's and the influx forwarder's bounds and defaults, in a module of their
// own so that `dromedary --help` can show them without loading the daemons.

/** `dromedary stats-daemon` (each printed by its --help). */
export const STATS_DEFAULTS = {
  intervalSeconds: 10,
  maxUnikernels: 4096,
  maxSubscribers: 64,
  maxConnections: 128,
  /** (netif, tap) pairs per unikernel: Solo5's manifest holds at most 64 devices */
  maxNics: 64,
  /** requests are tiny (a Stats_add with 64 taps is < 4 KiB) */
  maxFrame: 64 * 1024,
  /** output queued for a subscriber that does not read; over it the subscriber is dropped */
  maxPendingBytes: 4 * 1024 * 1024,
} as const;

/** Concurrent HTTP connections to /metrics; further ones are refused. */
export const MAX_METRICS_CONNECTIONS = 16;

/** `dromedary influx`: the default port of --influx (Telegraf's socket_listener). */
export const DEFAULT_INFLUX_PORT = 8094;
/** Line protocol queued for a TCP peer that does not read; over it messages are dropped. */
export const MAX_INFLUX_QUEUED_BYTES = 1024 * 1024;
