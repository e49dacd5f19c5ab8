import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { TestMesh, waitFor } from '../helpers/mesh.js'

const SERIES = [
  'cmesh_gossip_verdicts_total', 'cmesh_collection_records', 'cmesh_sync_sessions_total', 'cmesh_sync_records_total',
  'cmesh_sync_session_duration_seconds', 'cmesh_attest_sessions_total', 'cmesh_attest_session_duration_seconds',
  'cmesh_quote_verifications_total', 'cmesh_quote_verification_duration_seconds', 'cmesh_evidence_fetches_total',
  'cmesh_peers_connected', 'cmesh_store_flush_duration_seconds', 'cmesh_verification_queue',
  'cmesh_bids_sent_total', 'cmesh_bids_received_total', 'cmesh_declines_total', 'cmesh_contracts_total', 'cmesh_provision_duration_seconds',
  'cmesh_sync_verified_records', 'cmesh_dial_backoff_refused'
]

describe('GET /metrics', () => {
  const mesh = new TestMesh()
  after(async () => { await mesh.cleanup() })

  it('serves Prometheus text with the token: gossip, collection, sync, attest, quote, evidence, peers, store', async () => {
    const tdx = { attest: { provider: 'simulated' as const, require: 'TdxRemote' as const } }
    const node = await mesh.node(tdx, { api: true })
    const peer = await mesh.node(tdx)
    await mesh.connect(node, peer)
    await waitFor('a bidirectional bond and verdict', () => node.services.verifiedLevels.levels.get(peer.identity.did)?.level === 'TdxRaTlsBidirectional', 30_000)
    await waitFor('a sync session', () => node.services.sync.results.size > 0)
    await peer.services.ownCard.publish()
    await waitFor('a gossiped card', () => node.services.gossip.cards.stats.accept > 0)

    const { url, token } = JSON.parse(await readFile(join(node.config.dataDir, 'api.json'), 'utf8'))
    assert.equal((await fetch(url + '/metrics')).status, 401)
    const res = await fetch(url + '/metrics', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const families = new Map(parsePrometheusTextFormat(await res.text()).map((f) => [f.name, f]))
    for (const name of SERIES) assert.ok(families.has(name), `${name} is exported`)
    const value = (name: string, labels: Record<string, string> = {}): number => {
      const sample = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
      return Number(sample?.value ?? sample?.count ?? NaN)
    }
    assert.equal(value('cmesh_peers_connected'), 1)
    assert.equal(value('cmesh_collection_records', { state: 'held' }), 2)
    assert.ok(value('cmesh_gossip_verdicts_total', { topic: 'cards', verdict: 'accept' }) >= 1)
    assert.ok(value('cmesh_sync_sessions_total', { outcome: 'ok' }) >= 1)
    assert.ok(value('cmesh_attest_sessions_total', { outcome: 'ok', level: 'TdxRaTlsBidirectional' }) >= 1)
    assert.ok(value('cmesh_quote_verifications_total', { source: 'card', code: 'OK' }) >= 1)
    assert.ok(value('cmesh_evidence_fetches_total', { outcome: 'ok', source: 'provider' }) >= 1)
    assert.ok(value('cmesh_store_flush_duration_seconds') >= 1, 'store flushes observed')
    // Every record sync fetched was verified somewhere; a pull this small stays on this thread.
    const [worker, inline, fallback] = ['worker', 'inline', 'fallback'].map((where) => value('cmesh_sync_verified_records', { where })) as [number, number, number]
    assert.equal(worker + inline + fallback, value('cmesh_sync_records_total', { outcome: 'fetched' }))
    assert.deepEqual([worker, fallback], [0, 0])
    assert.equal(value('cmesh_dial_backoff_refused'), 0, 'no dial failed here')
  })
})
