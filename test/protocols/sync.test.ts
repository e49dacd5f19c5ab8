/** The sync initiator against a hostile responder: every lie about the summary ends the session. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { SyncProtocol, SyncError } from '../../src/protocols/sync.js'
import { protocolId } from '../../src/protocols/names.js'
import { ProviderCollection, bucketOf, encodeCanonical, decodeCanonical, SUMMARY_BUCKETS } from '../../src/market/index.js'
import { testNetwork } from '../helpers/mesh.js'
import { cardAt, testIdentity } from '../helpers/cards.js'

describe('sync initiator against a hostile responder', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  after(async () => { await Promise.all(nodes.map((n) => n.stop())) })

  const node = async () => {
    const n = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })
    nodes.push(n)
    return n
  }

  /**
   * A responder that claims `count` providers and a summary differing from an empty one only in
   * the bucket of test identity 1, then answers the entries request with `entries`.
   */
  async function hostile (count: number, entries: (buckets: number[]) => unknown[]): Promise<MeshLibp2p> {
    const summary = new Uint8Array(SUMMARY_BUCKETS * 32)
    summary[bucketOf(testIdentity(1).did) * 32] = 1
    const m = await node()
    await m.handle(protocolId(network, 'sync'), async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: 8 * 1024 * 1024 })
      try {
        await lp.read()
        await lp.write(encodeCanonical({ summary, count }))
        const req = decodeCanonical((await lp.read()).subarray()) as { buckets: number[] }
        await lp.write(encodeCanonical({ entries: entries(req.buckets), more: false }))
        await lp.read()
      } catch {}
      stream.abort(new Error('done'))
    })
    return m
  }

  const entry = (i: number) => ({ p: testIdentity(i).did, t: 1, r: false, d: new Uint8Array(32) })

  async function pullFrom (m: MeshLibp2p): Promise<string> {
    const victim = await node()
    const sync = new SyncProtocol(victim, { network, collection: new ProviderCollection(), now: Date.now })
    await sync.start()
    await victim.dial(m.getMultiaddrs())
    try {
      await sync.pull(m.peerId)
      return 'OK'
    } catch (err) {
      assert.ok(err instanceof SyncError, String(err))
      return err.code
    }
  }

  it('accepts an honest-looking answer for the bucket it asked about', async () => {
    const m = await hostile(1, () => [entry(1)])
    // The entries pass; the responder then hangs up instead of sending the record asked for.
    assert.equal(await pullFrom(m), 'SYNC_STREAM_FAILED')
  })

  it('refuses an entry for a bucket it did not ask about', async () => {
    const m = await hostile(10, (buckets) => {
      assert.deepEqual(buckets, [bucketOf(testIdentity(1).did)])
      for (let i = 2; i < 1000; i++) if (bucketOf(testIdentity(i).did) !== buckets[0]) return [entry(i)]
      return []
    })
    assert.equal(await pullFrom(m), 'SYNC_PROTOCOL_VIOLATION')
  })

  it('refuses a repeated provider', async () => {
    const m = await hostile(10, () => [entry(1), entry(1)])
    assert.equal(await pullFrom(m), 'SYNC_PROTOCOL_VIOLATION')
  })

  it('refuses more entries than the responder said it holds', async () => {
    const m = await hostile(2, () => [entry(1), entry(2), entry(3)])
    assert.equal(await pullFrom(m), 'SYNC_PROTOCOL_VIOLATION')
  })

  it('takes a peer\'s count beyond our own collection bound (its bound is its own), and still holds entries to it', async () => {
    const m = await hostile(10_000_000, () => [entry(1)])
    // Past the summary and the entries: the responder then hangs up instead of sending the record.
    assert.equal(await pullFrom(m), 'SYNC_STREAM_FAILED')
  })
})

describe('sync between two honest nodes', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  after(async () => { await Promise.all(nodes.map((n) => n.stop())) })

  it('a record refused as "full" is neither admitted nor stored; inbound sessions are rate-limited per peer', async () => {
    const [a, b] = await Promise.all([0, 1].map(async () => await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })))
    nodes.push(a as MeshLibp2p, b as MeshLibp2p)
    const now = Math.floor(Date.now() / 1000)
    const held = new ProviderCollection()
    for (let i = 1; i <= 3; i++) held.apply(cardAt(testIdentity(i), now - 10), now)
    const responder = new SyncProtocol(b as MeshLibp2p, { network, collection: held, now: Date.now, inboundRate: { ratePerSec: 0, burst: 2, rejectAfter: Number.MAX_SAFE_INTEGER } })
    await responder.start()
    const stored: string[] = []
    const bounded = new ProviderCollection(1)
    const initiator = new SyncProtocol(a as MeshLibp2p, { network, collection: bounded, now: Date.now, onAdmitted: (r) => stored.push(r.value.providerId) })
    await (a as MeshLibp2p).dial((b as MeshLibp2p).getMultiaddrs())
    const first = await initiator.pull((b as MeshLibp2p).peerId)
    assert.equal(first.fetched, 3)
    assert.equal(first.admitted, 1)
    assert.equal(stored.length, 1, 'only the admitted record goes to the store')
    assert.equal(bounded.size, 1)
    await initiator.pull((b as MeshLibp2p).peerId)
    await assert.rejects(initiator.pull((b as MeshLibp2p).peerId), (err: unknown) => err instanceof SyncError, 'the third session within the burst is refused')
  })
})
