/**
 * Every benchmark, one after the other, each as a child process with a timeout, into one markdown
 * report (stdout and `--out`, default docs/bench-latest.md).
 *
 *   npm run bench [-- --full] [-- --out file] [-- --only propagation,contract] [-- --timeout secs] [-- --list]
 *
 * The quick set (default) runs each benchmark at a size that finishes in a few minutes on a
 * 2-core machine; `--full` runs the sizes docs/BENCHMARKS.md reports. Rows come from each bench's
 * `--json <file>`: either `{ tables: [{ title, columns, rows }] }` or an array of flat row objects
 * (grouped into one table per `kind` when rows carry one); a bench that wrote no JSON is reported
 * by its stdout. A bench that exits non-zero, times out or cannot start is a failed row with the
 * last lines of its stderr, and the run goes on. Exit code: 1 if any bench failed.
 *
 * Per table: the command, the date, the machine (nproc, CPU model, RAM, Node), the load average
 * before and after, and the peer measured beside it in the same run, where the bench has one.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))
const argv = process.argv.slice(2)
const flag = (name: string): boolean => argv.includes(`--${name}`)
const option = (name: string): string | undefined => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : undefined }
const full = flag('full')
const outFile = option('out') ?? join(root, 'docs', 'bench-latest.md')
const only = option('only')?.split(',').filter((s) => s !== '')
// Every bench's timeout, in place of its own (a slower machine, or a check of the timeout path).
const timeoutOverride = option('timeout') !== undefined ? Number(option('timeout')) : undefined
const STDERR_TAIL_LINES = 20

interface Bench {
  name: string
  /** The script and its arguments, relative to the repository root; run with this Node. */
  script: string
  args: string[]
  /** Node flags (tsx for TypeScript benches). */
  node: string[]
  timeoutSecs: number
  json: boolean
  /** What the bench measures beside its subject in the same run, if anything. */
  peer?: string
  /** A command that must succeed first (e.g. a fresh build for the CLI benchmark). */
  prepare?: string[]
}

const tsx = ['--import', 'tsx']
// Quick: a few minutes in all on 2 cores. Full: the sizes docs/BENCHMARKS.md reports.
const benches: Bench[] = [
  { name: 'collection', script: 'scripts/bench/collection.js', node: [], json: true, args: full ? ['10000', '100000'] : ['10000'], timeoutSecs: full ? 1800 : 180 },
  { name: 'attest', script: 'scripts/bench/attest.ts', node: tsx, json: true, args: full ? [] : ['--verifications', '50', '--warm', '500', '--handshakes', '30'], timeoutSecs: full ? 1800 : 240, peer: 'Software ↔ Software handshakes beside TDX ↔ TDX; the real Intel fixture beside a simulated quote' },
  { name: 'sync', script: 'scripts/bench/sync.ts', node: tsx, json: true, args: full ? ['--sizes', '10000,100000', '--inline', 'true'] : ['--sizes', '10000', '--inline', 'true'], timeoutSecs: full ? 3600 : 300, peer: 'the inline path (`--inline`: verification on the main thread, one want batch at a time) against the same peer' },
  { name: 'propagation', script: 'scripts/bench/propagation.ts', node: tsx, json: true, args: full ? ['--sizes', '10,30,60,100', '--publishes', '30', '--max-procs', '20', '--sync', '1000,10000'] : ['--sizes', '10,30', '--publishes', '20', '--max-procs', '5', '--sync', '1000'], timeoutSecs: full ? 5400 : 420 },
  ...(full ? [{ name: 'propagation (DHT off)', script: 'scripts/bench/propagation.ts', node: tsx, json: true, args: ['--sizes', '10,30,60,100', '--publishes', '30', '--max-procs', '20', '--sync', '', '--dht', 'off'], timeoutSecs: 5400, peer: 'the DHT-on propagation table above (same sizes, same run)' }] : []),
  { name: 'mesh-idle', script: 'scripts/bench/mesh-idle.ts', node: tsx, json: true, args: full ? ['--nodes', '20', '--idle', '60', '--partition', '30'] : ['--nodes', '10', '--idle', '20', '--partition', '15'], timeoutSecs: full ? 900 : 300 },
  { name: 'mesh-idle (DHT off)', script: 'scripts/bench/mesh-idle.ts', node: tsx, json: true, args: full ? ['--nodes', '20', '--idle', '60', '--partition', '30', '--dht', 'off'] : ['--nodes', '10', '--idle', '20', '--partition', '15', '--dht', 'off'], timeoutSecs: full ? 900 : 300, peer: 'the same mesh with the DHT on (the row above)' },
  { name: 'contract', script: 'scripts/bench/contract.ts', node: tsx, json: true, args: full ? [] : ['--sizes', '1,5', '--rounds', '5'], timeoutSecs: full ? 1800 : 300 },
  { name: 'payment', script: 'scripts/bench/payment.ts', node: tsx, json: true, args: full ? ['--rounds', '30'] : ['--rounds', '5'], timeoutSecs: full ? 1200 : 300, peer: 'an unsettled (wei) requester/provider pair, rounds alternating with the paid pair' },
  { name: 'startup', script: 'scripts/bench/startup.ts', node: tsx, json: true, args: full ? [] : ['--runs', '3', '--starts', '1', '--idle', '5'], timeoutSecs: full ? 600 : 180, prepare: ['scripts/ensure-ready.mjs'] },
  { name: 'oracle', script: 'scripts/bench/oracle.ts', node: tsx, json: true, args: full ? ['--count', '10000'] : ['--count', '1000'], timeoutSecs: full ? 3600 : 300, peer: '@phala/dcap-qvl alone, on the same quotes and mutations' }
]

if (flag('list')) {
  for (const b of benches) console.log(`${b.name}: node ${[...b.node, b.script, ...b.args].join(' ')} (timeout ${b.timeoutSecs} s)`)
  process.exit(0)
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ')
const sh = (cmd: string, args: string[]): string => { const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8' }); return r.status === 0 ? r.stdout.trim() : '' }
const commit = sh('git', ['rev-parse', '--short', 'HEAD']) || 'unknown'
const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']) !== '' ? ' (with uncommitted changes)' : ''
const machine = `nproc ${availableParallelism()}, ${cpus()[0]?.model?.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${process.platform} ${process.arch}`

interface Outcome {
  bench: Bench
  status: 'ok' | 'failed' | 'timed out' | 'not run'
  detail?: string
  started: Date
  seconds: number
  loadBefore: string
  loadAfter: string
  command: string
  json?: unknown
  stdout: string
  stderrTail: string[]
}

/** The child currently running, so an interrupt stops its whole process group, workers included. */
let current: { pid: number } | undefined
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (current !== undefined) try { process.kill(-current.pid, 'SIGKILL') } catch {}
    process.exit(130)
  })
}

interface Run { code: number | null, signal: NodeJS.Signals | null, timedOut: boolean, stdout: string, stderrTail: string[], error?: string }

async function run (args: string[], timeoutSecs: number): Promise<Run> {
  return await new Promise((resolve) => {
    // Its own process group: a timeout then ends the bench's worker processes with it.
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    const tail: string[] = []
    let partial = ''
    let timedOut = false
    let settled = false
    const finish = (r: Omit<Run, 'stdout' | 'stderrTail' | 'timedOut'>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(killTimer)
      current = undefined
      if (partial !== '') tail.push(partial)
      resolve({ ...r, timedOut, stdout, stderrTail: tail.slice(-STDERR_TAIL_LINES) })
    }
    if (child.pid !== undefined) current = { pid: child.pid }
    // Echoed to stderr as it comes: stdout is kept for the report.
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; process.stderr.write(d) })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      process.stderr.write(d)
      const lines = (partial + d).split('\n')
      partial = lines.pop() ?? ''
      tail.push(...lines)
      if (tail.length > STDERR_TAIL_LINES) tail.splice(0, tail.length - STDERR_TAIL_LINES)
    })
    let killTimer: NodeJS.Timeout | undefined
    const killGroup = (signal: NodeJS.Signals): void => { try { process.kill(-(child.pid as number), signal) } catch {} }
    const timer = setTimeout(() => {
      timedOut = true
      killGroup('SIGTERM')
      killTimer = setTimeout(() => { killGroup('SIGKILL') }, 10_000)
    }, timeoutSecs * 1000)
    child.on('error', (err) => { finish({ code: null, signal: null, error: err.message }) })
    // 'close': stdout and stderr are fully read; then make sure no worker of its group is left behind.
    child.on('close', (code, signal) => { killGroup('SIGKILL'); finish({ code, signal }) })
  })
}

async function runBench (bench: Bench, dir: string): Promise<Outcome> {
  const jsonFile = join(dir, `${bench.name.replace(/\W+/g, '-')}.json`)
  const benchArgs = [...bench.args, ...(bench.json ? ['--json', jsonFile] : [])]
  const command = `node ${[...bench.node, bench.script, ...bench.args.map((a) => a === '' ? "''" : a)].join(' ')}`
  const started = new Date()
  const t0 = performance.now()
  const loadBefore = load()
  const outcome: Outcome = { bench, status: 'ok', started, seconds: 0, loadBefore, loadAfter: '', command, stdout: '', stderrTail: [] }
  console.error(`\n=== ${bench.name}: ${command} (timeout ${bench.timeoutSecs} s, load ${loadBefore})`)
  if (bench.prepare !== undefined) {
    const prep = await run(bench.prepare, bench.timeoutSecs)
    if (prep.code !== 0) {
      Object.assign(outcome, { status: 'failed', detail: `preparation \`node ${bench.prepare.join(' ')}\` ${describe(prep)}`, stderrTail: prep.stderrTail, seconds: (performance.now() - t0) / 1000, loadAfter: load() })
      return outcome
    }
  }
  const r = await run([...bench.node, bench.script, ...benchArgs], bench.timeoutSecs)
  outcome.seconds = (performance.now() - t0) / 1000
  outcome.loadAfter = load()
  outcome.stdout = r.stdout
  outcome.stderrTail = r.stderrTail
  if (r.timedOut) Object.assign(outcome, { status: 'timed out', detail: `no result within ${bench.timeoutSecs} s` })
  else if (r.code !== 0) Object.assign(outcome, { status: 'failed', detail: describe(r) })
  if (bench.json && existsSync(jsonFile)) {
    try { outcome.json = JSON.parse(await readFile(jsonFile, 'utf8')) } catch (err) { outcome.detail = `${outcome.detail ?? ''} (its JSON did not parse: ${(err as Error).message})`.trim() }
  }
  return outcome
}

function describe (r: Run): string {
  if (r.error !== undefined) return `could not start: ${r.error}`
  return r.signal !== null ? `ended by ${r.signal}` : `exited with code ${String(r.code)}`
}

// ---- rendering ----

const escapeCell = (v: unknown): string => {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Number(v.toPrecision(4)).toString()
  if (typeof v === 'object') return JSON.stringify(v).replaceAll('|', '\\|')
  return String(v).replaceAll('|', '\\|').replaceAll('\n', ' ')
}

function markdownTable (columns: string[], rows: unknown[][]): string[] {
  return [`| ${columns.map(escapeCell).join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`)]
}

function objectsTable (rows: Array<Record<string, unknown>>, skip: string[] = []): string[] {
  const columns: string[] = []
  for (const r of rows) for (const k of Object.keys(r)) if (!columns.includes(k) && !skip.includes(k)) columns.push(k)
  return markdownTable(columns, rows.map((r) => columns.map((c) => r[c])))
}

/** The bench's JSON as markdown: our `{ tables }` shape, or an array of row objects. */
function renderJson (json: unknown): string[] | undefined {
  const out: string[] = []
  if (Array.isArray(json)) {
    if (json.length === 0 || typeof json[0] !== 'object') return undefined
    const rows = json as Array<Record<string, unknown>>
    const kinds = [...new Set(rows.map((r) => r.kind))]
    for (const kind of kinds) {
      if (kind !== undefined) out.push(`*${String(kind)}*`, '')
      out.push(...objectsTable(rows.filter((r) => r.kind === kind), ['bench', 'kind']), '')
    }
    return out
  }
  if (typeof json === 'object' && json !== null && Array.isArray((json as { tables?: unknown }).tables)) {
    const doc = json as { notes?: string[], tables: Array<{ title?: string, columns?: string[], rows: unknown[] }> }
    for (const note of doc.notes ?? []) out.push(`- ${note}`)
    if ((doc.notes ?? []).length > 0) out.push('')
    for (const t of doc.tables) {
      if (t.title !== undefined) out.push(`*${t.title}*`, '')
      if (t.rows.length > 0 && Array.isArray(t.rows[0])) out.push(...markdownTable(t.columns ?? (t.rows[0] as unknown[]).map((_, i) => `#${i + 1}`), t.rows as unknown[][]))
      else out.push(...objectsTable(t.rows as Array<Record<string, unknown>>))
      out.push('')
    }
    return out
  }
  return undefined
}

/** Without JSON: the stdout's markdown tables as they are, the other lines as text. */
function renderStdout (stdout: string): string[] {
  const out: string[] = []
  let text: string[] = []
  const flushText = (): void => { if (text.some((l) => l.trim() !== '')) out.push('```', ...text, '```', ''); text = [] }
  for (const line of stdout.split('\n')) {
    if (line.startsWith('|')) { flushText(); out.push(line) } else { if (out.at(-1)?.startsWith('|') === true) out.push(''); text.push(line) }
  }
  flushText()
  return out
}

function section (o: Outcome): string[] {
  const lines = [
    `## ${o.bench.name}`,
    '',
    `- command: \`${o.command}\``,
    `- date: ${o.started.toISOString()}; ${o.seconds.toFixed(0)} s`,
    `- machine: ${machine}`,
    `- load average (1/5/15 min) before → after: ${o.loadBefore} → ${o.loadAfter}`,
    ...(o.bench.peer !== undefined ? [`- peer measured beside it: ${o.bench.peer}`] : []),
    ...(o.status !== 'ok' ? [`- **${o.status.toUpperCase()}**: ${o.detail ?? ''}`] : []),
    ''
  ]
  const body = o.json !== undefined ? renderJson(o.json) : undefined
  if (body !== undefined) lines.push(...body)
  else if (o.stdout.trim() !== '') lines.push(...renderStdout(o.stdout))
  if (o.status !== 'ok' && o.stderrTail.length > 0) lines.push(`Last ${o.stderrTail.length} stderr lines:`, '', '```', ...o.stderrTail, '```', '')
  return lines
}

// ---- main ----

const selected = (only === undefined ? benches : benches.filter((b) => only.some((o) => b.name === o || b.name.startsWith(`${o} `))))
  .map((b) => timeoutOverride !== undefined ? { ...b, timeoutSecs: timeoutOverride } : b)
if (selected.length === 0) {
  console.error(`no bench matches --only ${only?.join(',') ?? ''}; --list shows them`)
  process.exit(2)
}
const dir = await mkdtemp(join(tmpdir(), 'cmesh-bench-all-'))
const started = new Date()
const loadAtStart = load()
const outcomes: Outcome[] = []
try {
  for (const bench of selected) {
    if (!existsSync(join(root, bench.script))) {
      outcomes.push({ bench, status: 'not run', detail: `${bench.script} does not exist`, started: new Date(), seconds: 0, loadBefore: load(), loadAfter: load(), command: bench.script, stdout: '', stderrTail: [] })
      continue
    }
    outcomes.push(await runBench(bench, dir))
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}

const report = [
  `# Benchmarks: ${full ? 'full' : 'quick'} set`,
  '',
  `Generated by \`npm run bench${full ? ' -- --full' : ''}\` (scripts/bench/all.ts) at commit ${commit}${dirty}, started ${started.toISOString()}, ` +
    `${((Date.now() - started.getTime()) / 1000 / 60).toFixed(1)} min in all. Machine: ${machine}. Load average at start ${loadAtStart}, at end ${load()}.`,
  '',
  ...markdownTable(['bench', 'result', 'seconds', 'load avg before → after'], outcomes.map((o) => [o.bench.name, o.status === 'ok' ? 'ok' : `**${o.status}**: ${o.detail ?? ''}`, o.seconds.toFixed(0), `${o.loadBefore} → ${o.loadAfter}`])),
  '',
  ...outcomes.flatMap(section)
].join('\n')

console.log(report)
await mkdir(dirname(outFile), { recursive: true })
await writeFile(outFile, report.endsWith('\n') ? report : `${report}\n`)
console.error(`report written to ${relative(process.cwd(), outFile) || outFile}`)
process.exitCode = outcomes.some((o) => o.status !== 'ok') ? 1 : 0
