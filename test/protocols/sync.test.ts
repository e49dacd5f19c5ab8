/** The sync initiator against a hostile responder: every lie about the summary ends the session. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { SyncProtocol, SyncError, SYNC_MAX_WANT, type SyncInit, type SyncResult } from '../../src/protocols/sync.js'
import { RecordVerifyPool } from '../../src/protocols/record-verify-pool.js'
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

describe('pipelined wants', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  const pools: RecordVerifyPool[] = []
  after(async () => {
    await Promise.all(pools.map(async (p) => await p.stop()))
    await Promise.all(nodes.map((n) => n.stop()))
  })
  const node = async () => {
    const n = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false })
    nodes.push(n)
    return n
  }
  const readyPool = async () => {
    const p = new RecordVerifyPool({ size: 2, inlineBelow: 1 })
    pools.push(p)
    p.start()
    await p.whenReady()
    return p
  }
  const now = Math.floor(Date.now() / 1000)
  const heldCards = (n: number) => {
    const held = new ProviderCollection()
    for (let i = 1; i <= n; i++) held.apply(cardAt(testIdentity(i), now - 10), now)
    return held
  }

  /**
   * A scripted responder over a real collection: it reads `upFront` wants before answering any (an
   * initiator that does not pipeline never gets an answer), then answers in the order `order` gives.
   */
  async function scripted (held: ProviderCollection, upFront: number, answer: (want: string[], k: number) => Uint8Array[], order: (k: number) => number = (k) => k): Promise<{ peer: MeshLibp2p, maxUnanswered: () => number }> {
    const m = await node()
    let maxUnanswered = 0
    await m.handle(protocolId(network, 'sync'), async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: 8 * 1024 * 1024 })
      const read = async () => decodeCanonical((await lp.read()).subarray()) as any
      try {
        await read()
        const s = held.summary()
        await lp.write(encodeCanonical({ summary: s.buckets, count: s.count }))
        const { buckets } = await read()
        const entries = held.entries(buckets).map((e) => ({ p: e.providerId, t: e.time, r: e.retired, d: e.digest }))
        await lp.write(encodeCanonical({ entries, more: false }))
        const total = Math.ceil(entries.length / SYNC_MAX_WANT)
        const wants: string[][] = []
        let answered = 0
        while (wants.length < Math.min(upFront, total)) wants.push((await read()).want)
        while (answered < total) {
          maxUnanswered = Math.max(maxUnanswered, wants.length - answered)
          const k = order(answered)
          while (wants.length <= k) wants.push((await read()).want)
          await lp.write(encodeCanonical({ records: answer(wants[k]!, k) }))
          answered++
        }
        await read()
        await stream.close()
      } catch {
        stream.abort(new Error('done'))
      }
    })
    return { peer: m, maxUnanswered: () => maxUnanswered }
  }

  const honest = (held: ProviderCollection) => (want: string[]) => want.map((p) => held.record(p)!.bytes)

  async function pull (peer: MeshLibp2p, init: Partial<SyncInit>): Promise<{ result?: SyncResult, code?: string, collection: ProviderCollection }> {
    const victim = await node()
    const collection = new ProviderCollection()
    const sync = new SyncProtocol(victim, { network, collection, now: Date.now, sessionTimeoutMs: 15_000, ...init })
    await victim.dial(peer.getMultiaddrs())
    try {
      return { result: await sync.pull(peer.peerId), collection }
    } catch (err) {
      assert.ok(err instanceof SyncError, String(err))
      return { code: err.code, collection }
    }
  }

  it('keeps pipelineDepth wants outstanding (here 4) and gets everything through the pool', async () => {
    const held = heldCards(4 * SYNC_MAX_WANT + 10)
    const { peer, maxUnanswered } = await scripted(held, 4, honest(held))
    const { result, code, collection } = await pull(peer, { decoder: await readyPool(), pipelineDepth: 4 })
    assert.equal(code, undefined)
    assert.equal(result?.admitted, held.size)
    assert.equal(maxUnanswered(), 4)
    assert.deepEqual(collection.summary(), held.summary())
  })

  it('depth 1 waits for each answer (a responder that wants 2 wants first never gets them)', async () => {
    const held = heldCards(2 * SYNC_MAX_WANT)
    const { peer } = await scripted(held, 2, honest(held))
    const { code } = await pull(peer, { pipelineDepth: 1, sessionTimeoutMs: 3000 })
    assert.equal(code, 'SYNC_TIMEOUT')
  })

  it('the k-th answer must be for the k-th want: answers out of order are a protocol violation', async () => {
    const held = heldCards(3 * SYNC_MAX_WANT)
    const { peer } = await scripted(held, 3, honest(held), (k) => [1, 0, 2][k]!)
    const { code, collection } = await pull(peer, { decoder: await readyPool(), pipelineDepth: 3 })
    assert.equal(code, 'SYNC_PROTOCOL_VIOLATION')
    assert.equal(collection.size, 0, 'nothing from the misplaced answer was applied')
  })

  it('invalid records verified on the pool are counted in order; the 17th ends the session, later batches are not applied', async () => {
    const held = heldCards(3 * SYNC_MAX_WANT)
    // Batch 0 honest, batch 1: 20 records with a flipped signature bit, then honest ones; batch 2 honest.
    const { peer } = await scripted(held, 3, (want, k) => want.map((p, i) => {
      const bytes = held.record(p)!.bytes
      if (k !== 1 || i >= 20) return bytes
      const map = decodeCanonical(bytes) as Record<string, unknown>
      const sig = new Uint8Array(map.sig as Uint8Array)
      sig[0]! ^= 1
      return encodeCanonical({ ...map, sig })
    }))
    const { code, collection } = await pull(peer, { decoder: await readyPool(), pipelineDepth: 3 })
    assert.equal(code, 'SYNC_TOO_MANY_INVALID')
    assert.equal(collection.size, SYNC_MAX_WANT, 'batch 0 applied; nothing of batch 1 after the 17th invalid, nothing of batch 2')
  })

  it('two honest nodes: a pipelined pull through the pool equals the responder\'s collection', async () => {
    const held = heldCards(700)
    const [a, b] = [await node(), await node()]
    const responder = new SyncProtocol(b, { network, collection: held, now: Date.now })
    await responder.start()
    const collection = new ProviderCollection()
    const pool = await readyPool()
    const initiator = new SyncProtocol(a, { network, collection, now: Date.now, decoder: pool })
    await a.dial(b.getMultiaddrs())
    const result = await initiator.pull(b.peerId)
    assert.equal(result.fetched, 700)
    assert.equal(result.admitted, 700)
    assert.equal(result.invalid, 0)
    // Batches arriving while both workers are busy are verified on this thread instead of queued.
    assert.ok(pool.stats.workerRecords >= 128, JSON.stringify(pool.stats))
    assert.equal(pool.stats.workerRecords + pool.stats.inlineRecords, 700)
    assert.deepEqual(collection.summary(), held.summary())
  })
})
