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
import { testIdentity } from '../helpers/cards.js'

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

  it('refuses a summary count beyond the collection bound', async () => {
    const m = await hostile(10_000_000, () => [])
    assert.equal(await pullFrom(m), 'SYNC_PROTOCOL_VIOLATION')
  })
})
