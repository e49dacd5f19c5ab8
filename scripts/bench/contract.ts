/**
 * Contract flow benchmark: RFP → opened receipt with 1, 5 and 20 bidding providers on the embedded
 * local backend (LocalDevBackend: a real ssh2 server and a real /bin/sh user_data run per grant).
 *
 *   node --import tsx scripts/bench/contract.ts [--sizes 1,5,20] [--rounds 10] [--warmup 1]
 *        [--window 10] [--gap 300] [--provider-procs 0] [--timeout 900]
 *        [--profile file.cpuprofile] [--profile-interval 1000] [--defer-releases 0] [--json file]
 *
 * Per N: one requester and N providers, CmeshNodes on 127.0.0.1 made as test/helpers/mesh.ts makes
 * them (but the production gossip heartbeat, 1 s; no DHT). Providers live in this process by
 * default, or in `--provider-procs P` worker processes (contract-worker.ts), so that this thread
 * does only the requester's work. The requester dials every provider and waits until it holds all
 * N cards with a settled verified level for each. Then `--warmup` unmeasured rounds (the first
 * opens the bid protocol and bonds at the floor on every connection: reported as "cold") and
 * `--rounds` measured rounds, one at a time, `--gap` ms apart, of: requester.create(rfp: 1 cpu,
 * 512M, a one-line user_data, 60 s contract, `--window` s bid window) → state 'ready' →
 * requester.receipt(id) → openReceipt. Each provider's card has room for every round's grant at
 * once; provider 0 is the cheapest, so it wins every round.
 *
 * Per round (durations taken where they happen):
 *   (a) total: create() called → receipt opened by the caller;
 *   (b) collecting: create() called → the flow's state leaves 'collecting' (every provider has
 *       answered: with a 10 s window, early close is what ends it);
 *   (c) (a) − (b): choose, CCBA, accept, provisioning, CCR + receipt, fetch and open;
 *   (d) provisioning: the chosen provider's cmesh_provision_duration_seconds observation (the _sum
 *       delta over all providers' prom-client registries; exactly one observation per round).
 * The flow's state is watched through an accessor on the requester's in-memory flow object, so the
 * 'ready' moment is exact (what a requester.status(id) poll would see first, without a poll
 * interval); status(id) is then read once to check 'ready'. ProviderService.fulfil and
 * child_process.spawn are wrapped to time them. A failed round is reported (stderr, and counted
 * in the table) and the run goes on; the exit code is then 1.
 *
 * `--defer-releases ms` (diagnostic, not the product's behaviour): the requester's "not chosen"
 * releases to the N − 1 other bidders start this much later, off the accept path.
 * `--profile f`: V8 CPU profile of this process (sampling every `--profile-interval` µs) over the
 * measured rounds at the largest N, written to f, with the (c) windows beside it
 * (f + '.windows.json'); the samples inside those windows are summarised (self time by package
 * and by function). Sampling signals make fork() restart, so spawn is over-counted in a profile.
 */
import '../../src/node/polyfills.js'
import { WorkerProcess } from './worker-rpc.js'
import { writeFile } from 'node:fs/promises'
import { execFileSync } from 'node:child_process'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { Session } from 'node:inspector/promises'
import { multiaddr } from '@multiformats/multiaddr'
import type { CmeshNode } from '../../src/node/node.js'
import { openReceipt } from '../../src/market/sealed-receipt.js'
import { cidForBytes } from '../../src/market/cbor.js'
import type { RfpRequest } from '../../src/node/services/requester.js'
import { instrumentSpawn, providerStats, startNode, startProvider, stopNodes, type ProviderStats } from './contract-worker.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const sizes = (args.get('sizes') ?? '1,5,20').split(',').map(Number).filter((n) => n > 0)
const rounds = Number(args.get('rounds') ?? 10)
const warmup = Number(args.get('warmup') ?? 1)
const windowSecs = Number(args.get('window') ?? 10)
const gapMs = Number(args.get('gap') ?? 300)
const timeoutSecs = Number(args.get('timeout') ?? 900)
const providerProcs = Number(args.get('provider-procs') ?? 0)
const profileFile = args.get('profile')
const jsonFile = args.get('json')
// Diagnostic: hold the requester's "not chosen" releases back this many ms (0: as the product does).
const deferReleasesMs = Number(args.get('defer-releases') ?? 0)
const profileIntervalUs = Number(args.get('profile-interval') ?? 1000)
const DURATION_SECS = 60 // the shortest contract a CCRFP may ask for
const ROOM = warmup + rounds + 8 // every round's grant may go to one provider and lasts 60 s
const workerPath = fileURLToPath(new URL('./contract-worker.ts', import.meta.url))

// Every run ends by itself: a hung flow or a node that will not stop cannot keep the process alive.
const watchdog = setTimeout(() => {
  console.error(`contract bench: still running after ${timeoutSecs} s; giving up`)
  process.exit(1)
}, timeoutSecs * 1000)
watchdog.unref()
instrumentSpawn()

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN
}
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const fmt = (xs: number[]): string => xs.length === 0 ? 'n/a' : `${pct(xs, 50).toFixed(0)} / ${pct(xs, 95).toFixed(0)}`
const fmt1 = (xs: number[]): string => xs.length === 0 ? 'n/a' : `${pct(xs, 50).toFixed(1)} / ${pct(xs, 95).toFixed(1)}`
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ')

async function waitFor (what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(20)
  }
}

function rfp (round: number): RfpRequest {
  return {
    cpus: 1, mem: '512M', disk: '1G', network: '1G', role: 'default',
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: DURATION_SECS, bidWindowSecs: windowSecs },
    userData: new TextEncoder().encode(`echo "bench round ${round}" > hello.txt\n`)
  }
}

interface Round {
  total: number
  collecting: number
  rest: number
  provision: number
  /** Breakdown of `rest`, from the flow's state transitions and the provider's fulfil. */
  parts: Record<string, number>
  bids: number
  cpuMs: number
  rssMiB: number
}

class Worker extends WorkerProcess {
  constructor (label: string) {
    super(workerPath, { label, env: { ...process.env, CMESH_BENCH_CONTRACT_WORKER: '1' } })
  }
}

interface Mesh {
  requester: CmeshNode
  /** Provider nodes in this process (none when they live in workers). */
  local: CmeshNode[]
  workers: Worker[]
  dirs: string[]
  startupSecs: number
  /** State transitions per flow id: [state, performance.now()]. */
  transitions: Map<string, Array<[string, number]>>
  ended: Map<string, (state: string) => void>
  /** Flows whose end is saved and announced: id → state. */
  saved: Map<string, string>
}

async function startMesh (n: number): Promise<Mesh> {
  const network = `bench${randomBytes(3).toString('hex')}`
  const dirs: string[] = []
  const t0 = performance.now()
  const local: CmeshNode[] = []
  const workers: Worker[] = []
  const providers: Array<{ did: string, addrs: string[] }> = []
  if (providerProcs <= 0) {
    for (let i = 0; i < n; i++) {
      const node = await startProvider(network, i, ROOM, dirs)
      local.push(node)
      providers.push({ did: node.identity.did, addrs: node.libp2p.getMultiaddrs().map((a) => a.toString()) })
    }
  } else {
    const procs = Math.min(n, providerProcs)
    const indices = Array.from({ length: procs }, (_, w) => Array.from({ length: n }, (_, i) => i).filter((i) => i % procs === w))
    // A worker that dies while starting fails this size (reported by worker-rpc), not the run: stop the rest.
    await Promise.all(indices.map(async (ix) => {
      const w = new Worker(`contract worker ${workers.length} (providers ${ix.join(',')})`)
      workers.push(w)
      await w.request(null, 'ready')
      const { nodes } = await w.request({ t: 'start', network, indices: ix, room: ROOM }, 'started')
      providers.push(...nodes)
    })).catch(async (err: unknown) => {
      await Promise.all(workers.map(async (w) => await w.stop({ t: 'stop' }, 'stopped')))
      throw err
    })
  }
  const requester = await startNode(network, { roles: ['requester'] }, dirs)
  for (const p of providers) await requester.libp2p.dial(p.addrs.map((a) => multiaddr(a)))
  const dids = new Set(providers.map((p) => p.did))
  const vl = requester.services.verifiedLevels
  await waitFor(`the requester to hold ${n} cards with settled verified levels`, async () => {
    const held = requester.collection.cards(Math.floor(Date.now() / 1000)).filter((c) => dids.has(c.value.providerId)).length
    if (held < n || [...dids].some((d) => !vl.levels.has(d as any))) return false
    await vl.settled()
    return vl.queued.pending === 0 && vl.queued.running === 0
  }, 120_000)

  const mesh: Mesh = { requester, local, workers, dirs, startupSecs: (performance.now() - t0) / 1000, transitions: new Map(), ended: new Map(), saved: new Map() }
  // Every flow the requester creates gets a state accessor that timestamps each transition.
  const flows = (requester.services.requester as any).flows as Map<string, any>
  const set = flows.set.bind(flows)
  flows.set = (id: string, flow: any) => {
    const seen: Array<[string, number]> = [[flow.state, performance.now()]]
    mesh.transitions.set(id, seen)
    let state = flow.state
    Object.defineProperty(flow, 'state', {
      configurable: true,
      enumerable: true,
      get: () => state,
      set: (next: string) => {
        state = next
        seen.push([next, performance.now()])
      }
    })
    return set(id, flow)
  }
  // A flow's end counts once it is saved and announced (what status() reads): the in-memory state
  // changes just before the save, and a status() read in between still says 'provisioning'.
  requester.events.subscribe((e) => {
    const d = e.data as { id?: string, role?: string, state?: string }
    if (e.type !== 'contract' || d.role !== 'requester' || d.id === undefined || d.state === undefined) return
    if (!['ready', 'failed', 'no-bids'].includes(d.state)) return
    mesh.saved.set(d.id, d.state)
    mesh.ended.get(d.id)?.(d.state)
  })
  if (deferReleasesMs > 0) {
    // The requester calls provider.bid.release (the shared BidProtocol instance) fire-and-forget.
    const bid = requester.services.provider.bid as any
    const release = bid.release.bind(bid)
    bid.release = async (...a: unknown[]) => { await sleep(deferReleasesMs); return await release(...a) }
  }
  return mesh
}

async function stopMesh (mesh: Mesh): Promise<void> {
  await Promise.all(mesh.workers.map(async (w) => await w.stop({ t: 'stop' }, 'stopped')))
  await stopNodes([mesh.requester, ...mesh.local], mesh.dirs)
}

/** Providers' cumulative stats, summed over this process and the workers. */
async function stats (mesh: Mesh): Promise<ProviderStats> {
  const all: ProviderStats[] = mesh.workers.length > 0
    ? (await Promise.all(mesh.workers.map(async (w) => await w.request({ t: 'stats' }, 'stats')))).map((m) => m.stats)
    : [await providerStats(mesh.local)]
  const sum = (k: keyof ProviderStats): number => all.reduce((a, s) => a + s[k], 0)
  return { provisionSum: sum('provisionSum'), provisionCount: sum('provisionCount'), fulfilSum: sum('fulfilSum'), fulfilCount: sum('fulfilCount'), spawnSum: sum('spawnSum'), spawnCount: sum('spawnCount') }
}

/** One round; a failed one is reported (and its flow waited out, so no node stops under it), not fatal. */
async function round (mesh: Mesh, i: number, windows?: Array<[number, number]>): Promise<Round | { failed: string }> {
  try {
    return await measureRound(mesh, i, windows)
  } catch (err) {
    const message = (err as Error).message
    console.error(`round ${i} failed: ${message}`)
    const open = [...mesh.transitions.values()].filter((seen) => !['ready', 'failed', 'no-bids'].includes(seen.at(-1)?.[0] ?? ''))
    await waitFor('the failed round\'s flow to end', () => open.every((seen) => ['ready', 'failed', 'no-bids'].includes(seen.at(-1)?.[0] ?? '')), 90_000).catch(() => {})
    return { failed: message.slice(0, 300) }
  }
}

async function measureRound (mesh: Mesh, i: number, windows?: Array<[number, number]>): Promise<Round> {
  const req = mesh.requester.services.requester
  const before = await stats(mesh)
  const cpu0 = process.cpuUsage()
  const hr0 = process.hrtime.bigint()
  const t0 = performance.now()
  let resolveEnd: (state: string) => void = () => {}
  const end = new Promise<string>((resolve) => { resolveEnd = resolve })
  const signed = await req.create(rfp(i))
  const tCreated = performance.now()
  // The flow id is known only once create() returns; an end seen before that is in its transitions.
  const id = signed.cid.toString()
  mesh.ended.set(id, resolveEnd)
  const seenAlready = mesh.saved.get(id)
  if (seenAlready !== undefined) resolveEnd(seenAlready)
  let timer: NodeJS.Timeout | undefined
  const state = await Promise.race([end, new Promise<string>((resolve) => { timer = setTimeout(() => { resolve('timeout') }, 60_000 + windowSecs * 1000) })])
  clearTimeout(timer)
  const status = await req.status(id) as { state: string, bids: unknown[], error?: { code: string, detail: string } } | undefined
  if (state !== 'ready' || status?.state !== 'ready') throw new Error(`round ${i}: ended ${state}, status ${status?.state ?? 'unknown'}: ${status?.error?.code ?? ''} ${status?.error?.detail ?? ''}`)
  const tReady = performance.now()
  const r = await req.receipt(id)
  if (r === undefined) throw new Error(`round ${i}: no receipt`)
  const receipt = await openReceipt({ enc: r.enc, ct: r.ct }, r.receiptKey, cidForBytes(r.ccr).bytes)
  if (receipt.port <= 0) throw new Error(`round ${i}: receipt without a port`)
  const tOpened = performance.now()
  const cpu = process.cpuUsage(cpu0)
  const after = await stats(mesh)
  if (after.provisionCount - before.provisionCount !== 1 || after.fulfilCount - before.fulfilCount !== 1) {
    throw new Error(`round ${i}: ${after.provisionCount - before.provisionCount} provisionings, ${after.fulfilCount - before.fulfilCount} fulfils observed`)
  }
  const seen = mesh.transitions.get(id) ?? []
  const at = (s: string): number => seen.find(([x]) => x === s)?.[1] ?? NaN
  const tChoosing = at('choosing')
  if (windows !== undefined) {
    // Profile clock (µs, monotonic) for the (c) window: from leaving 'collecting' to opened.
    const toUs = (t: number): number => Number(hr0 / 1000n) + (t - t0) * 1000
    windows.push([toUs(tChoosing), toUs(tOpened)])
  }
  const provision = (after.provisionSum - before.provisionSum) * 1000
  return {
    total: tOpened - t0,
    collecting: tChoosing - t0,
    rest: tOpened - tChoosing,
    provision,
    parts: {
      'create() (sign, gossip publish, save)': tCreated - t0,
      'choose + CCBA (receipt key, seal user_data, sign)': at('accepted') - tChoosing,
      'save CCBA (fsync)': at('provisioning') - at('accepted'),
      'accept → CCR + receipt back, checked, opened, saved': tReady - at('provisioning'),
      '  of which provider fulfil()': after.fulfilSum - before.fulfilSum,
      '    of which provisioning (d)': provision,
      '      of which child_process.spawn() blocking': after.spawnSum - before.spawnSum,
      'receipt(id) + openReceipt': tOpened - tReady
    },
    bids: status.bids.length,
    cpuMs: (cpu.user + cpu.system) / 1000,
    rssMiB: process.memoryUsage().rss / 2 ** 20
  }
}

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

function summarizeProfile (profile: Profile, windows: Array<[number, number]>): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const pkgOf = (url: string): string => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? /\/(src\/[^?]+)/.exec(url)?.[1] ?? url
  const byOwner = new Map<string, number>()
  const byFunction = new Map<string, number>()
  const add = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1) }
  let t = profile.startTime
  let inside = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0
    if (!windows.some(([a, b]) => t >= a && t <= b)) continue
    inside++
    const stack: ProfileNode['callFrame'][] = []
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id)
      if (node !== undefined) stack.push(node.callFrame)
    }
    const top = stack[0]
    if (top === undefined) continue
    add(byFunction, `${top.functionName !== '' ? top.functionName : '(anonymous)'} ${top.url === '' ? '(native)' : `${pkgOf(top.url)}:${top.lineNumber + 1}`}`)
    // Who asked: the nearest frame of a package or of src/ (node: internals and native code count for their caller).
    const owner = stack.find((f) => /node_modules|\/src\//.test(f.url))
    if (top.functionName.startsWith('(')) add(byOwner, top.functionName)
    else if (stack.some((f) => f.functionName === 'spawn' && f.url === '')) add(byOwner, 'child_process.spawn (native; over-counted under the profiler)')
    else add(byOwner, owner !== undefined ? pkgOf(owner.url) : top.url !== '' ? top.url : `(native ${top.functionName})`)
  }
  const windowMs = windows.reduce((sum, [a, b]) => sum + (b - a) / 1000, 0) / Math.max(1, windows.length)
  const top = (m: Map<string, number>, k: number): string[] => [...m].sort((a, b) => b[1] - a[1]).slice(0, k)
    .map(([name, c]) => `  ${(100 * c / Math.max(1, inside)).toFixed(1).padStart(5)} %  ${(windowMs * c / Math.max(1, inside)).toFixed(1).padStart(5)} ms/round  ${name}`)
  return [
    `profile: ${inside} samples inside ${windows.length} (c) windows (mean ${windowMs.toFixed(1)} ms; the profiler slows this thread)`,
    'by owner (the nearest package or src/ file up the stack):', ...top(byOwner, 20),
    'self time by function:', ...top(byFunction, 15)
  ]
}

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
const commit = (): string => { try { return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() } catch { return 'unknown' } }
console.log(`commit: ${commit()}`)
console.log(`command: node --import tsx scripts/bench/contract.ts ${process.argv.slice(2).join(' ')}`.trim())
console.log(`providers: ${providerProcs <= 0 ? 'in the driver process, with the requester' : `in up to ${providerProcs} worker processes; the requester alone in the driver process`}`)
if (deferReleasesMs > 0) console.log(`DIAGNOSTIC: releases to the non-chosen bidders deferred by ${deferReleasesMs} ms`)
console.log(`load average at start (1/5/15 min): ${load()}`)
console.log('')

let failures = 0
// A product promise rejected with nobody to catch it: reported (and the exit code set), not fatal to the other sizes.
process.on('unhandledRejection', (err) => {
  failures++
  console.error(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`)
})
const rows: string[] = []
const breakdowns: string[] = []
let profileLines: string[] = []
for (const n of sizes) {
  let mesh: Mesh
  try {
    mesh = await startMesh(n)
  } catch (err) {
    failures++
    rows.push(`| ${n} | ${providerProcs <= 0 ? 'driver' : 'workers'} | failed to start: ${(err as Error).message.slice(0, 200).replaceAll('|', '/')} |`)
    console.error(`N=${n} failed to start: ${(err as Error).stack ?? String(err)}`)
    continue
  }
  try {
    const cold: Round[] = []
    const failed: string[] = []
    const keep = (r: Round | { failed: string }, into: Round[]): void => { if ('failed' in r) failed.push(r.failed); else into.push(r) }
    for (let i = 0; i < warmup; i++) { keep(await round(mesh, i), cold); await sleep(gapMs) }
    const profiling = profileFile !== undefined && n === Math.max(...sizes)
    const session = profiling ? new Session() : undefined
    const windows: Array<[number, number]> = []
    if (session !== undefined) {
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: profileIntervalUs })
      await session.post('Profiler.start')
    }
    const measured: Round[] = []
    const loadBefore = load()
    for (let i = 0; i < rounds; i++) {
      keep(await round(mesh, warmup + i, profiling ? windows : undefined), measured)
      await sleep(gapMs)
    }
    const loadAfter = load()
    if (session !== undefined && profileFile !== undefined) {
      const { profile } = await session.post('Profiler.stop') as unknown as { profile: Profile }
      session.disconnect()
      await writeFile(profileFile, JSON.stringify(profile))
      await writeFile(`${profileFile}.windows.json`, JSON.stringify(windows))
      profileLines = [`N=${n}: profile ${profileFile}`, ...summarizeProfile(profile, windows)]
    }
    const col = (f: (r: Round) => number): number[] => measured.map(f)
    const first = cold[0]
    const dead = mesh.workers.filter((w) => !w.alive).length
    rows.push(`| ${n} | ${providerProcs <= 0 ? 'driver' : `${mesh.workers.length} workers${dead > 0 ? ` (${dead} died)` : ''}`} | ${measured.length}${failed.length > 0 ? ` (+${failed.length} failed)` : ''} | ${fmt(col((r) => r.total))} | ${fmt(col((r) => r.collecting))} | ${fmt(col((r) => r.rest))} | ${fmt1(col((r) => r.provision))} | ${first !== undefined ? `${first.total.toFixed(0)} / ${first.rest.toFixed(0)}` : 'n/a'} | ${measured.length > 0 ? `${Math.min(...col((r) => r.bids))}-${Math.max(...col((r) => r.bids))}` : 'n/a'} | ${fmt(col((r) => r.cpuMs))} | ${measured.length > 0 ? Math.max(...col((r) => r.rssMiB)).toFixed(0) : 'n/a'} | ${mesh.startupSecs.toFixed(1)} | ${loadBefore} → ${loadAfter} |`)
    breakdowns.push(`N=${n} (p50 / p95 ms of the measured rounds):`)
    for (const part of Object.keys(measured[0]?.parts ?? {})) breakdowns.push(`  ${part.padEnd(54)} ${fmt1(col((r) => r.parts[part] as number))}`)
    for (const f of failed) breakdowns.push(`  FAILED round: ${f}`)
    failures += failed.length
    console.error(`N=${n} done: ${rows.at(-1)}`)
  } catch (err) {
    failures++
    rows.push(`| ${n} | ${providerProcs <= 0 ? 'driver' : 'workers'} | failed: ${(err as Error).message.slice(0, 200).replaceAll('|', '/')} |`)
    console.error(`N=${n} failed: ${(err as Error).stack ?? String(err)}`)
  } finally {
    await stopMesh(mesh)
  }
  await sleep(1000)
}

const header = '| bidders N | providers in | rounds | (a) RFP → opened receipt p50 / p95 (ms) | (b) collecting: create → all answered p50 / p95 (ms) | (c) = (a) − (b) p50 / p95 (ms) | (d) provisioning (provider metric) p50 / p95 (ms) | first round, cold: (a) / (c) (ms) | bids per round | process CPU per round p50 / p95 (ms) | driver process RSS (MiB) | start-up + convergence (s) | load avg 1/5/15 before → after the rounds |'
console.log(header)
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows) console.log(r)
console.log('')
for (const b of breakdowns) console.log(b)
if (profileLines.length > 0) { console.log(''); for (const l of profileLines) console.log(l) }
console.log('')
console.log(`load average at end (1/5/15 min): ${load()}; commit at end: ${commit()}`)
if (failures > 0) console.log(`${failures} failure(s): see stderr`)
if (jsonFile !== undefined) {
  // The printed table's cells (rows as printed), for scripts/bench/all.ts.
  const cellsOf = (line: string): string[] => line.replace(/^\| /, '').replace(/ \|$/, '').split(' | ')
  await writeFile(jsonFile, JSON.stringify({
    bench: 'contract',
    command: `node --import tsx scripts/bench/contract.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
    notes: [`commit ${commit()}`, ...(failures > 0 ? [`${failures} failure(s)`] : [])],
    tables: [{ title: 'Contract flow: RFP → opened receipt', columns: cellsOf(header), rows: rows.map(cellsOf) }],
    breakdown: breakdowns
  }, null, 2))
}
clearTimeout(watchdog)
process.exitCode = failures > 0 ? 1 : 0
