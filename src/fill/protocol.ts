/**
 * What the front (construct/front.ts) and `mirror-synth fill` agree on: the headers between them,
 * and the fill's defaults, which the cache pod's fill container runs with and the front's read
 * timeout is derived from. Imports nothing, so the CLI's help text reads the defaults from here.
 */

/**
 * `mirror-synth fill`'s bounds (its options; README "Command line"): the clients it feeds at once,
 * every digest together, and the digests it fetches at once (one more of either is answered 503,
 * which the front turns into its fallback 404: the node pulls from the upstream); how long a client
 * may take no byte before it is cut; and the free space the spool leaves on its filesystem, a share
 * of the filesystem (`10%`, what the front's cache keeps free) or a size (`2Gi`): a transfer that
 * does not fit above it is answered 503 too. The cache pod's fill container runs with them.
 */
export const FILL_DEFAULTS = {
  maxClients: 1024,
  maxTransfers: 256,
  clientTimeoutSeconds: 60,
  spoolMinFree: '10%',
  /** How often `--peers-srv` looks the replicas up again. */
  peersSrvIntervalSeconds: 10,
} as const;

/** A transfer from Distribution that sends the fill nothing for this long is cut (FillOptions.idleTimeoutMs). */
export const FILL_IDLE_TIMEOUT_SECONDS = 300;
/**
 * How long the front waits on the streaming fill for bytes: longer than the fill's own idle
 * timeout, so a stalled transfer is ended by the fill (which tells every waiter), not by nginx.
 */
export const FRONT_FILL_READ_TIMEOUT_SECONDS = FILL_IDLE_TIMEOUT_SECONDS + 30;

/**
 * Headers between the front and mirror-synth fill (`spec.fill: streaming`). A replica's fill sets
 * FILL_PEER_HEADER on what it asks another replica's front for (serve it from your own
 * Distribution); the front sets FILL_CLIENT_HEADER to the address the request came from, replacing
 * any a client sent, and the fill honours FILL_PEER_HEADER only from a replica's address.
 */
export const FILL_PEER_HEADER = 'X-Mirror-Synth-Peer';
export const FILL_CLIENT_HEADER = 'X-Mirror-Synth-Client';
