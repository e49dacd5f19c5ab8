import '../../src/node/polyfills.js'
import { describe, it, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { TestMesh, waitFor, waitForMesh } from '../helpers/mesh.js'
import { topicName } from '../../src/protocols/names.js'
import { userDataRef } from '../../src/market/ccrfp.js'
import type { CmeshNode } from '../../src/node/node.js'
import { makeCard, testIdentity } from '../helpers/cards.js'

const shown = (n: CmeshNode) => n.collection.cards(Math.floor(Date.now() / 1000)).length

/** Three nodes in a line a – b – c, meshed on `kind`: a's news reaches c only relayed through b. */
async function line (mesh: TestMesh, kind: 'cards' | 'rfps'): Promise<[CmeshNode, CmeshNode, CmeshNode]> {
  const [a, b, c] = [await mesh.node(), await mesh.node(), await mesh.node()]
  await mesh.connect(a, b)
  await mesh.connect(c, b)
  const topic = topicName(mesh.network, kind)
  await waitForMesh(b, topic, 2)
  await waitForMesh(a, topic, 1)
  await waitForMesh(c, topic, 1)
  return [a, b, c]
}

describe('mesh (in-process)', () => {
  let mesh: TestMesh
  afterEach(async () => { await mesh.cleanup() })

  it('3 nodes exchange cards over gossip in both directions', async () => {
    mesh = new TestMesh()
    const [a, b, c] = await line(mesh, 'cards')
    await waitFor('initial sync', () => [a, b, c].every((n) => shown(n) >= 2) && shown(b) === 3)

    const fromA = await a.services.ownCard.publish()
    await waitFor('a → c by gossip', () => c.collection.get(a.identity.did, Math.floor(Date.now() / 1000))?.cid.equals(fromA.cid) === true)
    const fromC = await c.services.ownCard.publish()
    await waitFor('c → a by gossip', () => a.collection.get(c.identity.did, Math.floor(Date.now() / 1000))?.cid.equals(fromC.cid) === true)
    assert.ok(c.services.gossip.cards.stats.accept >= 1, 'c accepted a gossiped card')
    assert.ok(a.services.gossip.cards.stats.accept >= 1, 'a accepted a gossiped card')
    assert.equal(a.services.gossip.cards.stats.reject + b.services.gossip.cards.stats.reject + c.services.gossip.cards.stats.reject, 0)
    for (const n of [a, b, c]) assert.equal(shown(n), 3)
  })

  it('a late joiner gets the whole collection through sync (gossip does not replay)', async () => {
    mesh = new TestMesh()
    // Periodic sync every second heals the races between a joiner's first gossip and the mesh forming.
    const first = await mesh.node({ syncIntervalSecs: 1 })
    const others: CmeshNode[] = []
    for (let i = 0; i < 4; i++) others.push(await mesh.node({ syncIntervalSecs: 1, bootstrap: [mesh.addrOf(first)] }))
    await waitFor('5 nodes converge', () => [first, ...others].every((n) => shown(n) === 5))

    const late = await mesh.node({ bootstrap: [mesh.addrOf(others[3] as CmeshNode)] })
    await waitFor('late joiner holds all 6 cards', () => shown(late) === 6)
    assert.equal(late.services.gossip.cards.stats.accept, 0, 'nothing came by gossip')
    const viaSync = [...late.services.sync.results.values()].reduce((n, r) => n + r.admitted, 0)
    assert.ok(viaSync >= 5, `sync admitted ${viaSync}`)
  })

  it('sync refuses a record dated in the future (as gossip does) and counts it invalid', async () => {
    mesh = new TestMesh()
    const a = await mesh.node()
    const t = Math.floor(Date.now() / 1000)
    // Planted straight into a's state, as a careless or hostile peer could hold it.
    a.collection.apply(makeCard(testIdentity(42), { committedAtUnixSecs: t + 3600, expiresAtUnixSecs: t + 7200 }), t)
    const b = await mesh.node({ bootstrap: [mesh.addrOf(a)] })
    await waitFor('b synced from a', () => [...b.services.sync.results.values()].some((r) => r.invalid >= 1))
    assert.equal(b.collection.record(testIdentity(42).did), undefined)
    assert.equal(shown(b), 2, 'the honest cards still arrived')
  })

  it('a partition heals and converges', async () => {
    mesh = new TestMesh()
    const fast = { syncIntervalSecs: 1 }
    const left = [await mesh.node(fast)]
    const right = [await mesh.node(fast)]
    for (let i = 0; i < 2; i++) left.push(await mesh.node({ ...fast, bootstrap: [mesh.addrOf(left[0] as CmeshNode)] }))
    for (let i = 0; i < 2; i++) right.push(await mesh.node({ ...fast, bootstrap: [mesh.addrOf(right[0] as CmeshNode)] }))
    await waitFor('each side converges on its own 3', () => [...left, ...right].every((n) => shown(n) === 3))
    // Each side moves on while apart: a provider republishes.
    await left[1]?.services.ownCard.publish()
    await right[2]?.services.ownCard.publish()

    await mesh.connect(left[2] as CmeshNode, right[1] as CmeshNode)
    await waitFor('all 6 nodes hold all 6 cards', () => [...left, ...right].every((n) => shown(n) === 6), 30_000)
    const digests = [...left, ...right].map((n) => Buffer.from(n.collection.summary().buckets).toString('hex'))
    assert.equal(new Set(digests).size, 1, 'identical summaries everywhere')
  })

  it('a restarted node keeps its collection', async () => {
    mesh = new TestMesh()
    const a = await mesh.node()
    const b = await mesh.node({ bootstrap: [mesh.addrOf(a)] })
    await waitFor('b holds both cards', () => shown(b) === 2)
    const dataDir = b.config.dataDir
    const did = b.identity.did
    await mesh.stopNode(b)
    await mesh.stopNode(a)
    const again = await mesh.node({}, { dataDir })
    assert.equal(again.identity.did, did, 'same identity from the key file')
    // Before any peer: both cards are back from disk.
    assert.equal(again.libp2p.getPeers().length, 0)
    assert.ok(again.collection.get(a.identity.did, Math.floor(Date.now() / 1000)) !== undefined)
    assert.equal(shown(again), 2)
  })

  it('the DHT (own protocol id, server mode, loopback addresses kept) finds a peer nobody introduced', async () => {
    mesh = new TestMesh()
    const [a, b, c] = [await mesh.node({ dht: true }), await mesh.node({ dht: true }), await mesh.node({ dht: true })]
    await mesh.connect(a, b)
    await mesh.connect(c, b)
    assert.ok(a.libp2p.getProtocols().includes(`/cmesh/${mesh.network}/kad/1.0.0`))
    assert.ok(!a.libp2p.getProtocols().includes('/ipfs/kad/1.0.0'), 'never the public IPFS DHT')
    await waitFor('routing tables filled', async () => (a.libp2p.services.dht as any).routingTable.size >= 1 && (c.libp2p.services.dht as any).routingTable.size >= 1)
    const found = await a.libp2p.peerRouting.findPeer(c.libp2p.peerId, { signal: AbortSignal.timeout(10_000), useCache: false } as any)
    assert.ok(found.multiaddrs.some((m) => m.toString().startsWith('/ip4/127.0.0.1/tcp/')))
  })

  it('RFPs propagate to every node and close with their bid window', async () => {
    mesh = new TestMesh()
    const [a, b, c] = await line(mesh, 'rfps')
    const rfp = await a.services.requester.publishRfp({
      cpus: 2,
      mem: '2G',
      disk: '10G',
      network: '100G',
      role: 'vm',
      user_data: userDataRef('#cloud-config'),
      cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 15n, durationSecs: 3600, bidWindowSecs: 30 }
    })
    const now = () => Math.floor(Date.now() / 1000)
    await waitFor('c holds the RFP', () => c.rfps.list(now()).some((r) => r.cid.equals(rfp.cid)))
    assert.equal(c.rfps.list(now() + 31).length, 0, 'closed after the bid window')
  })
})
