/**
 * Benchmark worker: hosts one or more cmesh nodes in this process and answers the driver
 * (propagation.ts) over IPC. Not part of the product; see propagation.ts for the protocol.
 */
import '../../src/node/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { sha256 } from '@noble/hashes/sha2.js'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { createLogger } from '../../src/node/logger.js'
import { identityFromSeed, rateTableDigest, signRecord, ProviderCardType, utf8, type Rate } from '../../src/market/index.js'

const nodes: CmeshNode[] = []
const dirs: string[] = []
const log = createLogger('bench', (process.env.CMESH_LOG as any) ?? 'silent')
const now = () => performance.timeOrigin + performance.now()
let received = 0
// A driver that is gone cannot be told anything: a failed send is dropped, never an uncaught EPIPE.
const send = (msg: unknown): void => { if (process.connected) process.send?.(msg, undefined, undefined, () => {}) }
let cardBytes = 0
// How late this process's event loop runs (every node here shares it): a message waits that long at each hop.
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()

function countRpcMessages (node: CmeshNode, topic: string): void {
  // Every gossip message that arrives, first copy or duplicate, passes handleReceivedMessage.
  const pubsub = node.libp2p.services.pubsub as any
  const original = pubsub.handleReceivedMessage.bind(pubsub)
  pubsub.handleReceivedMessage = (from: unknown, rpcMsg: { topic: string, data?: Uint8Array }) => {
    if (rpcMsg.topic === topic) { received++; cardBytes = rpcMsg.data?.length ?? cardBytes }
    return original(from, rpcMsg)
  }
}

/**
 * Diagnostic only (the `--gossip` flag): gossipsub reads these options from its `opts` object at
 * each heartbeat and publish, so a started node can be set back to other values (e.g. the
 * library defaults, to measure a before/after in one sitting). `fastMsgId=false` removes the fast
 * duplicate check.
 */
function overrideGossip (node: CmeshNode, overrides: Record<string, number | boolean>): void {
  const pubsub = node.libp2p.services.pubsub as any
  for (const [key, value] of Object.entries(overrides)) {
    if (key === 'fastMsgId') {
      if (value === false) { pubsub.fastMsgIdFn = undefined; pubsub.fastMsgIdCache = undefined }
      continue
    }
    if (!(key in pubsub.opts)) throw new Error(`gossipsub has no option ${key}`)
    pubsub.opts[key] = value
  }
}

async function start (msg: { network: string, count: number, bootstrap: string[][], syncIntervalSecs?: number, dht?: boolean, gossip?: Record<string, number | boolean> }): Promise<void> {
  const started: Array<{ peerId: string, did: string, addr: string }> = []
  for (let i = 0; i < msg.count; i++) {
    const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-bench-'))
    dirs.push(dataDir)
    const node = new CmeshNode({
      config: resolveConfig({ network: msg.network, dataDir, bootstrap: msg.bootstrap[i] ?? [], syncIntervalSecs: msg.syncIntervalSecs ?? 10, dht: msg.dht ?? true }),
      log,
      api: false
    })
    await node.start()
    const index = nodes.length
    nodes.push(node)
    countRpcMessages(node, node.services.gossip.cards.topic)
    if (msg.gossip !== undefined) overrideGossip(node, msg.gossip)
    node.collection.subscribe((change) => {
      if (change.card !== undefined) send({ t: 'recv', node: index, cid: change.card.cid.toString(), at: now() })
    })
    started.push({ peerId: node.libp2p.peerId.toString(), did: node.identity.did, addr: node.libp2p.getMultiaddrs()[0]?.toString() ?? '' })
  }
  send({ t: 'started', nodes: started })
}

function stats (): void {
  const pubsub = (n: CmeshNode) => n.libp2p.services.pubsub as unknown as { getMeshPeers: (t: string) => string[] }
  send({
    t: 'stats',
    rss: process.memoryUsage().rss,
    nodes: nodes.map((n) => ({ shown: n.collection.cards(Math.floor(Date.now() / 1000)).length, mesh: pubsub(n).getMeshPeers(n.services.gossip.cards.topic).length, accepted: n.services.gossip.cards.stats.accept })),
    received,
    // CPU seconds of this whole process (all its nodes and the runtime), for CPU per node.
    cpuSecs: (() => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6 })(),
    connections: nodes.map((n) => n.libp2p.getConnections().length),
    cardBytes,
    // Since the previous stats request (the driver asks just before and just after the publishes).
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6
  })
  loopDelay.reset()
}

async function inject (count: number): Promise<void> {
  const node = nodes[0] as CmeshNode
  const rates: Rate[] = [{ backend: 'local', cpuHourWei: 1n, memoryGiBHourWei: 1n, diskGiBHourWei: 1n }]
  const t = Math.floor(Date.now() / 1000)
  for (let i = 0; i < count; i++) {
    const id = identityFromSeed(sha256(utf8(`synthetic ${i}`)))
    node.collection.apply(signRecord(ProviderCardType, {
      providerId: id.did, schemesSupported: ['vm.ssh'], attestationLevel: 'Software', attestationDigest: sha256(utf8(id.did)),
      capacityPerSecond: 1, feePerPartialWei: BigInt(i), committedAtUnixSecs: t, expiresAtUnixSecs: t + 7200,
      backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 1, maxMemoryMiB: 512, maxDiskGiB: 1, tdx: false }],
      rates, rateTableDigest: rateTableDigest(rates), listenAddrs: []
    }, id), t)
  }
  send({ t: 'injected', size: node.collection.size })
}

async function waitSize (size: number): Promise<void> {
  const node = nodes[0] as CmeshNode
  while (node.collection.size < size) await new Promise((resolve) => setTimeout(resolve, 5))
  const sessions = [...node.services.sync.results.values()]
  send({ t: 'size', at: now(), syncMs: Math.max(0, ...sessions.map((r) => r.ms)), fetched: sessions.reduce((a, r) => a + r.fetched, 0) })
}

process.on('message', (msg: any) => {
  const run = async () => {
    switch (msg.t) {
      case 'start': return await start(msg)
      case 'publish': {
        const at = now()
        const card = await (nodes[msg.node] as CmeshNode).services.ownCard.publish()
        return send({ t: 'published', cid: card.cid.toString(), at })
      }
      case 'stats': return stats()
      case 'inject': return await inject(msg.count)
      case 'waitSize': return await waitSize(msg.size)
      case 'stop':
        await Promise.allSettled(nodes.map((n) => n.stop()))
        await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })))
        send({ t: 'stopped' })
        return process.exit(0)
    }
  }
  run().catch((err) => send({ t: 'error', message: (err as Error).stack ?? String(err) }))
})
// The driver died or finished: never linger as an orphan.
process.on('disconnect', () => process.exit(1))
send({ t: 'ready' })
