/**
 * Start-up and idle cost of one node, measured from the built CLI (`dist/`):
 *   (a) `cmesh cards` and `cmesh status` against no running node: the cost of loading the CLI
 *       and answering (the command fails fast: nothing to ask), median of `--runs`;
 *   (b) `cmesh start` on embedded defaults: spawn → the banner's last line, median of `--starts`;
 *   (c) the started node's RSS after `--idle` seconds, and its CPU time over that idle period
 *       (utime + stime from /proc);
 *   (d) beside it, the floors under that RSS: an idle `node` doing nothing, and a bare libp2p 3 node
 *       with the same stack and services and none of cmesh's code (scripts/bench/bare-libp2p.mjs),
 *       each after the same idle time; RSS and the private part of it (USS: memory no other
 *       process shares, from /proc/<pid>/smaps_rollup), median of `--starts`.
 *
 *   node --import tsx scripts/bench/startup.ts [--runs 7] [--starts 3] [--idle 10] [--json file]
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const args = new Map<string, string>()
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]?.replace(/^--/, '') ?? '', process.argv[i + 1] ?? '')
const runs = Number(args.get('runs') ?? 7)
const starts = Number(args.get('starts') ?? 3)
const idleSecs = Number(args.get('idle') ?? 10)
const jsonFile = args.get('json')
const bin = fileURLToPath(new URL('../../dist/src/node/bin.js', import.meta.url))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100)

async function cpuSecs (pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / ticks
}

async function rssMiB (pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}

/** Private_Clean + Private_Dirty: the resident memory only this process holds. */
async function ussMiB (pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8')
  let kb = 0
  for (const m of text.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) kb += Number(m[1])
  return kb / 1024
}

/** Spawns `argv`, waits for `readyText` on stdout, idles, then samples RSS/USS and stops it. */
async function idleFootprint (argv: string[], readyText: string): Promise<{ rss: number, uss: number }> {
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'ignore'] })
  let text = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => { text += d; if (text.includes(readyText)) resolve() })
    child.once('exit', (code) => { reject(new Error(`${argv.join(' ')} exited ${String(code)}`)) })
  })
  await new Promise((resolve) => setTimeout(resolve, idleSecs * 1000))
  const pid = child.pid as number
  const sample = { rss: await rssMiB(pid), uss: await ussMiB(pid) }
  child.kill('SIGINT')
  await new Promise((resolve) => child.once('exit', resolve))
  return sample
}

function timeCommand (command: string[]): number {
  const t = performance.now()
  spawnSync(process.execPath, [bin, ...command], { stdio: 'ignore' })
  return performance.now() - t
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}`
const out: string[] = [`machine: ${machine}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`]
// For --json: [measure, value, over], as printed.
const rows: string[][] = []
const none = join(tmpdir(), 'cmesh-bench-none')
for (const command of [['cards', '--data', none], ['status', '--data', none]]) {
  const times = Array.from({ length: runs }, () => timeCommand(command))
  out.push(`cmesh ${command[0] as string}: median ${median(times).toFixed(0)} ms over ${runs} runs`)
  rows.push([`\`cmesh ${command[0] as string}\` (no node running)`, `${median(times).toFixed(0)} ms`, `median of ${runs}`])
}
const ready: number[] = []
const rss: number[] = []
const uss: number[] = []
const idleCpu: number[] = []
const bareNode: Array<{ rss: number, uss: number }> = []
const bareLibp2p: Array<{ rss: number, uss: number }> = []
const bareScript = fileURLToPath(new URL('./bare-libp2p.mjs', import.meta.url))
for (let i = 0; i < starts; i++) {
  const dir = await mkdtemp(join(tmpdir(), 'cmesh-bench-start-'))
  const t = performance.now()
  const child = spawn(process.execPath, [bin, 'start', '--data', dir], { stdio: ['ignore', 'pipe', 'ignore'] })
  let text = ''
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => { text += d; if (text.includes('(Ctrl-C stops)')) resolve() })
    child.once('exit', (code) => { reject(new Error(`cmesh start exited ${String(code)}`)) })
  })
  ready.push(performance.now() - t)
  const pid = child.pid as number
  const before = await cpuSecs(pid)
  await new Promise((resolve) => setTimeout(resolve, idleSecs * 1000))
  idleCpu.push(await cpuSecs(pid) - before)
  rss.push(await rssMiB(pid))
  uss.push(await ussMiB(pid))
  child.kill('SIGINT')
  await new Promise((resolve) => child.once('exit', resolve))
  await rm(dir, { recursive: true, force: true })
  // The floors, in the same round so they see the same machine state.
  bareNode.push(await idleFootprint(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'], 'ready'))
  bareLibp2p.push(await idleFootprint([bareScript], 'ready'))
}
out.push(`cmesh start → banner: median ${median(ready).toFixed(0)} ms over ${starts} starts`)
out.push(`idle node after ${idleSecs} s: RSS median ${median(rss).toFixed(0)} MiB (USS ${median(uss).toFixed(0)}); CPU ${median(idleCpu).toFixed(2)} s over those ${idleSecs} s`)
out.push(`beside it: idle \`node\` RSS ${median(bareNode.map((b) => b.rss)).toFixed(0)} MiB (USS ${median(bareNode.map((b) => b.uss)).toFixed(0)}); bare libp2p 3 node, same stack RSS ${median(bareLibp2p.map((b) => b.rss)).toFixed(0)} MiB (USS ${median(bareLibp2p.map((b) => b.uss)).toFixed(0)})`)
rows.push(['`cmesh start` → banner', `${median(ready).toFixed(0)} ms`, `median of ${starts}`])
rows.push([`idle RSS after ${idleSecs} s (USS)`, `${median(rss).toFixed(0)} MiB (${median(uss).toFixed(0)})`, `median of ${starts}`])
rows.push([`beside it: idle \`node\`, RSS (USS) after ${idleSecs} s`, `${median(bareNode.map((b) => b.rss)).toFixed(0)} MiB (${median(bareNode.map((b) => b.uss)).toFixed(0)})`, `median of ${starts}`])
rows.push([`beside it: bare libp2p 3 node, same stack, RSS (USS) after ${idleSecs} s`, `${median(bareLibp2p.map((b) => b.rss)).toFixed(0)} MiB (${median(bareLibp2p.map((b) => b.uss)).toFixed(0)})`, `median of ${starts}`])
rows.push([`idle CPU over ${idleSecs} s`, `${median(idleCpu).toFixed(2)} s`, `median of ${starts}`])
console.log(out.join('\n'))
if (jsonFile !== undefined) {
  await writeFile(jsonFile, JSON.stringify({
    bench: 'startup',
    command: `node --import tsx scripts/bench/startup.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine,
    tables: [{ title: 'Start-up and idle cost (built CLI)', columns: ['measure', 'value', 'over'], rows }]
  }, null, 2))
}
