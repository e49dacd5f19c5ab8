/**
 * `cmesh start` runs from source (through tsx) for tests of start-up failures. Each run is spawned
 * in a process group of its own (`detached`), so whatever it started (tsx's esbuild service, or
 * anything a broken node leaves behind) can be found and killed, even when the node ignores
 * SIGTERM. On Linux, the listening TCP sockets the group holds are sampled while it runs, so a test
 * can check that none of them outlives it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, existsSync, rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../../src/node/bin.ts', import.meta.url))
// Resolved here: `--import tsx` would otherwise be looked up from the child's cwd.
const tsx = import.meta.resolve('tsx')

const PROC = process.platform === 'linux' && existsSync('/proc/self/stat')
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A network name of its own per test (same shape as test/helpers/mesh.ts), so runs never hear each other. */
export function freshNetwork (): string {
  return `t${randomBytes(4).toString('hex')}`
}

export interface ExitInfo { code: number | null, signal: NodeJS.Signals | null, ms: number }

export interface StartRun {
  readonly child: ChildProcess
  /** The run's process group (the child is its leader). */
  readonly pgid: number
  readonly spawnedAt: number
  stdout: () => string
  stderr: () => string
  /** Resolves when the node process has exited (and been reaped). */
  readonly exited: Promise<ExitInfo>
  /** Resolves when its stdout and stderr have closed (all output read), or never if a descendant holds them. */
  readonly closed: Promise<void>
  exitInfo: ExitInfo | undefined
  /** Listening TCP sockets seen held by the group while it ran: socket inode → port (Linux only). */
  readonly listening: Map<string, number>
}

/**
 * Every run not yet known to be gone, and every scratch directory not yet removed: killed and
 * removed when the test process goes away, whatever the reason (a test timeout, the runner's
 * SIGTERM, Ctrl-C), since the tests' own cleanup hooks do not run then.
 */
const live = new Set<StartRun>()
const dirs = new Set<string>()

function killGroupSync (pgid: number, signal: NodeJS.Signals): void {
  try { process.kill(-pgid, signal) } catch { /* ESRCH: the group is empty */ }
}

function abandon (): void {
  for (const run of live) killGroupSync(run.pgid, 'SIGKILL')
  for (const dir of dirs) {
    try { rmSync(dir, { recursive: true, force: true, maxRetries: 3 }) } catch { /* best effort */ }
  }
}

process.on('exit', abandon)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    abandon()
    // Nobody else handles it: die of it, as we would have without this handler.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

/** Spawns `cmesh start --config <configPath>` in its own process group. */
export function spawnStart (configPath: string, env: Record<string, string> = {}): StartRun {
  const spawnedAt = Date.now()
  const child = spawn(process.execPath, ['--import', tsx, bin, 'start', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, CMESH_LOG: 'warn', ...env }
  })
  if (child.pid === undefined) throw new Error('spawn failed')
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (d) => { out += d })
  child.stderr?.setEncoding('utf8').on('data', (d) => { err += d })
  const run: StartRun = {
    child,
    pgid: child.pid,
    spawnedAt,
    stdout: () => out,
    stderr: () => err,
    exitInfo: undefined,
    listening: new Map(),
    exited: new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        run.exitInfo = { code, signal, ms: Date.now() - spawnedAt }
        resolve(run.exitInfo)
      })
    }),
    closed: new Promise<void>((resolve) => child.once('close', () => resolve()))
  }
  live.add(run)
  return run
}

/**
 * Waits up to `timeoutMs` (from spawn) for the run to exit by itself, sampling its listening
 * sockets meanwhile. Returns the exit, or undefined if it is still running at the deadline.
 */
export async function waitForExit (run: StartRun, timeoutMs: number): Promise<ExitInfo | undefined> {
  const deadline = run.spawnedAt + timeoutMs
  while (run.exitInfo === undefined && Date.now() < deadline) {
    sampleListening(run)
    await Promise.race([run.exited, sleep(Math.min(100, Math.max(0, deadline - Date.now())))])
  }
  if (run.exitInfo !== undefined) {
    // Whatever it wrote before exiting is still in the pipes: read it (bounded: a leftover
    // descendant may hold them open, which the process checks report on their own).
    await Promise.race([run.closed, sleep(3000)])
  }
  return run.exitInfo
}

/** Waits up to `timeoutMs` (from now) for stdout to match `pattern`; false if it exits or times out first. */
export async function waitForStdout (run: StartRun, pattern: RegExp, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (pattern.test(run.stdout())) return true
    if (run.exitInfo !== undefined || Date.now() > deadline) return pattern.test(run.stdout())
    await sleep(100)
  }
}

/** Sends SIGTERM to the node process alone; true if it then exits within `graceMs`. */
export async function terminates (run: StartRun, graceMs: number): Promise<boolean> {
  if (run.exitInfo !== undefined) return true
  try { run.child.kill('SIGTERM') } catch { /* gone already */ }
  await Promise.race([run.exited, sleep(graceMs)])
  return run.exitInfo !== undefined
}

/**
 * The cleanup path: SIGKILL the whole group (the node and anything it started), wait for the node
 * to be reaped and for the group to be empty. Safe to call at any time, any number of times.
 */
export async function killRun (run: StartRun): Promise<void> {
  killGroupSync(run.pgid, 'SIGKILL')
  await Promise.race([run.exited, sleep(10_000)])
  const deadline = Date.now() + 10_000
  while (groupMembers(run.pgid).length > 0 && Date.now() < deadline) {
    killGroupSync(run.pgid, 'SIGKILL')
    await sleep(100)
  }
  if (run.exitInfo !== undefined && groupMembers(run.pgid).length === 0) live.delete(run)
  run.child.stdout?.destroy()
  run.child.stderr?.destroy()
}

/** Waits up to `timeoutMs` for the group to be empty (its descendants notice the node is gone); returns who is left. */
export async function leftoverProcesses (run: StartRun, timeoutMs = 5000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const members = groupMembers(run.pgid)
    if (members.length === 0 || Date.now() > deadline) {
      return members.map((pid) => `${pid} ${PROC ? procCmdline(pid) : ''}`.trim())
    }
    await sleep(100)
  }
}

/** Ports the run was seen listening on that are still listening on the same socket now (Linux only). */
export function leftoverListeners (run: StartRun): number[] {
  if (!PROC) return []
  const now = listeningTcp()
  return [...run.listening].filter(([inode]) => now.has(inode)).map(([, port]) => port)
}

/** A scratch directory removed (after every run in it is killed) by `cleanup`. */
export class Scratch {
  readonly runs: StartRun[] = []
  private constructor (readonly dir: string) {}

  static async create (): Promise<Scratch> {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-startfail-'))
    dirs.add(dir)
    return new Scratch(dir)
  }

  /** Writes `config` as JSON to `<dir>/<name>` and starts a node on it. */
  async start (config: Record<string, unknown>, name = 'config.json'): Promise<StartRun> {
    const path = join(this.dir, name)
    await writeFile(path, JSON.stringify(config, null, 2))
    const run = spawnStart(path)
    this.runs.push(run)
    return run
  }

  async cleanup (): Promise<void> {
    await Promise.all(this.runs.map(killRun))
    await rm(this.dir, { recursive: true, force: true })
    dirs.delete(this.dir)
  }
}

// --- /proc -----------------------------------------------------------------------------------

/** Live (not zombie) processes in group `pgid`. Zombies are excluded: PID 1 of a container may never reap an orphan's corpse. */
export function groupMembers (pgid: number): number[] {
  if (!PROC) {
    try {
      process.kill(-pgid, 0)
      return [pgid]
    } catch {
      return []
    }
  }
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = procStat(Number(name))
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') out.push(Number(name))
  }
  return out
}

function procStat (pid: number): { state: string, pgrp: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so split after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0] ?? '', pgrp: Number(fields[2]) }
  } catch {
    return undefined
  }
}

function procCmdline (pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim()
  } catch {
    return ''
  }
}

/** Listening TCP sockets of this network namespace: inode → port. */
function listeningTcp (): Map<string, number> {
  const out = new Map<string, number>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (f.length < 10 || f[3] !== '0A') continue
      const port = parseInt(f[1]?.split(':')[1] ?? '', 16)
      if (f[9] !== undefined && f[9] !== '0' && Number.isInteger(port)) out.set(f[9], port)
    }
  }
  return out
}

function sampleListening (run: StartRun): void {
  if (!PROC || run.exitInfo !== undefined) return
  const listening = listeningTcp()
  for (const pid of groupMembers(run.pgid)) {
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
        const port = inode === undefined ? undefined : listening.get(inode)
        if (inode !== undefined && port !== undefined) run.listening.set(inode, port)
      } catch { /* the fd (or the process) went away */ }
    }
  }
}
