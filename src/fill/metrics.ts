/**
 * Prometheus metrics of the streaming fill (`mirror-synth fill --metrics-listen`), on a registry
 * of their own (a test may run a fill and a controller in one process). Labels are few and fixed:
 * no digest, repository or client address.
 */
import { Counter, Gauge, Registry } from 'prom-client';

/**
 * How a digest request was served, one count per request:
 * - `hit`: a blob Distribution served from its storage;
 * - `miss`: a blob Distribution fetched from the upstream;
 * - `distribution`: a manifest by digest from Distribution, which answers it alike whether it had
 *   it or fetched it;
 * - `peer`: fetched from the replica that owns the digest;
 * - `coalesced`: joined a transfer another request started (no fetch of its own);
 * - `fallback`: answered an error the front turns into the node's fallback: refused at a bound
 *   (503), or the transfer failed before its body;
 * - `pass_through`: not a digest GET (a HEAD, the readiness probe), sent on to Distribution as is.
 */
export const FILL_RESULTS = ['hit', 'miss', 'distribution', 'peer', 'coalesced', 'fallback', 'pass_through'] as const;
export type FillResult = (typeof FILL_RESULTS)[number];
/** Where a transfer's bytes come from: this pod's Distribution, or the owner replica's front. */
export const FILL_SOURCES = ['distribution', 'replica'] as const;
export type FillSource = (typeof FILL_SOURCES)[number];
/** Why a client was answered 503: --max-clients, --max-transfers, or no room in the spool. */
export const FILL_REFUSALS = ['max_clients', 'max_transfers', 'spool_full'] as const;
export type FillRefusal = (typeof FILL_REFUSALS)[number];

export const FILL_METRIC_PREFIX = 'registry_mirror_fill_';

export interface FillMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'result'>;
  readonly transfers: Counter<'source'>;
  readonly fetchedBytes: Counter<'source'>;
  readonly sentBytes: Counter;
  readonly verificationFailures: Counter;
  readonly ownerFailovers: Counter;
  readonly refused: Counter<'reason'>;
  readonly clientsCut: Counter;
}

/** What the gauges read at each scrape. */
export interface FillGauges {
  readonly transfersInFlight: () => number;
  readonly clients: () => number;
  readonly waiters: () => number;
}

export function createFillMetrics(gauges: FillGauges): FillMetrics {
  const registry = new Registry();
  const registers = [registry];
  const name = (n: string): string => `${FILL_METRIC_PREFIX}${n}`;
  const gauge = (n: string, help: string, read: () => number): Gauge =>
    new Gauge({
      name: name(n),
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge('transfers_in_flight', 'Transfers in progress (one per digest, however many clients it feeds).', () =>
    gauges.transfersInFlight(),
  );
  gauge('clients', 'Clients being fed, every transfer together.', () => gauges.clients());
  gauge('waiters', 'Clients being fed by a transfer another request started (coalesced readers).', () =>
    gauges.waiters(),
  );
  const metrics: FillMetrics = {
    registry,
    requests: new Counter({
      name: name('requests_total'),
      help: 'Requests by how they were served: hit, miss, distribution, peer, coalesced, fallback, pass_through.',
      labelNames: ['result'],
      registers,
    }),
    transfers: new Counter({
      name: name('transfers_total'),
      help: 'Transfers started, by source (distribution, replica).',
      labelNames: ['source'],
      registers,
    }),
    fetchedBytes: new Counter({
      name: name('fetched_bytes_total'),
      help: 'Body bytes transfers received, by source (distribution, replica).',
      labelNames: ['source'],
      registers,
    }),
    sentBytes: new Counter({
      name: name('sent_bytes_total'),
      help: 'Body bytes sent to clients (the front).',
      registers,
    }),
    verificationFailures: new Counter({
      name: name('verification_failures_total'),
      help: 'Transfers whose whole body was not the digest asked for, or ended short.',
      registers,
    }),
    ownerFailovers: new Counter({
      name: name('owner_failovers_total'),
      help: "Transfers from the digest's owner replica that failed and went on from this pod's Distribution.",
      registers,
    }),
    refused: new Counter({
      name: name('refused_total'),
      help: 'Clients answered 503, by reason (max_clients, max_transfers, spool_full).',
      labelNames: ['reason'],
      registers,
    }),
    clientsCut: new Counter({
      name: name('clients_cut_total'),
      help: 'Clients cut because they took nothing for --client-timeout.',
      registers,
    }),
  };
  // every label value from the start, so that rates exist before the first event
  for (const result of FILL_RESULTS) metrics.requests.inc({ result }, 0);
  for (const source of FILL_SOURCES) {
    metrics.transfers.inc({ source }, 0);
    metrics.fetchedBytes.inc({ source }, 0);
  }
  for (const reason of FILL_REFUSALS) metrics.refused.inc({ reason }, 0);
  return metrics;
}
