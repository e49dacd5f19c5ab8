/**
 * Card propagation benchmark: N nodes spread over worker processes on 127.0.0.1, each bootstrapped
 * to a few random earlier nodes. After warm-up (every node holds every card), nodes take turns
 * republishing their card, P times in all; for each publish we take the time until the last node holds it.
 * Then: gossip duplicates per delivered message, RSS per node, and late-joiner sync time.
 *
 *   node --import tsx scripts/bench/propagation.ts [--sizes 10,30,60,100] [--publishes 30]
 *        [--max-procs 30] [--sync 1000,10000] [--converge-timeout 600]
 */
import { WorkerProcess } from './worker-rpc.js'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const sizes = (args.get('sizes') ?? '10,30,60,100').split(',').map(Number).filter((n) => n > 0) // --sizes 0: sync only
const publishes = Number(args.get('publishes') ?? 30)
const maxProcs = Number(args.get('max-procs') ?? 30)
const convergeTimeoutSecs = Number(args.get('converge-timeout') ?? 600)
const syncSizes = (args.get('sync') ?? '1000,10000').split(',').map(Number).filter((n) => n > 0)
const workerPath = fileURLToPath(new URL('./propagation-worker.ts', import.meta.url))

class Worker extends WorkerProcess {
  onRecv: (m: { node: number, cid: string, at: number }) => void = () => {}

  constructor () {
    super(workerPath, { onMessage: (m) => { if (m.t !== 'recv') return false; this.onRecv(m); return true } })
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function propagation (n: number): Promise<string> {
  const network = `bench${randomBytes(3).toString('hex')}`
  const procs = Math.min(n, maxProcs)
  const perProc = Array.from({ length: procs }, (_, i) => Math.floor(n / procs) + (i < n % procs ? 1 : 0))
  const workers: Worker[] = []
  const addrs: string[] = []
  const where: Array<{ w: Worker, index: number }> = []
  const t0 = Date.now()
  for (const count of perProc) {
    const w = new Worker()
    await w.request(null, 'ready')
    // Each new node joins through up to 4 random earlier nodes: a mesh, not a star.
    const bootstrap = Array.from({ length: count }, () => {
      const picks = new Set<string>()
      while (addrs.length > 0 && picks.size < Math.min(4, addrs.length)) picks.add(addrs[Math.floor(Math.random() * addrs.length)] as string)
      return [...picks]
    })
    const { nodes } = await w.request({ t: 'start', network, count, bootstrap }, 'started')
    nodes.forEach((node: { addr: string }, index: number) => { addrs.push(node.addr); where.push({ w, index }) })
    workers.push(w)
  }
  const statsAll = async () => await Promise.all(workers.map((w) => w.request({ t: 'stats' }, 'stats')))
  for (;;) {
    const stats = await statsAll()
    if (stats.every((s) => s.nodes.every((x: { shown: number }) => x.shown === n))) break
    if (Date.now() - t0 > convergeTimeoutSecs * 1000) {
      await Promise.all(workers.map((w) => w.child.kill()))
      return `| ${n} | ${procs} | no convergence in ${convergeTimeoutSecs} s | | | | | | | |`
    }
    await sleep(500)
  }
  const warmup = (Date.now() - t0) / 1000
  await sleep(2000)
  const before = await statsAll()
  const latencies: number[] = []
  let missed = 0
  for (let i = 0; i < publishes; i++) {
    // Round-robin publishers: one provider republishing many times a second would (rightly) be rate-limited.
    const target = where[i % where.length] as { w: Worker, index: number }
    // Arrival times by "worker/node" for each CID; receipts can arrive before the publish reply.
    const got = new Map<string, Map<string, number>>()
    let cid = ''
    let resolveDone: () => void = () => {}
    const done = new Promise<void>((resolve) => { resolveDone = resolve })
    const check = () => { if (cid !== '' && (got.get(cid)?.size ?? 0) >= n) resolveDone() }
    for (const w of workers) {
      w.onRecv = (m) => {
        let byNode = got.get(m.cid)
        if (byNode === undefined) got.set(m.cid, byNode = new Map())
        byNode.set(`${workers.indexOf(w)}/${m.node}`, m.at)
        check()
      }
    }
    const pub = await target.w.request({ t: 'publish', node: target.index }, 'published')
    cid = pub.cid
    check()
    const ok = await Promise.race([done.then(() => true), sleep(15_000).then(() => false)])
    const times = [...(got.get(cid)?.values() ?? [])]
    if (!ok) missed++
    else latencies.push(Math.max(...times) - pub.at)
    await sleep(300)
  }
  const after = await statsAll()
  const received = after.reduce((a, s) => a + s.received, 0) - before.reduce((a, s) => a + s.received, 0)
  // Each publish is delivered once to each of the other n-1 nodes; the rest are duplicates.
  const delivered = (publishes - missed) * (n - 1)
  const dupes = delivered > 0 ? (received - delivered) / delivered : NaN
  const rssPerNode = after.reduce((a, s) => a + s.rss, 0) / n / 1024 / 1024
  await Promise.all(workers.map((w) => w.request({ t: 'stop' }, 'stopped')))
  return `| ${n} | ${procs} | ${warmup.toFixed(1)} | ${pct(latencies, 50).toFixed(0)} | ${pct(latencies, 95).toFixed(0)} | ${pct(latencies, 99).toFixed(0)} | ${Math.max(...latencies).toFixed(0)} | ${latencies.length}/${publishes} | ${dupes.toFixed(2)} | ${rssPerNode.toFixed(0)} |`
}

async function lateJoiner (cards: number): Promise<string> {
  const network = `bench${randomBytes(3).toString('hex')}`
  const holder = new Worker()
  await holder.request(null, 'ready')
  const { nodes } = await holder.request({ t: 'start', network, count: 1, bootstrap: [[]] }, 'started')
  const { size } = await holder.request({ t: 'inject', count: cards }, 'injected')
  const joiner = new Worker()
  await joiner.request(null, 'ready')
  const t = performance.timeOrigin + performance.now()
  const started = joiner.request({ t: 'start', network, count: 1, bootstrap: [[nodes[0].addr]] }, 'started')
  await started
  // The joiner's own card + everything the holder has.
  const { at, syncMs } = await joiner.request({ t: 'waitSize', size: size + 1 }, 'size')
  await Promise.all([holder, joiner].map((w) => w.request({ t: 'stop' }, 'stopped')))
  return `| ${cards} | ${((at - t) / 1000).toFixed(2)} | ${(syncMs / 1000).toFixed(2)} |`
}

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
console.log(`command: node --import tsx scripts/bench/propagation.ts ${process.argv.slice(2).join(' ')}`.trim())
console.log('')
console.log('| nodes | processes | start-up + first convergence (s) | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | publishes reaching all | duplicates per delivery | RSS per node (MiB) |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const n of sizes) console.log(await propagation(n))
console.log('')
console.log('| late joiner: cards held by the peer | node start → holding all (s) | of which the sync session (s) |')
console.log('|---|---|---|')
for (const c of syncSizes) console.log(await lateJoiner(c))
