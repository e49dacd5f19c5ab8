/**
 * Late-joiner sync benchmark: a peer holding N signed cards (its own process), a joiner node started
 * fresh (its own process, so its peak RSS is its own); we time node start → holding all N, and the
 * sync session itself. Each size runs the product path (verify pool + pipelined wants) and, with
 * `--inline`, the old path (verification on the main thread, one want batch at a time) against the
 * same peer, so before/after sit side by side in one run on the same machine state.
 *
 *   node --import tsx scripts/bench/sync.ts [--sizes 10000,100000] [--inline] [--runs 1]
 *        [--workers 2] [--depth 4] [--dist] [--json file]
 *
 * `--dist`: the peer and joiner run the built node (dist/, `npx tsc -p tsconfig.json` first), as
 * `cmesh start` does; without it they run the sources under tsx, where every verify worker
 * transpiles its modules as it loads (hundreds of ms of CPU each), so batches stay inline longer.
 * `--workers W` / `--depth D`: the pool row's syncVerifyWorkers / syncPipelineDepth (defaults: the
 * node's, min(2, cores − 1) and 4). The cards are signed once and cached under the OS temp dir
 * (cmesh-bench-sync/), since signing 100k of them takes about a minute.
 */
import '../../src/node/polyfills.js'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2.js'
import { identityFromSeed, signRecord, ProviderCardType, rateTableDigest, utf8, type Rate } from '../../src/market/index.js'
import { createLogger } from '../../src/node/logger.js'
import { defaultVerifyWorkers } from '../../src/protocols/record-verify-pool.js'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i]?.replace(/^--/, '') ?? ''
  const value = process.argv[i + 1]
  if (value === undefined || value.startsWith('--')) args.set(key, 'true')
  else { args.set(key, value); i++ }
}
const script = fileURLToPath(import.meta.url)
const log = createLogger('bench', 'silent')
// Cards live 7 days (the card rule's maximum); a cache file is reused while its cards have 2 days left.
const LIFETIME_SECS = 7 * 86_400
const CACHE_FRESH_SECS = 5 * 86_400
const CACHE_DIR = join(tmpdir(), 'cmesh-bench-sync')

function emit (value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

/** Cards 0…n-1 (deterministic keys); a cache file of a larger n serves any smaller one. */
async function cards (n: number): Promise<Uint8Array[]> {
  const nowSecs = Math.floor(Date.now() / 1000)
  const cached = (await readdir(CACHE_DIR).catch(() => [] as string[]))
    .map((name) => /^cards-(\d+)\.bin$/.exec(name)).filter((m) => m !== null && Number(m[1]) > nowSecs - CACHE_FRESH_SECS)
  const committedAt = cached.length > 0 ? Number(cached[0]![1]) : nowSecs - 60
  const file = join(CACHE_DIR, `cards-${committedAt}.bin`)
  let all: Uint8Array[] = []
  try {
    const buf = await readFile(file)
    for (let at = 0; at < buf.length;) {
      const len = buf.readUInt32BE(at)
      all.push(new Uint8Array(buf.buffer, buf.byteOffset + at + 4, len))
      at += 4 + len
    }
  } catch {}
  if (all.length >= n) return all.slice(0, n)
  const rates: Rate[] = [{ backend: 'local', cpuHourWei: 1000n, memoryGiBHourWei: 100n, diskGiBHourWei: 10n }]
  const started = performance.now()
  for (let i = all.length; i < n; i++) {
    const id = identityFromSeed(sha256(utf8(`bench sync ${i}`)))
    all.push(signRecord(ProviderCardType, {
      providerId: id.did, schemesSupported: ['vm.ssh'], attestationLevel: 'Software', attestationDigest: sha256(utf8(id.did)),
      capacityPerSecond: 10, feePerPartialWei: BigInt(1_000_000 + i), committedAtUnixSecs: committedAt, expiresAtUnixSecs: committedAt + LIFETIME_SECS,
      backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 8192, maxDiskGiB: 50, tdx: false }],
      rates, rateTableDigest: rateTableDigest(rates), listenAddrs: ['/ip4/127.0.0.1/tcp/4001']
    }, id).bytes)
    if ((i + 1) % 10_000 === 0) console.error(`signed ${i + 1}/${n} cards (${((performance.now() - started) / 1000).toFixed(0)} s)`)
  }
  const out = Buffer.alloc(all.reduce((a, b) => a + 4 + b.length, 0))
  let at = 0
  for (const b of all) { out.writeUInt32BE(b.length, at); out.set(b, at + 4); at += 4 + b.length }
  await mkdir(CACHE_DIR, { recursive: true })
  await writeFile(`${file}.tmp`, out)
  await rename(`${file}.tmp`, file)
  return all
}

const baseConfig = (network: string, dataDir: string) => ({ network, dataDir, roles: [], dht: false })

interface NodeModules {
  CmeshNode: typeof import('../../src/node/node.js').CmeshNode
  resolveConfig: typeof import('../../src/node/config.js').resolveConfig
  RecordVerifyPool: typeof import('../../src/protocols/record-verify-pool.js').RecordVerifyPool
}

/** The node as sources (under tsx) or as built (dist/, what `cmesh start` runs). */
async function nodeModules (): Promise<NodeModules> {
  const root = args.has('dist') ? '../../dist/src' : '../../src'
  const [node, config, pool] = await Promise.all([import(`${root}/node/node.js`), import(`${root}/node/config.js`), import(`${root}/protocols/record-verify-pool.js`)])
  return { CmeshNode: node.CmeshNode, resolveConfig: config.resolveConfig, RecordVerifyPool: pool.RecordVerifyPool }
}

/** Child: a node holding N cards; prints its address, serves until stdin closes. */
async function serve (n: number, network: string): Promise<void> {
  const bytes = await cards(n)
  const { CmeshNode, resolveConfig, RecordVerifyPool } = await nodeModules()
  const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-bench-peer-'))
  const node = new CmeshNode({ config: resolveConfig(baseConfig(network, dataDir)), log, api: false })
  // Loading is set-up, not measured: verified on a pool of its own so 100k take seconds, not tens.
  const pool = new RecordVerifyPool()
  pool.start()
  await pool.whenReady()
  const nowSecs = Math.floor(Date.now() / 1000)
  for (let i = 0; i < bytes.length; i += 4096) {
    for (const r of await pool.decodeBatch(bytes.slice(i, i + 4096))) {
      if (r instanceof Error) throw r
      node.collection.apply(r, nowSecs)
    }
  }
  await pool.stop()
  await node.start()
  emit({ addr: node.libp2p.getMultiaddrs()[0]?.toString(), size: node.collection.size })
  process.stdin.resume()
  await new Promise((resolve) => process.stdin.on('end', resolve))
  await node.stop()
  await rm(dataDir, { recursive: true, force: true })
}

/** Child: a fresh node bootstrapped to the peer; prints the timings once it holds all N. */
async function joiner (n: number, network: string, addr: string, workers: number, depth: number): Promise<void> {
  const { CmeshNode, resolveConfig } = await nodeModules()
  const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-bench-joiner-'))
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  const node = new CmeshNode({
    config: resolveConfig({ ...baseConfig(network, dataDir), bootstrap: [addr], syncVerifyWorkers: workers, syncPipelineDepth: depth, syncIntervalSecs: 1 }),
    log,
    api: false
  })
  await node.start()
  const deadline = Date.now() + 600_000
  while (node.collection.size < n && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2))
  const startToAllMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  // The session's own result is recorded when pull() returns, just after the last record is applied.
  while (![...node.services.sync.results.values()].some((r) => r.fetched > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2))
  const sessions = [...node.services.sync.results.values()]
  const pool = node.services.sync.verifyPool
  // A session past its 60 s budget fails (applied records stay) and the next one resumes: count them.
  const outcomes: Record<string, number> = {}
  for (const v of (await node.metrics.syncSessions.get()).values) if (v.labels.role === 'initiator') outcomes[String(v.labels.outcome)] = v.value
  emit({
    sessions: outcomes,
    held: node.collection.size,
    startToAllMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    sessionMs: Math.max(0, ...sessions.map((r) => r.ms)),
    fetched: sessions.reduce((a, r) => a + r.fetched, 0),
    invalid: sessions.reduce((a, r) => a + r.invalid, 0),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    poolStats: { ...pool.stats }
  })
  await node.stop()
  await rm(dataDir, { recursive: true, force: true })
}

/** Spawns this script in `mode`; resolves with its first JSON line. */
/** User + system CPU seconds a process has used so far (Linux /proc; NaN elsewhere). */
async function processCpuSecs (pid: number | undefined): Promise<number> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /, '').split(' ')
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after pid and comm; in clock ticks (100/s on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

function child (mode: string[]): { first: Promise<any>, stdin: NodeJS.WritableStream, exited: Promise<number | null>, pid: number | undefined } {
  const proc = spawn(process.execPath, [...process.execArgv, script, ...mode], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: proc.stdout })
  const first = new Promise<any>((resolve, reject) => {
    lines.once('line', (line) => { resolve(JSON.parse(line)) })
    proc.once('exit', (code) => { reject(new Error(`${mode[0]} exited with ${code} before answering`)) })
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
  return { first, stdin: proc.stdin, exited, pid: proc.pid }
}

interface Row {
  cards: number
  path: 'pool' | 'inline'
  workers: number
  pipelineDepth: number
  run: number
  startToAllSecs?: number
  syncSessionSecs?: number
  recordsPerSec?: number
  peakRssMiB?: number
  /** CPU seconds from the joiner's node start to holding all (all its threads), and the peer's over the whole join. */
  joinerCpuSecs?: number
  peerCpuSecs?: number
  workerRecords?: number
  inlineRecords?: number
  /** Initiator sessions by outcome (more than one `ok`-less entry: the pull took several sessions). */
  sessions?: Record<string, number>
  loadBefore: string
  failed?: string
}

async function orchestrate (): Promise<void> {
  const sizes = (args.get('sizes') ?? '10000,100000').split(',').map(Number).filter((n) => n > 0)
  const withInline = args.get('inline') === 'true'
  const runs = Number(args.get('runs') ?? 1)
  const workers = Number(args.get('workers') ?? defaultVerifyWorkers())
  const depth = Number(args.get('depth') ?? 4)
  const jsonFile = args.get('json')
  await cards(Math.max(...sizes))
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`)
  console.log(`command: node --import tsx scripts/bench/sync.ts ${process.argv.slice(2).join(' ')}`.trim())
  console.log('')
  const columns = ['cards', 'path', 'workers', 'want depth', 'node start → holding all (s)', 'sync session (s)', 'records/s (session)', 'joiner peak RSS (MiB)', 'CPU s: joiner (start → all) / peer (whole join)', 'verified on workers / inline', 'joiner sessions', 'load avg before']
  console.log(`| ${columns.join(' | ')} |`)
  console.log(`|${columns.map(() => '---').join('|')}|`)
  const rows: Row[] = []
  for (const n of sizes) {
    const network = `bench${randomBytes(3).toString('hex')}`
    const dist = args.has('dist') ? ['--dist'] : []
    const peer = child(['--serve', String(n), '--network', network, ...dist])
    try {
      const { addr } = await peer.first
      for (let run = 1; run <= runs; run++) {
        const variants: Array<Pick<Row, 'path' | 'workers' | 'pipelineDepth'>> = [{ path: 'pool', workers, pipelineDepth: depth }]
        if (withInline) variants.push({ path: 'inline', workers: 0, pipelineDepth: 1 })
        for (const v of variants) {
          const row: Row = { cards: n, ...v, run, loadBefore: loadavg().map((l) => l.toFixed(2)).join(' ') }
          try {
            const peerCpu0 = await processCpuSecs(peer.pid)
            const j = child(['--join', String(n), '--network', network, '--addr', addr, '--workers', String(v.workers), '--depth', String(v.pipelineDepth), ...dist])
            const r = await j.first
            await j.exited
            const peerCpuSecs = await processCpuSecs(peer.pid) - peerCpu0
            if (r.held < n) throw new Error(`joiner holds ${r.held} of ${n}`)
            Object.assign(row, {
              startToAllSecs: r.startToAllMs / 1000,
              syncSessionSecs: r.sessionMs / 1000,
              recordsPerSec: r.fetched / (r.sessionMs / 1000),
              peakRssMiB: r.peakRssMiB,
              joinerCpuSecs: r.cpuMs / 1000,
              peerCpuSecs,
              sessions: r.sessions,
              workerRecords: r.poolStats.workerRecords,
              inlineRecords: r.poolStats.inlineRecords + r.poolStats.fallbackRecords
            })
          } catch (err) {
            row.failed = (err as Error).message
          }
          rows.push(row)
          const cells = row.failed !== undefined
            ? [n, row.path, row.workers, row.pipelineDepth, `failed: ${row.failed}`, '', '', '', '', '', '', row.loadBefore]
            : [n, row.path, row.workers, row.pipelineDepth, row.startToAllSecs!.toFixed(2), row.syncSessionSecs!.toFixed(2), row.recordsPerSec!.toFixed(0), row.peakRssMiB!.toFixed(0), `${row.joinerCpuSecs!.toFixed(2)} / ${row.peerCpuSecs!.toFixed(2)}`, `${row.workerRecords} / ${row.inlineRecords}`, Object.entries(row.sessions ?? {}).map(([k, v]) => `${v} ${k}`).join(', '), row.loadBefore]
          console.log(`| ${cells.join(' | ')} |`)
        }
      }
    } finally {
      peer.stdin.end()
      await peer.exited
    }
  }
  if (jsonFile !== undefined) await writeFile(jsonFile, JSON.stringify(rows, null, 2))
}

if (args.has('serve')) await serve(Number(args.get('serve')), args.get('network') ?? '')
else if (args.has('join')) await joiner(Number(args.get('join')), args.get('network') ?? '', args.get('addr') ?? '', Number(args.get('workers')), Number(args.get('depth')))
else await orchestrate()
