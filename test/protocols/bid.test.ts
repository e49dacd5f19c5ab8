import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { BidProtocol, BidError, type BidHandlers } from '../../src/protocols/bid.js'
import { rawCidForBytes } from '../../src/market/cbor.js'
import { testNetwork } from '../helpers/mesh.js'

describe('bid protocol (transport)', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  after(async () => { await Promise.all(nodes.map(async (n) => { await n.stop() })) })

  async function pair (bonded: (c: Connection) => boolean, handlers: BidHandlers): Promise<{ requester: BidProtocol, conn: Connection }> {
    const [a, b] = await Promise.all([0, 1].map(async () => await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }))) as [MeshLibp2p, MeshLibp2p]
    nodes.push(a, b)
    const provider = new BidProtocol(b, { network, isBonded: bonded, handlers })
    await provider.start()
    const requester = new BidProtocol(a, { network, isBonded: () => false })
    return { requester, conn: await a.dial(b.getMultiaddrs()) }
  }

  const seen: string[] = []
  const handlers: BidHandlers = {
    onRfp: async (rfp) => { seen.push(`rfp ${rfp.length}`); return rfp[0] === 1 ? { ccb: new Uint8Array([9, 9]) } : { decline: new Uint8Array([7]) } },
    onAccept: async (_ccba, _peer, progress) => {
      progress('provisioning')
      progress('sealing')
      return { ccr: new Uint8Array([5]), receipt: { enc: new Uint8Array(32), ct: new Uint8Array([1, 2, 3]) } }
    },
    onPaid: async (paid) => { seen.push(`paid ${paid.ccba.length} ${paid.ccbap.length}`); return { ccr: new Uint8Array([6]), receipt: { enc: new Uint8Array(32), ct: new Uint8Array([4]) } } },
    onRelease: async (ccb) => { seen.push(`release ${ccb.toString()}`) }
  }

  it('refuses every exchange on a connection without a bond, before reading the request', async () => {
    const { requester, conn } = await pair(() => false, handlers)
    await assert.rejects(requester.requestBid(conn, new Uint8Array([1])), (err: unknown) => err instanceof BidError && err.code === 'BID_NOT_BONDED')
    await assert.rejects(requester.accept(conn, new Uint8Array([1])), (err: unknown) => err instanceof BidError && err.code === 'BID_NOT_BONDED')
    assert.deepEqual(seen, [], 'no handler ran')
  })

  it('carries a bid, a decline, an accept with progress, and a release on a bonded connection', async () => {
    const { requester, conn } = await pair(() => true, handlers)
    assert.deepEqual(await requester.requestBid(conn, new Uint8Array([1])), { ccb: new Uint8Array([9, 9]) })
    assert.deepEqual(await requester.requestBid(conn, new Uint8Array([2])), { decline: new Uint8Array([7]) })
    const stages: string[] = []
    const done = await requester.accept(conn, new Uint8Array([3]), { onProgress: (s) => stages.push(s) })
    assert.deepEqual(stages, ['provisioning', 'sealing'])
    assert.ok('ccr' in done)
    assert.deepEqual(done.ccr, new Uint8Array([5]))
    const paid = await requester.paid(conn, { ccba: new Uint8Array([1, 2]), ccbap: new Uint8Array([3]) })
    assert.deepEqual(paid.ccr, new Uint8Array([6]))
    assert.ok(seen.includes('paid 2 1'))
    const cid = rawCidForBytes(new Uint8Array([9, 9]))
    await requester.release(conn, cid)
    assert.ok(seen.includes(`release ${cid.toString()}`))
  })

  it('a failed provisioning reaches the requester with its code', async () => {
    const { requester, conn } = await pair(() => true, { ...handlers, onAccept: async () => ({ failed: { code: 'BACKEND_PROVISION_FAILED', detail: 'no room' } }) })
    await assert.rejects(requester.accept(conn, new Uint8Array([3])), (err: unknown) => err instanceof BidError && err.code === 'BID_FAILED' && err.meta.code === 'BACKEND_PROVISION_FAILED')
  })
})
