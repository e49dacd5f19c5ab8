/**
 * Card propagation benchmark: N nodes spread over worker processes on 127.0.0.1, each bootstrapped
 * to a few random earlier nodes. After warm-up (every node holds every card), nodes take turns
 * republishing their card, P times in all; for each publish we take the time until the last live
 * node holds it. Then: gossip duplicates per delivered message, CPU and RSS per node, and
 * late-joiner sync time.
 *
 *   node --import tsx scripts/bench/propagation.ts [--sizes 10,30,60,100] [--publishes 30]
 *        [--max-procs 30] [--sync 1000,10000] [--converge-timeout 600] [--dht on|off]
 *        [--json file] [--settle 2] [--gossip D=6,Dlo=4,floodPublish=true] [--kill-workers 0]
 *
 * `--settle S`: seconds between convergence and the first publish (start-up work such as the
 * DHT's first routing-table refresh then stays out of the publish phase's CPU figure).
 * `--dht off` runs the nodes without kad-dht (the product default is on).
 * `--gossip k=v,…` (diagnostic): sets gossipsub options on every started node, over the ones in
 * src/node/gossip-options.ts, e.g. the library defaults for a before/after in one sitting.
 * `--kill-workers K` (diagnostic): SIGKILLs the last K worker processes halfway through the
 * publishes, to show how a death is reported and counted.
 *
 * A worker that dies is reported on stderr (its nodes, exit code or signal, its last stderr
 * lines); its nodes count as dead in the row ("dead nodes"), publishes are counted as reaching
 * all *live* nodes, and the run goes on. A size that cannot finish is a failed row.
 */
import { WorkerProcess, formatDeath, type WorkerDeath } from './worker-rpc.js'
import { cpus, loadavg, totalmem } from 'node:os'
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { gossipOptions } from '../../src/node/gossip-options.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const sizes = (args.get('sizes') ?? '10,30,60,100').split(',').map(Number).filter((n) => n > 0) // --sizes 0: sync only
const publishes = Number(args.get('publishes') ?? 30)
const maxProcs = Number(args.get('max-procs') ?? 30)
const convergeTimeoutSecs = Number(args.get('converge-timeout') ?? 600)
const syncSizes = (args.get('sync') ?? '1000,10000').split(',').map(Number).filter((n) => n > 0)
const dht = (args.get('dht') ?? 'on') !== 'off'
const jsonFile = args.get('json')
const killWorkers = Number(args.get('kill-workers') ?? 0)
const settleSecs = Number(args.get('settle') ?? 2)
const gossipOverrides = parseOverrides(args.get('gossip') ?? '')
const workerPath = fileURLToPath(new URL('./propagation-worker.ts', import.meta.url))
// A stats or publish answer slower than this means a wedged worker: counted as failed, not awaited forever.
const REQUEST_TIMEOUT_MS = 60_000
const PUBLISH_WAIT_MS = 15_000

function parseOverrides (text: string): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {}
  for (const pair of text.split(',').filter((p) => p !== '')) {
    const [key, value] = pair.split('=')
    if (key === undefined || value === undefined) throw new Error(`--gossip: expected key=value, got ${pair}`)
    out[key] = value === 'true' ? true : value === 'false' ? false : Number(value)
  }
  return out
}

/** Called by every worker's death (after the report is printed): the publish in flight re-checks. */
let onAnyDeath: () => void = () => {}

class Worker extends WorkerProcess {
  onRecv: (m: { node: number, cid: string, at: number }) => void = () => {}
  nodeCount = 0

  constructor (label: string) {
    super(workerPath, {
      label,
      onMessage: (m) => { if (m.t !== 'recv') return false; this.onRecv(m); return true },
      onDeath: (d: WorkerDeath) => { console.error(formatDeath(d)); onAnyDeath() }
    })
  }
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ')
const num = (x: number, digits = 0): string => Number.isFinite(x) ? x.toFixed(digits) : 'n/a'

interface Stats { rss: number, nodes: Array<{ shown: number, mesh: number }>, received: number, cpuSecs: number, connections: number[], cardBytes: number, loopDelayP99Ms: number, loopDelayMaxMs: number }

interface PropagationRow {
  nodes: number
  processes: number
  dht: boolean
  startupSecs?: number
  p50Ms?: number
  p95Ms?: number
  p99Ms?: number
  maxMs?: number
  /** Publishes that reached every node alive when the publish's wait ended. */
  reachedAllLive: number
  publishes: number
  deadNodes: number
  duplicatesPerDelivery?: number
  /** CPU seconds per live node per minute of the publish phase (whole worker processes / their nodes). */
  cpuSecsPerNodePerMin?: number
  rssPerNodeMiB?: number
  meanConnections?: number
  meanMeshPeers?: number
  /** The worst worker's event-loop delay over the publish phase: p99 and max (ms). */
  loopDelayP99Ms?: number
  loopDelayMaxMs?: number
  cardBytes?: number
  loadBefore: string
  loadAfter: string
  failed?: string
}

async function propagation (n: number): Promise<PropagationRow> {
  const network = `bench${randomBytes(3).toString('hex')}`
  const procs = Math.min(n, maxProcs)
  const perProc = Array.from({ length: procs }, (_, i) => Math.floor(n / procs) + (i < n % procs ? 1 : 0))
  const workers: Worker[] = []
  const addrs: string[] = []
  const where: Array<{ w: Worker, index: number }> = []
  const row: PropagationRow = { nodes: n, processes: procs, dht, reachedAllLive: 0, publishes, deadNodes: 0, loadBefore: load(), loadAfter: '' }
  const live = (): Worker[] => workers.filter((w) => w.alive)
  const liveNodes = (): number => live().reduce((a, w) => a + w.nodeCount, 0)
  const deadNodes = (): number => n - liveNodes()
  // Dead workers answer nothing: stats come from the live ones, each bounded in time.
  const statsAll = async (): Promise<Map<Worker, Stats>> => {
    const answers = await Promise.allSettled(live().map(async (w) => [w, await w.request({ t: 'stats' }, 'stats', { timeoutMs: REQUEST_TIMEOUT_MS })] as const))
    return new Map(answers.flatMap((a) => a.status === 'fulfilled' ? [a.value] : []))
  }
  const t0 = Date.now()
  try {
    let first = 0
    for (const count of perProc) {
      const w = new Worker(`propagation worker ${workers.length} (nodes ${first}-${first + count - 1})`)
      first += count
      w.nodeCount = count
      workers.push(w)
      try {
        await w.request(null, 'ready', { timeoutMs: REQUEST_TIMEOUT_MS })
        // Each new node joins through up to 4 random earlier nodes: a mesh, not a star.
        const bootstrap = Array.from({ length: count }, () => {
          const picks = new Set<string>()
          while (addrs.length > 0 && picks.size < Math.min(4, addrs.length)) picks.add(addrs[Math.floor(Math.random() * addrs.length)] as string)
          return [...picks]
        })
        const { nodes } = await w.request({ t: 'start', network, count, bootstrap, dht, ...(Object.keys(gossipOverrides).length > 0 ? { gossip: gossipOverrides } : {}) }, 'started', { timeoutMs: REQUEST_TIMEOUT_MS * 5 })
        nodes.forEach((node: { addr: string }, index: number) => { addrs.push(node.addr); where.push({ w, index }) })
      } catch (err) {
        // Its nodes are dead from the start; the others still form a mesh through earlier addresses.
        console.error(`start of ${w.label} failed: ${(err as Error).message}`)
        w.kill('SIGKILL')
      }
    }
    for (;;) {
      if (live().length === 0) throw new Error('every worker died before convergence')
      const stats = await statsAll()
      if (stats.size === live().length && [...stats.values()].every((s) => s.nodes.every((x) => x.shown >= n))) break
      if (Date.now() - t0 > convergeTimeoutSecs * 1000) throw new Error(`no convergence in ${convergeTimeoutSecs} s`)
      await sleep(500)
    }
    row.startupSecs = (Date.now() - t0) / 1000
    await sleep(settleSecs * 1000)
    const before = await statsAll()
    const tBefore = performance.now()
    const latencies: number[] = []
    let deliveries = 0
    for (let i = 0; i < publishes; i++) {
      if (killWorkers > 0 && i === Math.floor(publishes / 2)) {
        const killed = live().slice(-killWorkers)
        for (const w of killed) { console.error(`--kill-workers: SIGKILL to ${w.label}`); w.kill('SIGKILL') }
        await Promise.all(killed.map(async (w) => await w.exited))
      }
      // Round-robin publishers over live nodes: one provider republishing many times a second would (rightly) be rate-limited.
      const candidates = where.filter((p) => p.w.alive)
      const target = candidates[i % Math.max(1, candidates.length)]
      if (target === undefined) throw new Error('no live node left to publish')
      // Arrival times by "worker/node" for each CID; receipts can arrive before the publish reply.
      const got = new Map<string, Map<string, { w: Worker, at: number }>>()
      let cid = ''
      let resolveDone: () => void = () => {}
      const done = new Promise<void>((resolve) => { resolveDone = resolve })
      const arrivedLive = (): Array<{ w: Worker, at: number }> => [...(got.get(cid)?.values() ?? [])].filter((x) => x.w.alive)
      const check = (): void => { if (cid !== '' && arrivedLive().length >= liveNodes()) resolveDone() }
      onAnyDeath = check
      for (const w of workers) {
        const wi = workers.indexOf(w)
        w.onRecv = (m) => {
          let byNode = got.get(m.cid)
          if (byNode === undefined) got.set(m.cid, byNode = new Map())
          byNode.set(`${wi}/${m.node}`, { w, at: m.at })
          check()
        }
      }
      let pub: { cid: string, at: number }
      try {
        pub = await target.w.request({ t: 'publish', node: target.index }, 'published', { timeoutMs: REQUEST_TIMEOUT_MS })
      } catch (err) {
        console.error(`publish ${i} failed: ${(err as Error).message}`)
        continue
      }
      cid = pub.cid
      check()
      let timer: NodeJS.Timeout | undefined
      const ok = await Promise.race([done.then(() => true), new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, PUBLISH_WAIT_MS) })])
      clearTimeout(timer)
      const arrived = arrivedLive()
      deliveries += Math.max(0, arrived.length - 1)
      if (ok && arrived.length >= liveNodes()) latencies.push(Math.max(...arrived.map((x) => x.at)) - pub.at)
      await sleep(300)
    }
    onAnyDeath = () => {}
    const after = await statsAll()
    const minutes = (performance.now() - tBefore) / 60_000
    // Only workers that answered both times: a dead one's counters are gone with it.
    const both = [...after.keys()].filter((w) => before.has(w))
    const sum = (f: (s: Stats) => number, m: Map<Worker, Stats>): number => both.reduce((a, w) => a + f(m.get(w) as Stats), 0)
    const nodesInBoth = both.reduce((a, w) => a + w.nodeCount, 0)
    const received = sum((s) => s.received, after) - sum((s) => s.received, before)
    const allAfter = [...after.values()]
    Object.assign(row, {
      p50Ms: pct(latencies, 50),
      p95Ms: pct(latencies, 95),
      p99Ms: pct(latencies, 99),
      maxMs: latencies.length > 0 ? Math.max(...latencies) : NaN,
      reachedAllLive: latencies.length,
      // Each publish is delivered once to each other node; the rest are duplicates.
      duplicatesPerDelivery: deliveries > 0 ? (received - deliveries) / deliveries : NaN,
      cpuSecsPerNodePerMin: (sum((s) => s.cpuSecs, after) - sum((s) => s.cpuSecs, before)) / Math.max(1, nodesInBoth) / minutes,
      rssPerNodeMiB: allAfter.reduce((a, s) => a + s.rss, 0) / Math.max(1, liveNodes()) / 2 ** 20,
      meanConnections: mean(allAfter.flatMap((s) => s.connections)),
      meanMeshPeers: mean(allAfter.flatMap((s) => s.nodes.map((x) => x.mesh))),
      cardBytes: Math.max(0, ...allAfter.map((s) => s.cardBytes)),
      loopDelayP99Ms: Math.max(...allAfter.map((s) => s.loopDelayP99Ms)),
      loopDelayMaxMs: Math.max(...allAfter.map((s) => s.loopDelayMaxMs))
    })
  } catch (err) {
    row.failed = (err as Error).message
    console.error(`N=${n} failed: ${(err as Error).stack ?? String(err)}`)
  } finally {
    onAnyDeath = () => {}
    row.deadNodes = deadNodes()
    await Promise.all(workers.map(async (w) => await w.stop({ t: 'stop' }, 'stopped')))
    row.loadAfter = load()
  }
  return row
}

function mean (xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, x) => a + x, 0) / xs.length
}

interface SyncRow { cards: number, startToAllSecs?: number, syncSessionSecs?: number, failed?: string }

async function lateJoiner (cards: number): Promise<SyncRow> {
  const network = `bench${randomBytes(3).toString('hex')}`
  const holder = new Worker('sync holder')
  let joiner: Worker | undefined
  try {
    await holder.request(null, 'ready', { timeoutMs: REQUEST_TIMEOUT_MS })
    const { nodes } = await holder.request({ t: 'start', network, count: 1, bootstrap: [[]], dht }, 'started', { timeoutMs: REQUEST_TIMEOUT_MS })
    const { size } = await holder.request({ t: 'inject', count: cards }, 'injected', { timeoutMs: REQUEST_TIMEOUT_MS * 10 })
    // Started only now: its 'ready' would be lost if it came while nobody waited for it.
    joiner = new Worker('sync joiner')
    await joiner.request(null, 'ready', { timeoutMs: REQUEST_TIMEOUT_MS })
    const t = performance.timeOrigin + performance.now()
    await joiner.request({ t: 'start', network, count: 1, bootstrap: [[nodes[0].addr]], dht }, 'started', { timeoutMs: REQUEST_TIMEOUT_MS })
    // The joiner's own card + everything the holder has.
    const { at, syncMs } = await joiner.request({ t: 'waitSize', size: size + 1 }, 'size', { timeoutMs: REQUEST_TIMEOUT_MS * 5 })
    return { cards, startToAllSecs: (at - t) / 1000, syncSessionSecs: syncMs / 1000 }
  } catch (err) {
    console.error(`late joiner ${cards} failed: ${(err as Error).message}`)
    return { cards, failed: (err as Error).message }
  } finally {
    await Promise.all([holder, joiner].map(async (w) => await w?.stop({ t: 'stop' }, 'stopped')))
  }
}

// A rejection nobody awaited (a worker's answer after its request timed out) is reported, not fatal.
process.on('unhandledRejection', (err) => { console.error(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`) })

const settings = gossipOptions({ topics: [] })
const gossipLine = `gossipsub: D ${settings.D} Dlo ${settings.Dlo} Dhi ${settings.Dhi} Dlazy ${settings.Dlazy} floodPublish ${String(settings.floodPublish)} gossipFactor ${settings.gossipFactor} heartbeat ${settings.heartbeatInterval} ms fastMsgId ${settings.fastMsgIdFn !== undefined ? 'on' : 'off'}` +
  (Object.keys(gossipOverrides).length > 0 ? `; overridden for this run: ${JSON.stringify(gossipOverrides)}` : '')
const command = `node --import tsx scripts/bench/propagation.ts ${process.argv.slice(2).join(' ')}`.trim()
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`
console.log(`machine: ${machine}`)
console.log(`command: ${command}`)
console.log(`${gossipLine}; DHT ${dht ? 'on' : 'off'}; settle ${settleSecs} s; ${publishes} publishes 300 ms apart`)
console.log('')
const columns = ['nodes', 'processes', 'DHT', 'start-up + first convergence (s)', 'p50 (ms)', 'p95 (ms)', 'p99 (ms)', 'max (ms)', 'publishes reaching all live nodes', 'dead nodes', 'duplicates per delivery', 'CPU s per node per min', 'RSS per node (MiB)', 'connections per node', 'mesh peers per node', 'event-loop delay p99 / max (ms)', 'load avg before → after']
console.log(`| ${columns.join(' | ')} |`)
console.log(`|${columns.map(() => '---').join('|')}|`)
const rows: PropagationRow[] = []
const cells: Array<Array<string | number>> = []
for (const n of sizes) {
  const r = await propagation(n)
  rows.push(r)
  const line = r.failed !== undefined && r.startupSecs === undefined
    ? [r.nodes, r.processes, dht ? 'on' : 'off', `failed: ${r.failed}`, '', '', '', '', '', r.deadNodes, '', '', '', '', '', '', `${r.loadBefore} → ${r.loadAfter}`]
    : [r.nodes, r.processes, dht ? 'on' : 'off', num(r.startupSecs ?? NaN, 1), num(r.p50Ms ?? NaN), num(r.p95Ms ?? NaN), num(r.p99Ms ?? NaN), num(r.maxMs ?? NaN),
        `${r.reachedAllLive}/${r.publishes}${r.failed !== undefined ? ` (failed: ${r.failed})` : ''}`, r.deadNodes, num(r.duplicatesPerDelivery ?? NaN, 2), num(r.cpuSecsPerNodePerMin ?? NaN, 2),
        num(r.rssPerNodeMiB ?? NaN), num(r.meanConnections ?? NaN, 1), num(r.meanMeshPeers ?? NaN, 1), `${num(r.loopDelayP99Ms ?? NaN)} / ${num(r.loopDelayMaxMs ?? NaN)}`, `${r.loadBefore} → ${r.loadAfter}`]
  cells.push(line)
  console.log(`| ${line.join(' | ')} |`)
}
const syncColumns = ['late joiner: cards held by the peer', 'node start → holding all (s)', 'of which the sync session (s)']
const syncRows: SyncRow[] = []
const syncCells: Array<Array<string | number>> = []
if (syncSizes.length > 0) {
  console.log('')
  console.log(`| ${syncColumns.join(' | ')} |`)
  console.log('|---|---|---|')
  for (const c of syncSizes) {
    const r = await lateJoiner(c)
    syncRows.push(r)
    const line = r.failed !== undefined ? [c, `failed: ${r.failed}`, ''] : [c, num(r.startToAllSecs ?? NaN, 2), num(r.syncSessionSecs ?? NaN, 2)]
    syncCells.push(line)
    console.log(`| ${line.join(' | ')} |`)
  }
}
if (jsonFile !== undefined) {
  // tables[].rows are the printed cells; tables[].data the raw figures (NaN becomes null).
  await writeFile(jsonFile, JSON.stringify({
    bench: 'propagation',
    command,
    machine,
    notes: [`${gossipLine}; DHT ${dht ? 'on' : 'off'}`],
    tables: [
      { title: 'Card propagation', columns, rows: cells, data: rows },
      ...(syncRows.length > 0 ? [{ title: 'Late-joiner sync', columns: syncColumns, rows: syncCells, data: syncRows }] : [])
    ]
  }, null, 2))
}
const failed = rows.filter((r) => r.failed !== undefined).length + syncRows.filter((r) => r.failed !== undefined).length
process.exitCode = failed > 0 ? 1 : 0
