/**
 * The node's Prometheus metrics (prom-client), one registry per node (tests run many nodes in one
 * process), served at `/metrics` on the local API. Every series is `cmesh_<subsystem>_…`; services
 * record into the objects here, and gauges of state (peers, collection) are read when scraped.
 * Later subsystems (bids, contracts, provisioning) add their own group here.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** Network round trips and verifications: 1 ms to a minute. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

export interface NodeMetrics {
  registry: Registry
  gossipVerdicts: Counter<'topic' | 'verdict' | 'reason'>
  collectionRecords: Gauge<'state'>
  syncSessions: Counter<'role' | 'outcome'>
  syncRecords: Counter<'outcome'>
  syncDuration: Histogram<'role'>
  attestSessions: Counter<'role' | 'outcome' | 'level'>
  attestDuration: Histogram<'role'>
  quoteVerifications: Counter<'source' | 'code'>
  quoteVerificationDuration: Histogram<'source'>
  evidenceFetches: Counter<'outcome' | 'source'>
  verificationQueue: Gauge<'state'>
  verificationsDropped: Counter
  syncVerifiedRecords: Gauge<'where'>
  dialBackoffRefused: Gauge
  peersConnected: Gauge
  storeFlushDuration: Histogram
  storeFlushRecords: Counter
  bidsSent: Counter<'outcome'>
  bidsReceived: Counter<'outcome'>
  declines: Counter<'side' | 'code'>
  contracts: Counter<'role' | 'state'>
  payments: Counter<'role' | 'outcome'>
  wifTokens: Counter<'outcome'>
  provisionDuration: Histogram<'backend' | 'outcome'>
  backendInstances: Gauge<'backend'>
  heartbeats: Counter<'direction' | 'outcome'>
  terminations: Counter<'reason' | 'by'>
  contractsUnresponsive: Gauge
  usageCpuSeconds: Counter<'backend'>
  residentMemory: Gauge
}

export function createNodeMetrics (): NodeMetrics {
  const registry = new Registry()
  const registers = [registry]
  return {
    registry,
    gossipVerdicts: new Counter({ name: 'cmesh_gossip_verdicts_total', help: 'Gossip validation verdicts by topic, verdict and reason code', labelNames: ['topic', 'verdict', 'reason'], registers }),
    collectionRecords: new Gauge({ name: 'cmesh_collection_records', help: 'Provider slots held (cards and retirements) and cards shown now', labelNames: ['state'], registers }),
    syncSessions: new Counter({ name: 'cmesh_sync_sessions_total', help: 'Sync sessions by role and outcome (ok or error code)', labelNames: ['role', 'outcome'], registers }),
    syncRecords: new Counter({ name: 'cmesh_sync_records_total', help: 'Records pulled by sync, by outcome (fetched, admitted, invalid)', labelNames: ['outcome'], registers }),
    syncDuration: new Histogram({ name: 'cmesh_sync_session_duration_seconds', help: 'Sync session duration', labelNames: ['role'], buckets: DURATION_BUCKETS, registers }),
    attestSessions: new Counter({ name: 'cmesh_attest_sessions_total', help: 'Attest exchanges by role, outcome (ok or error code) and level proved', labelNames: ['role', 'outcome', 'level'], registers }),
    attestDuration: new Histogram({ name: 'cmesh_attest_session_duration_seconds', help: 'Attest exchange duration', labelNames: ['role'], buckets: DURATION_BUCKETS, registers }),
    quoteVerifications: new Counter({ name: 'cmesh_quote_verifications_total', help: 'TDX quote and card evidence verifications by source (attest, card) and result code', labelNames: ['source', 'code'], registers }),
    quoteVerificationDuration: new Histogram({ name: 'cmesh_quote_verification_duration_seconds', help: 'Quote and card evidence verification duration', labelNames: ['source'], buckets: DURATION_BUCKETS, registers }),
    evidenceFetches: new Counter({ name: 'cmesh_evidence_fetches_total', help: 'Evidence blob retrievals by outcome and where the blob came from (local, provider, holder)', labelNames: ['outcome', 'source'], registers }),
    verificationQueue: new Gauge({ name: 'cmesh_verification_queue', help: 'Card verifications waiting and running', labelNames: ['state'], registers }),
    syncVerifiedRecords: new Gauge({ name: 'cmesh_sync_verified_records', help: 'Records verified for sync since start, by where: worker, inline (this thread), fallback (again inline after a worker died)', labelNames: ['where'], registers }),
    dialBackoffRefused: new Gauge({ name: 'cmesh_dial_backoff_refused', help: 'Dials refused since start without touching the network: the address failed recently (dial back-off)', registers }),
    verificationsDropped: new Counter({ name: 'cmesh_verification_dropped_total', help: 'Card verifications dropped from a full queue (the oldest waiting one goes)', registers }),
    peersConnected: new Gauge({ name: 'cmesh_peers_connected', help: 'Peers with at least one open connection', registers }),
    storeFlushDuration: new Histogram({ name: 'cmesh_store_flush_duration_seconds', help: 'Synced store batch write latency', buckets: DURATION_BUCKETS, registers }),
    storeFlushRecords: new Counter({ name: 'cmesh_store_flushed_writes_total', help: 'Writes (puts and deletes) made durable by store batches', registers }),
    bidsSent: new Counter({ name: 'cmesh_bids_sent_total', help: 'Provider: answers to RFPs (bid or decline)', labelNames: ['outcome'], registers }),
    bidsReceived: new Counter({ name: 'cmesh_bids_received_total', help: 'Requester: answers collected per provider dialled (bid, decline, or the failure code)', labelNames: ['outcome'], registers }),
    declines: new Counter({ name: 'cmesh_declines_total', help: 'Declines by reason code, sent (provider) and received (requester)', labelNames: ['side', 'code'], registers }),
    contracts: new Counter({ name: 'cmesh_contracts_total', help: 'Contract state transitions by role', labelNames: ['role', 'state'], registers }),
    payments: new Counter({ name: 'cmesh_payments_total', help: 'x402 payments by role (provider settles, requester pays) and outcome', labelNames: ['role', 'outcome'], registers }),
    wifTokens: new Counter({ name: 'cmesh_wif_tokens_total', help: 'Workload token exchanges at this provider\'s issuer, by outcome (issued or the refusal code)', labelNames: ['outcome'], registers }),
    backendInstances: new Gauge({ name: 'cmesh_backend_instances', help: 'Live instances per backend (grants provisioned and not ended)', labelNames: ['backend'], registers }),
    provisionDuration: new Histogram({ name: 'cmesh_provision_duration_seconds', help: 'Provisioning time per grant, by backend and outcome', labelNames: ['backend', 'outcome'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600], registers }),
    heartbeats: new Counter({ name: 'cmesh_heartbeats_total', help: 'Contract heartbeats sent (provider) and received (requester), by outcome (ok or the refusal or failure code)', labelNames: ['direction', 'outcome'], registers }),
    terminations: new Counter({ name: 'cmesh_contract_terminations_total', help: 'Contracts ended, by termination reason and the role of the party that asked (provider or requester)', labelNames: ['reason', 'by'], registers }),
    contractsUnresponsive: new Gauge({ name: 'cmesh_contracts_unresponsive', help: 'Requester: ready contracts whose provider stopped sending heartbeats', registers }),
    usageCpuSeconds: new Counter({ name: 'cmesh_contract_usage_cpu_seconds_total', help: 'Provider: CPU seconds its contracts\' machines used, as the backends measure it', labelNames: ['backend'], registers }),
    // The standard name, read when scraped; prom-client's full default set (event-loop monitors, GC hooks) is not worth its cost here.
    residentMemory: new Gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes', registers, collect () { this.set(process.memoryUsage.rss()) } })
  }
}
