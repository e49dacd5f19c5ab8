import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { DialBackoff } from '../../src/node/dial-backoff.js'
import { createMeshLibp2p, CONNECTION_PING_INTERVAL_MS, type MeshLibp2p } from '../../src/node/libp2p.js'
import { testNetwork } from '../helpers/mesh.js'

describe('dial back-off', () => {
  it('waits base, then doubles per failure up to the cap; a success forgets the address', () => {
    let now = 0
    const b = new DialBackoff({ baseMs: 1000, maxMs: 5000, now: () => now })
    assert.equal(b.waitMs('a'), 0)
    b.failed('a')
    assert.equal(b.waitMs('a'), 1000)
    b.failed('a')
    assert.equal(b.waitMs('a'), 2000)
    b.failed('a')
    b.failed('a')
    assert.equal(b.waitMs('a'), 5000, 'capped')
    now += 4999
    assert.equal(b.waitMs('a'), 1)
    now += 1
    assert.equal(b.waitMs('a'), 0)
    b.succeeded('a')
    b.failed('a')
    assert.equal(b.waitMs('a'), 1000, 'the count starts again after a success')
  })

  it('keys an address without its /p2p/ part, and stays within its entry bound', () => {
    const ma = '/ip4/127.0.0.1/tcp/4001'
    assert.equal(DialBackoff.keyOf(multiaddr(`${ma}/p2p/12D3KooWPAk2SshcdzUR7zE61szQQywZWTBZcrhSiQb1Z3GZP82E`)), ma)
    assert.equal(DialBackoff.keyOf(multiaddr(ma)), ma)
    let now = 0
    const b = new DialBackoff({ maxEntries: 3, now: () => now })
    for (const key of ['a', 'b', 'c', 'd']) { b.failed(key); now += 10 }
    assert.equal(b.size, 3)
    assert.equal(b.waitMs('a'), 0, 'the entry closest to expiry went first')
    assert.ok(b.waitMs('d') > 0)
  })

  describe('in libp2p (TCP on 127.0.0.1)', () => {
    const nodes: MeshLibp2p[] = []
    after(async () => { await Promise.all(nodes.map(async (n) => { await n.stop() })) })

    it('a refused address is not dialled again inside its window, and is once the window has passed', async () => {
      let now = 1_000_000
      const backoff = new DialBackoff({ now: () => now })
      const network = testNetwork()
      const a = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false, dialBackoff: backoff })
      nodes.push(a)
      // A port nobody listens on: take a free one and close it.
      const probe = createServer()
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
      const port = (probe.address() as AddressInfo).port
      await new Promise<void>((resolve) => probe.close(() => { resolve() }))
      const b = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: [], dht: false })
      nodes.push(b)
      const target = multiaddr(`/ip4/127.0.0.1/tcp/${port}/p2p/${b.peerId.toString()}`)

      await assert.rejects(a.dial(target))
      assert.equal(backoff.refused, 0, 'the first dial reached the network')
      assert.ok(backoff.waitMs(`/ip4/127.0.0.1/tcp/${port}`) > 0)
      await assert.rejects(a.dial(target), (err: Error) => /DIAL_BACKOFF|not dialling/.test(`${String((err as { code?: string }).code)} ${err.message} ${String((err as { errors?: Error[] }).errors?.map((e) => e.message))}`))
      assert.equal(backoff.refused, 1, 'the second dial was refused without touching the network')

      // The peer comes up on that port; once the window has passed, the dial goes through and the address is forgotten.
      await b.stop()
      const b2 = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: [`/ip4/127.0.0.1/tcp/${port}`], dht: false })
      nodes.push(b2)
      now += 60_000
      const conn = await a.dial(multiaddr(`/ip4/127.0.0.1/tcp/${port}/p2p/${b2.peerId.toString()}`))
      assert.equal(conn.remotePeer.toString(), b2.peerId.toString())
      assert.equal(backoff.waitMs(`/ip4/127.0.0.1/tcp/${port}`), 0)
      assert.equal(backoff.size, 0)
    })

    it('pings each connection every 30 s, not libp2p\'s 10 s', async () => {
      const a = nodes[0] as unknown as { components: { connectionMonitor: { pingIntervalMs: number } } }
      assert.equal(CONNECTION_PING_INTERVAL_MS, 30_000)
      // A private field: if a libp2p upgrade renames it, this says so rather than passing silently.
      assert.equal(a.components.connectionMonitor.pingIntervalMs, CONNECTION_PING_INTERVAL_MS)
    })
  })
})
