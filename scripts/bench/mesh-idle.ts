/**
 * What a node costs when nothing happens, and what a partition and a stop cost: N in-process
 * `CmeshNode`s on 127.0.0.1 (production gossip heartbeat, simulated TDX attestation as on embedded
 * defaults), each joining through up to 4 random earlier nodes. Measured:
 *   - start: each node's `start()` (p50, max), while the earlier ones run;
 *   - idle: process CPU seconds per node per minute once every node holds every card;
 *   - partition: the second half stops; TCP connection attempts per second at their (now closed)
 *     ports from the first half (counted at `net.connect`, which @libp2p/tcp dials through), over
 *     the whole window and over its last third;
 *   - stop: each remaining node's `stop()` (p50, max).
 * `--dht on|off` picks the DHT (on by default in the node's config).
 *
 *   node --import tsx scripts/bench/mesh-idle.ts [--nodes 20] [--idle 60] [--partition 30] [--dht on|off] [--json <file>]
 */
import '../../src/node/polyfills.js'
import net from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { createLogger } from '../../src/node/logger.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const count = Number(args.get('nodes') ?? 20)
const idleSecs = Number(args.get('idle') ?? 60)
const partitionSecs = Number(args.get('partition') ?? 30)
const dht = (args.get('dht') ?? 'on') === 'on'
const jsonOut = args.get('json')

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))] ?? NaN
const cpuSecs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }

// Every outbound TCP connection attempt, by destination port.
const attempts = new Map<number, number>()
const connect = net.connect.bind(net)
;(net as { connect: typeof net.connect }).connect = ((...a: Parameters<typeof net.connect>) => {
  const port = Number((a[0] as { port?: number }).port)
  attempts.set(port, (attempts.get(port) ?? 0) + 1)
  return connect(...a)
}) as typeof net.connect

const log = createLogger('bench', 'silent')
const network = `idle${randomBytes(3).toString('hex')}`
const nodes: CmeshNode[] = []
const dirs: string[] = []
const starts: number[] = []
const addrs: string[] = []
for (let i = 0; i < count; i++) {
  const dir = await mkdtemp(join(tmpdir(), 'cmesh-idle-'))
  dirs.push(dir)
  const bootstrap = new Set<string>()
  while (addrs.length > 0 && bootstrap.size < Math.min(4, addrs.length)) bootstrap.add(addrs[Math.floor(Math.random() * addrs.length)] as string)
  const node = new CmeshNode({ config: resolveConfig({ network, dataDir: dir, dht, bootstrap: [...bootstrap] }), log, api: false })
  const t = performance.now()
  await node.start()
  starts.push(performance.now() - t)
  nodes.push(node)
  addrs.push(`${node.libp2p.getMultiaddrs()[0]?.toString() ?? ''}`)
}
const convergeStarted = performance.now()
while (!nodes.every((n) => n.collection.size === count)) {
  if (performance.now() - convergeStarted > 300_000) throw new Error('no convergence in 300 s')
  await sleep(200)
}
const convergeSecs = (performance.now() - convergeStarted) / 1000
// Let the start-up work (first syncs, evidence checks, bonds) finish before the idle window.
await sleep(5000)
const idleCpu0 = cpuSecs()
await sleep(idleSecs * 1000)
const idleCpuPerNodeMin = (cpuSecs() - idleCpu0) / count / (idleSecs / 60)
const rssPerNode = process.memoryUsage().rss / 2 ** 20 / count

const half = Math.floor(count / 2)
const gone = nodes.splice(half)
const gonePorts = new Set(gone.map((n) => Number(n.libp2p.getMultiaddrs()[0]?.toString().split('/')[4])))
await Promise.all(gone.map(async (n) => { await n.stop() }))
const attemptsAt = (): number => [...gonePorts].reduce((s, p) => s + (attempts.get(p) ?? 0), 0)
await sleep(1000)
const part0 = attemptsAt()
const partCpu0 = cpuSecs()
await sleep(partitionSecs * 1000 * 2 / 3)
const partLate0 = attemptsAt()
await sleep(partitionSecs * 1000 / 3)
const dialsPerSec = (attemptsAt() - part0) / partitionSecs
// The last third: what a partition settles to once every address has failed a few times.
const lateDialsPerSec = (attemptsAt() - partLate0) / (partitionSecs / 3)
const partitionCpuPerNodeMin = (cpuSecs() - partCpu0) / nodes.length / (partitionSecs / 60)

const stops: number[] = []
await Promise.all(nodes.map(async (n) => { const t = performance.now(); await n.stop(); stops.push(performance.now() - t) }))
await Promise.all(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))

const row = {
  bench: 'mesh-idle',
  nodes: count,
  dht,
  startP50Ms: Math.round(pct(starts, 50)),
  startMaxMs: Math.round(Math.max(...starts)),
  convergeSecs: Number(convergeSecs.toFixed(1)),
  idleCpuSecsPerNodePerMin: Number(idleCpuPerNodeMin.toFixed(3)),
  rssMiBPerNode: Number(rssPerNode.toFixed(1)),
  partitionDialsPerSec: Number(dialsPerSec.toFixed(1)),
  partitionLastThirdDialsPerSec: Number(lateDialsPerSec.toFixed(1)),
  partitionCpuSecsPerNodePerMin: Number(partitionCpuPerNodeMin.toFixed(3)),
  stopP50Ms: Math.round(pct(stops, 50)),
  stopMaxMs: Math.round(Math.max(...stops)),
  load: loadavg().map((l) => Number(l.toFixed(2))),
  machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`
}
console.log(JSON.stringify(row))
if (jsonOut !== undefined) await writeFile(jsonOut, JSON.stringify([row], null, 2) + '\n')
process.exit(0)
