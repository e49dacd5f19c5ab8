import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { testNetwork } from '../helpers/mesh.js'

/**
 * @chainsafe/libp2p-yamux 8.0.1 sends a new stream's first window update from a microtask; when the
 * connection closed in between, that send threw with nobody to catch it and ended the process
 * (patches/@chainsafe+libp2p-yamux+8.0.1.patch, docs/upstream/yamux-new-stream-microtask.md).
 * Here streams are opened while connections close at random moments, on either side; and its
 * abort() threw on a closing transport (the same patch, docs/upstream/yamux-abort-goaway.md).
 */
describe('opening streams on connections that close at the same moment', () => {
  const nodes: MeshLibp2p[] = []
  const uncaught: unknown[] = []
  const onUncaught = (err: unknown): void => { uncaught.push(err) }
  process.on('uncaughtException', onUncaught)
  after(async () => {
    process.off('uncaughtException', onUncaught)
    await Promise.all(nodes.map(async (n) => { await n.stop() }))
  })

  it('1000 rounds: no uncaught error, the process lives on', async () => {
    const network = testNetwork()
    for (let i = 0; i < 2; i++) nodes.push(await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }))
    const [a, b] = nodes as [MeshLibp2p, MeshLibp2p]
    const protocol = '/cmesh-test/race/1.0.0'
    await b.handle(protocol, (stream) => { stream.abort(new Error('not listening')) })
    const moments: Array<(fn: () => void) => void> = [
      (fn) => fn(),
      (fn) => queueMicrotask(fn),
      (fn) => { void Promise.resolve().then(() => queueMicrotask(fn)) },
      (fn) => setImmediate(fn),
      (fn) => setTimeout(fn, Math.random() * 3)
    ]
    let opened = 0
    for (let round = 0; round < 1000; round++) {
      const conn: Connection = await a.dial(b.getMultiaddrs())
      const remote = b.getConnections(a.peerId)[0]
      // Who closes, and how: the transport under our side starting a graceful close (what a peer's
      // FIN landing in that tick does), or either side's Connection closing or aborting.
      const close = (): void => {
        const how = round % 4
        if (how === 0) void (conn as unknown as { maConn: { close: () => Promise<void> } }).maConn.close().catch(() => {})
        else if (how === 1) conn.abort(new Error('gone'))
        else if (how === 2) void remote?.close().catch(() => {})
        else remote?.abort(new Error('gone'))
      }
      const streams = [0, 1, 2].map(async () => await conn.newStream(protocol).then((s) => { opened++; s.abort(new Error('done')) }, () => {}))
      const closed = new Promise<void>((resolve) => { moments[Math.floor(round / 4) % moments.length]?.(() => { close(); resolve() }) })
      await Promise.all([closed, ...streams])
      await conn.close().catch(() => {})
    }
    // Give any late microtask or timer of the last rounds its chance to throw.
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.deepEqual(uncaught.map(String), [])
    assert.ok(opened > 0, 'some streams did open: the race was run, not skipped')
  })

  // The same package's abort() sent its GoAway unguarded: aborting a connection whose transport
  // had begun to close threw, and the connection monitor's ping-failure handler, which calls
  // abort() without a catch, turned that into an uncaught error (seen once in CI). The transport
  // under the muxer was then never aborted either.
  it('aborting a connection whose transport is closing does not throw', async () => {
    const [a, b] = nodes as [MeshLibp2p, MeshLibp2p]
    const thrown: string[] = []
    for (let round = 0; round < 20; round++) {
      const conn = await a.dial(b.getMultiaddrs())
      void (conn as unknown as { maConn: { close: () => Promise<void> } }).maConn.close().catch(() => {})
      try { conn.abort(new Error('ping failed')) } catch (err) { thrown.push(String(err)) }
    }
    assert.deepEqual(thrown, [])
  })
})
