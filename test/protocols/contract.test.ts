import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { ContractProtocol, CONTRACT_RATE_LIMIT, type ContractHandlers } from '../../src/protocols/contract.js'
import { protocolId } from '../../src/protocols/names.js'
import { LifecycleError } from '../../src/market/lifecycle-error.js'
import { testNetwork } from '../helpers/mesh.js'

describe('contract protocol (transport)', () => {
  const network = testNetwork()
  const nodes: MeshLibp2p[] = []
  after(async () => { await Promise.all(nodes.map(async (n) => { await n.stop() })) })

  const seen: Array<[string, string]> = []
  const handlers: ContractHandlers = {
    onHeartbeat: async (bytes, peer) => {
      seen.push(['heartbeat', peer.toString()])
      if (bytes[0] === 0xee) throw new LifecycleError('LIFECYCLE_SEQ_REPLAYED', 'seq 1 is not above 1')
      if (bytes[0] === 0xff) throw new Error('a bug, not a refusal')
    },
    onTerminated: async (_bytes, peer) => { seen.push(['terminated', peer.toString()]) },
    onTerminate: async (bytes, peer) => { seen.push(['terminate', peer.toString()]); return Uint8Array.from([...bytes].reverse()) }
  }

  async function pair (now?: () => number): Promise<{ a: MeshLibp2p, b: MeshLibp2p, client: ContractProtocol }> {
    const [a, b] = await Promise.all([0, 1].map(async () => await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }))) as [MeshLibp2p, MeshLibp2p]
    nodes.push(a, b)
    await new ContractProtocol(b, { network, handlers, ...(now !== undefined ? { now } : {}) }).start()
    await a.dial(b.getMultiaddrs())
    return { a, b, client: new ContractProtocol(a, { network, handlers }) }
  }

  const refused = (code: string) => (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_REFUSED' && err.meta.code === code

  it('carries the three exchanges to the handlers with the sender\'s authenticated peer id', async () => {
    const { a, b, client } = await pair()
    assert.equal(client.protocol, protocolId(network, 'contract'))
    assert.equal(client.protocol, `/cmesh/${network}/contract/1.0.0`)
    seen.length = 0
    await client.sendHeartbeat(b.peerId, new Uint8Array([1, 2]))
    await client.sendTerminated(b.peerId, new Uint8Array([3]))
    assert.deepEqual(await client.requestTermination(b.peerId, new Uint8Array([4, 5, 6])), new Uint8Array([6, 5, 4]))
    assert.deepEqual(seen, [['heartbeat', a.peerId.toString()], ['terminated', a.peerId.toString()], ['terminate', a.peerId.toString()]])
  })

  it('answers a typed refusal with its code; anything else, a record over its cap or a peer nobody can reach fails typed on the sender', async () => {
    const { b, client } = await pair()
    await assert.rejects(client.sendHeartbeat(b.peerId, new Uint8Array([0xee])), refused('LIFECYCLE_SEQ_REPLAYED'))
    await assert.rejects(client.sendHeartbeat(b.peerId, new Uint8Array([0xff])), (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_PROTOCOL')
    // A heartbeat is at most 1 KiB: the receiver's schema refuses it and resets the stream.
    await assert.rejects(client.sendHeartbeat(b.peerId, new Uint8Array(1025)), (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_PROTOCOL')
    await assert.rejects(client.sendTerminated(b.peerId, new Uint8Array(2049)), (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_PROTOCOL')
    const nobody: PeerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    await assert.rejects(client.sendHeartbeat(nobody, new Uint8Array([1]), { signal: AbortSignal.timeout(2000) }), (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_UNREACHABLE')
  })

  it('resets a peer\'s streams beyond its rate limit before reading them', async () => {
    const { b, client } = await pair(() => 0)
    for (let i = 0; i < CONTRACT_RATE_LIMIT.burst; i++) await client.sendHeartbeat(b.peerId, new Uint8Array([1]))
    seen.length = 0
    await assert.rejects(client.sendHeartbeat(b.peerId, new Uint8Array([1])), (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_PROTOCOL')
    assert.deepEqual(seen, [], 'no handler ran')
  })
})
