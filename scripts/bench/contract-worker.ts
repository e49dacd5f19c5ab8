/**
 * Contract benchmark helpers, and its worker process: hosts provider nodes and answers the driver
 * (contract.ts) over IPC when forked with CMESH_BENCH_CONTRACT_WORKER=1. Not part of the product.
 *
 * IPC: { t: 'start', network, indices, room } → { t: 'started', nodes: [{ did, addrs }] };
 *      { t: 'stats' } → { t: 'stats', stats: ProviderStats }; { t: 'stop' } → { t: 'stopped' }.
 */
import '../../src/node/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import childProcess from 'node:child_process'
import { syncBuiltinESMExports } from 'node:module'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig, type NodeConfigInput } from '../../src/node/config.js'
import { createLogger } from '../../src/node/logger.js'

const log = createLogger('bench', (process.env.CMESH_LOG as any) ?? 'silent')

/** Cumulative, per process: what the providers hosted here did. Rounds take deltas. */
export interface ProviderStats {
  /** cmesh_provision_duration_seconds{outcome="ready"}: Σ seconds and count over this process's providers. */
  provisionSum: number
  provisionCount: number
  /** ProviderService.fulfil (accept received → CCR + sealed receipt returned), ms. */
  fulfilSum: number
  fulfilCount: number
  /** Time child_process.spawn() blocked the thread (user_data start: fork + exec of this process), ms. */
  spawnSum: number
  spawnCount: number
}

const counters = { fulfilSum: 0, fulfilCount: 0, spawnSum: 0, spawnCount: 0 }

/** Wraps child_process.spawn (ESM bindings resynced) to time each call. */
export function instrumentSpawn (): void {
  const original = childProcess.spawn
  childProcess.spawn = ((...a: Parameters<typeof original>) => {
    const t = performance.now()
    try {
      return original(...a)
    } finally {
      counters.spawnSum += performance.now() - t
      counters.spawnCount++
    }
  }) as typeof original
  syncBuiltinESMExports()
}

/** A provider card with room for `room` concurrent 1-cpu/512 MiB/1 GiB grants, priced by index (provider 0 cheapest). */
export function providerCard (i: number, room: number): NodeConfigInput['card'] {
  return {
    schemesSupported: ['vm.ssh'],
    attestationLevel: 'Software',
    capacityPerSecond: 10,
    feePerPartialWei: String(1000 + i),
    backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: room, maxMemoryMiB: room * 512, maxDiskGiB: room, tdx: false }],
    rates: [{ backend: 'local', cpuHourWei: String(1_000_000 + i * 1000), memoryGiBHourWei: '1000', diskGiBHourWei: '10' }]
  }
}

/** An in-process node as test/helpers/mesh.ts makes one, but with the production gossip heartbeat (1 s); no DHT. */
export async function startNode (network: string, config: NodeConfigInput, dirs: string[]): Promise<CmeshNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-bench-contract-'))
  dirs.push(dataDir)
  const node = new CmeshNode({ config: resolveConfig({ network, dataDir, dht: false, ...config }), log, api: false })
  await node.start()
  return node
}

export async function startProvider (network: string, index: number, room: number, dirs: string[]): Promise<CmeshNode> {
  const node = await startNode(network, { roles: ['provider'], card: providerCard(index, room) }, dirs)
  // The bid protocol's handler calls this.fulfil: an own property shadows the prototype's.
  const service = node.services.provider as any
  const fulfil = service.fulfil.bind(service)
  service.fulfil = async (...a: unknown[]) => {
    const t = performance.now()
    try {
      return await fulfil(...a)
    } finally {
      counters.fulfilSum += performance.now() - t
      counters.fulfilCount++
    }
  }
  return node
}

export async function providerStats (providers: CmeshNode[]): Promise<ProviderStats> {
  let provisionSum = 0
  let provisionCount = 0
  for (const p of providers) {
    const metric = p.metrics.registry.getSingleMetric('cmesh_provision_duration_seconds')
    if (metric === undefined) continue
    for (const v of (await metric.get()).values) {
      if (v.labels.outcome !== 'ready') continue
      const name = (v as { metricName?: string }).metricName
      if (name === 'cmesh_provision_duration_seconds_sum') provisionSum += v.value
      if (name === 'cmesh_provision_duration_seconds_count') provisionCount += v.value
    }
  }
  return { provisionSum, provisionCount, ...counters }
}

export async function stopNodes (nodes: CmeshNode[], dirs: string[]): Promise<void> {
  await Promise.allSettled(nodes.map(async (n) => { await n.stop() }))
  await Promise.allSettled(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
}

if (process.env.CMESH_BENCH_CONTRACT_WORKER === '1') {
  instrumentSpawn()
  const nodes: CmeshNode[] = []
  const dirs: string[] = []
  // A driver that is gone cannot be told anything: a failed send is dropped, never an uncaught EPIPE.
  const send = (msg: unknown): void => { if (process.connected) process.send?.(msg, undefined, undefined, () => {}) }
  process.on('message', (msg: any) => {
    const run = async (): Promise<void> => {
      switch (msg.t) {
        case 'start': {
          const started = []
          for (const i of msg.indices as number[]) {
            const node = await startProvider(msg.network, i, msg.room, dirs)
            nodes.push(node)
            started.push({ did: node.identity.did, addrs: node.libp2p.getMultiaddrs().map((a) => a.toString()) })
          }
          send({ t: 'started', nodes: started })
          return
        }
        case 'stats': send({ t: 'stats', stats: await providerStats(nodes) }); return
        case 'stop':
          await stopNodes(nodes, dirs)
          send({ t: 'stopped' })
          process.exit(0)
      }
    }
    run().catch((err) => { send({ t: 'error', message: (err as Error).stack ?? String(err) }) })
  })
  // The driver died or finished: never linger as an orphan.
  process.on('disconnect', () => process.exit(1))
  send({ t: 'ready' })
}
