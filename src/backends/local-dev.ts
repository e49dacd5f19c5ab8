/**
 * DEV-ONLY backend: a "machine" is a throwaway directory plus an in-process SSH server (ssh2) on
 * 127.0.0.1. The requester's user_data and every SSH session run as THIS node's own OS user with
 * no sandbox, so it exists for local development and tests, never for strangers' grants.
 *
 * The SSH server accepts exactly one identity — user `cmesh` with the grant's public key, signature
 * verified — and exactly two session kinds: `exec` and `shell` (no pty, no forwarding, no sftp).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { availableParallelism, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { timingSafeEqual } from 'node:crypto'
import ssh2 from 'ssh2'
import type { Connection, ParsedKey, PublicKeyAuthContext, ServerChannel } from 'ssh2'
import { isPlainGrantPath } from './grant-files.js'
import {
  BackendError, checkCapabilities, type Backend, type BackendCapabilities, type CanSatisfy, type Grant,
  type Instance, type ProvisionOptions, defaultBackendLogger, type BackendLogger, type BackendUsage } from './backend.js'
import { generateEd25519, hostKeyFingerprint, parsePublicKey, publicKeyBlob } from './ssh-keys.js'

export const LOCAL_USER = 'cmesh'
export const DEFAULT_USER_DATA_TIMEOUT_MS = 60_000
const MAX_USER_DATA_BYTES = 64 * 1024
const MAX_TIMER_MS = 2 ** 31 - 1 // setTimeout's ceiling; longer grants re-arm
/** /proc reports CPU times in USER_HZ clock ticks, 100 per second on every Linux architecture. */
const MS_PER_CLOCK_TICK = 10

export interface LocalDevBackendOptions {
  name?: string
  capabilities?: Partial<BackendCapabilities>
  userDataTimeoutMs?: number
  log?: BackendLogger
  /** Milliseconds since the epoch (Date.now's shape); injected by tests. */
  now?: () => number
  /** Where workspaces are created (default: the OS temp dir). */
  workRoot?: string
}

interface Running {
  instance?: Instance
  readonly grantId: string
  workspace: string
  net?: NetServer
  readonly sockets: Set<Socket>
  readonly clients: Set<Connection>
  /** Process groups started in this workspace: user_data and sessions; killed at the end. */
  readonly groups: Set<number>
  /** The grant's memory allocation, reported as usage. */
  readonly memMiB: number
  /** CPU ticks last read per group leader (with its start time, so a reused pid is not counted), and those of leaders gone since. */
  readonly cpu: { seen: Map<number, { start: string, ticks: number }>, gone: Set<number>, endedTicks: number }
  timer?: NodeJS.Timeout
  stopping?: Promise<void>
  readonly ended: Promise<void>
  readonly markEnded: () => void
}

export class LocalDevBackend implements Backend {
  readonly kind = 'local'
  readonly placesGrantFiles = true
  readonly name: string
  private readonly caps: BackendCapabilities
  private readonly userDataTimeoutMs: number
  private readonly log: BackendLogger
  private readonly now: () => number
  private readonly workRoot: string
  private readonly running = new Map<string, Running>()

  constructor (options: LocalDevBackendOptions = {}) {
    this.name = options.name ?? 'local-dev'
    const defaults = { regions: ['local'], maxCpu: availableParallelism(), maxMemoryMiB: Math.floor(totalmem() / 2 ** 20), maxDiskGiB: 10, tdx: false }
    this.caps = { ...defaults, ...options.capabilities }
    this.userDataTimeoutMs = options.userDataTimeoutMs ?? DEFAULT_USER_DATA_TIMEOUT_MS
    this.log = options.log ?? defaultBackendLogger('cmesh:backend:local-dev')
    this.now = options.now ?? Date.now
    this.workRoot = options.workRoot ?? tmpdir()
    this.log.warn(`DEV-ONLY backend "${this.name}": runs requesters' user_data and SSH sessions as this node's own user, unsandboxed`)
  }

  capabilities (): BackendCapabilities {
    return { ...this.caps, regions: [...this.caps.regions] }
  }

  canSatisfy (grant: Grant): CanSatisfy {
    const verdict = checkCapabilities(this.caps, grant, Math.floor(this.now() / 1000))
    if (!verdict.ok) return verdict
    if (grant.userData.length > MAX_USER_DATA_BYTES) return { ok: false, reason: `user_data is ${grant.userData.length} bytes; at most ${MAX_USER_DATA_BYTES}` }
    if (this.running.has(grant.id)) return { ok: false, reason: 'grant already provisioned' }
    try { parsePublicKey(grant.authorizedKey) } catch { return { ok: false, reason: 'authorized key is not an OpenSSH public key' } }
    return { ok: true }
  }

  async provision (grant: Grant, { onProgress, signal }: ProvisionOptions = {}): Promise<Instance> {
    const verdict = this.canSatisfy(grant)
    if (!verdict.ok) throw new BackendError('BACKEND_CANNOT_SATISFY', verdict.reason, { grantId: grant.id })
    if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted', { grantId: grant.id })
    const authorized = parsePublicKey(grant.authorizedKey)
    onProgress?.({ type: 'provision:starting', detail: { grantId: grant.id } })

    let markEnded = (): void => {}
    const ended = new Promise<void>((resolve) => { markEnded = resolve })
    const run: Running = { grantId: grant.id, workspace: '', sockets: new Set(), clients: new Set(), groups: new Set(), memMiB: grant.memMiB, cpu: { seen: new Map(), gone: new Set(), endedTicks: 0 }, ended, markEnded }
    this.running.set(grant.id, run) // claimed before the first await: one grant is never provisioned twice
    try {
      run.workspace = await mkdtemp(join(this.workRoot, 'cmesh-local-'))
      const hostKey = generateEd25519()
      const ssh = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => { this.serve(run, authorized, client) })
      run.net = createServer((socket) => {
        run.sockets.add(socket)
        socket.once('close', () => run.sockets.delete(socket))
        ssh.injectSocket(socket)
      })
      run.net.listen(0, '127.0.0.1')
      await once(run.net, 'listening')
      const { port } = run.net.address() as AddressInfo
      this.arm(run, grant.validToUnixSecs)
      onProgress?.({ type: 'provision:booting', detail: { host: '127.0.0.1', port } })

      onProgress?.({ type: 'provision:user-data', detail: { bytes: grant.userData.length } })
      for (const file of grant.files ?? []) {
        if (!isPlainGrantPath(file.path)) throw new BackendError('BACKEND_INVALID_GRANT', `grant file path ${file.path} leaves the workspace`, { grantId: grant.id })
        await mkdir(dirname(join(run.workspace, file.path)), { recursive: true, mode: 0o700 })
        await writeFile(join(run.workspace, file.path), file.content, { mode: file.mode })
      }
      await this.runUserData(run, grant.userData, signal)

      const fingerprint = hostKeyFingerprint(publicKeyBlob(hostKey.public))
      const hostKeyLine = hostKey.public.trim().split(/\s+/).slice(0, 2).join(' ')
      const instance: Instance = { grantId: grant.id, backend: this.name, host: '127.0.0.1', port, user: LOCAL_USER, hostKeyFingerprint: fingerprint, hostKey: hostKeyLine, ipv4: '127.0.0.1', handle: run.workspace }
      run.instance = instance
      this.log.info(`DEV-ONLY instance for grant ${grant.id} ready on 127.0.0.1:${port}, valid to ${grant.validToUnixSecs}`)
      onProgress?.({ type: 'provision:ready', detail: instance })
      return instance
    } catch (err) {
      await this.stop(run, 'provisioning failed')
      if (err instanceof BackendError) throw err
      throw new BackendError('BACKEND_PROVISION_FAILED', `provisioning failed: ${(err as Error).message}`, { grantId: grant.id }, { cause: err })
    }
  }

  async watchUntilExit (instance: Instance): Promise<void> {
    await this.running.get(instance.grantId)?.ended
  }

  async terminate (instance: Instance): Promise<void> {
    const run = this.running.get(instance.grantId)
    if (run !== undefined) await this.stop(run, 'terminated')
  }

  /**
   * CPU time of the grant's process groups: utime + stime + cutime + cstime of each group leader
   * still running (its reaped children included), plus what the leaders seen earlier had used when
   * they ended. A lower bound: a leader that ended between two calls counts as last read, one
   * never read (a short user_data) not at all, nor children still running under a leader. Memory
   * is the grant's allocation. Without /proc (not Linux) only memory is reported.
   */
  async usage (instance: Instance): Promise<BackendUsage> {
    const run = this.running.get(instance.grantId)
    if (run === undefined || run.stopping !== undefined) throw new BackendError('BACKEND_UNKNOWN_INSTANCE', `no live instance for grant ${instance.grantId}`, { grantId: instance.grantId })
    if (!(await procReadable())) return { memMiB: run.memMiB }
    let live = 0
    for (const pid of run.groups) {
      if (run.cpu.gone.has(pid)) continue
      const now = await leaderTicks(pid)
      const seen = run.cpu.seen.get(pid)
      if (now === undefined || (seen !== undefined && seen.start !== now.start)) {
        run.cpu.gone.add(pid)
        run.cpu.seen.delete(pid)
        run.cpu.endedTicks += seen?.ticks ?? 0
        continue
      }
      run.cpu.seen.set(pid, now)
      live += now.ticks
    }
    return { cpuMillis: (run.cpu.endedTicks + live) * MS_PER_CLOCK_TICK, memMiB: run.memMiB }
  }

  /** Ends every instance (node shutdown). */
  async stopAll (): Promise<void> {
    await Promise.all([...this.running.values()].map(async (run) => { await this.stop(run, 'backend stopping') }))
  }

  private arm (run: Running, validToUnixSecs: number): void {
    const ms = validToUnixSecs * 1000 - this.now()
    run.timer = setTimeout(() => {
      if (ms > MAX_TIMER_MS) this.arm(run, validToUnixSecs)
      else void this.stop(run, 'valid-to reached')
    }, Math.max(0, Math.min(ms, MAX_TIMER_MS)))
    run.timer.unref()
  }

  private async runUserData (run: Running, userData: Uint8Array, signal?: AbortSignal): Promise<void> {
    await writeFile(join(run.workspace, 'user-data.sh'), userData, { mode: 0o600 })
    const log = await open(join(run.workspace, 'user-data.log'), 'w', 0o600)
    const timeout = AbortSignal.timeout(this.userDataTimeoutMs)
    const stop = signal === undefined ? timeout : AbortSignal.any([timeout, signal])
    try {
      const child = spawn('/bin/sh', ['user-data.sh'], { cwd: run.workspace, env: sessionEnv(run.workspace), detached: true, stdio: ['ignore', log.fd, log.fd] })
      if (child.pid !== undefined) run.groups.add(child.pid)
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
      const kill = (): void => { killGroup(child.pid, 'SIGKILL') }
      stop.addEventListener('abort', kill, { once: true })
      if (stop.aborted) kill()
      try {
        const [code] = await exited
        if (run.stopping !== undefined) throw new BackendError('BACKEND_PROVISION_FAILED', 'instance ended before it was ready', { grantId: run.grantId })
        if (timeout.aborted) throw new BackendError('BACKEND_USER_DATA_TIMEOUT', `user_data still running after ${this.userDataTimeoutMs} ms; killed`, { grantId: run.grantId, timeoutMs: this.userDataTimeoutMs })
        if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted while user_data ran', { grantId: run.grantId })
        if (code !== 0) throw new BackendError('BACKEND_USER_DATA_FAILED', `user_data exited with ${code ?? 'a signal'}`, { grantId: run.grantId, exitCode: code })
      } finally {
        stop.removeEventListener('abort', kill)
      }
    } finally {
      await log.close()
    }
  }

  private serve (run: Running, authorized: ParsedKey, client: Connection): void {
    if (run.stopping !== undefined) { client.end(); return }
    run.clients.add(client)
    client.once('close', () => run.clients.delete(client))
    client.on('error', (err) => { this.log.debug(`ssh client error (grant ${run.grantId}): ${err.message}`) })
    client.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && ctx.username === LOCAL_USER && keyMatches(authorized, ctx)) ctx.accept()
      else ctx.reject(['publickey'])
    })
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept()
        session.once('exec', (acceptExec, _reject, info) => { this.spawnSession(run, acceptExec(), ['-c', info.command]) })
        session.once('shell', (acceptShell) => { this.spawnSession(run, acceptShell(), ['-i']) })
      })
    })
  }

  private spawnSession (run: Running, channel: ServerChannel, args: string[]): void {
    const child = spawn('/bin/sh', args, { cwd: run.workspace, env: sessionEnv(run.workspace), detached: true, stdio: 'pipe' })
    if (child.pid !== undefined) run.groups.add(child.pid)
    channel.pipe(child.stdin)
    child.stdin.on('error', () => {}) // the command may exit before reading its stdin
    child.stdout.pipe(channel, { end: false })
    child.stderr.pipe(channel.stderr, { end: false })
    let done = false
    const finish = (status: number | string): void => {
      if (done) return
      done = true
      try {
        if (typeof status === 'number') channel.exit(status)
        else channel.exit(status, false, '')
      } catch { channel.exit(255) } // exit() refuses signal names SSH lacks
      channel.end()
    }
    child.once('error', () => { finish(127) })
    child.once('close', (code, sig) => { finish(code ?? sig ?? 255) })
    // A client gone mid-command hangs the session up, as sshd does.
    channel.once('close', () => { if (!done) killGroup(child.pid, 'SIGHUP') })
  }

  private async stop (run: Running, why: string): Promise<void> {
    run.stopping ??= (async () => {
      clearTimeout(run.timer)
      for (const pgid of run.groups) killGroup(pgid, 'SIGKILL')
      if (run.net !== undefined) {
        const closed = new Promise<void>((resolve) => { run.net?.close(() => { resolve() }) })
        for (const client of run.clients) client.end()
        // Polite disconnects first; a peer that ignores them is cut off.
        await Promise.race([closed, once(AbortSignal.timeout(1000), 'abort')])
        for (const socket of run.sockets) socket.destroy()
        await closed
      }
      if (run.workspace !== '') await rm(run.workspace, { recursive: true, force: true, maxRetries: 3 })
      this.running.delete(run.grantId)
      if (run.instance !== undefined) this.log.info(`DEV-ONLY instance for grant ${run.grantId} ended: ${why}`)
      run.markEnded()
    })()
    await run.stopping
  }
}

/** Same key type and bytes as the grant's key and, once the client signs, a valid signature. */
function keyMatches (authorized: ParsedKey, ctx: PublicKeyAuthContext): boolean {
  const want = authorized.getPublicSSH()
  if (ctx.key.algo !== authorized.type || ctx.key.data.length !== want.length || !timingSafeEqual(ctx.key.data, want)) return false
  if (ctx.signature === undefined) return true // a query: "would this key do?"; the signed attempt follows
  return ctx.blob !== undefined && authorized.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true
}

function sessionEnv (workspace: string): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: workspace, USER: LOCAL_USER, LOGNAME: LOCAL_USER, SHELL: '/bin/sh', LANG: 'C.UTF-8' }
}

let procOk: Promise<boolean> | undefined
function procReadable (): Promise<boolean> {
  procOk ??= readFile('/proc/self/stat', 'utf8').then(() => true, () => false)
  return procOk
}

/** A process's own and its reaped children's CPU ticks, and its start time; undefined once it is gone. */
async function leaderTicks (pid: number): Promise<{ start: string, ticks: number } | undefined> {
  let stat: string
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // Fields after the parenthesised command name (which may itself hold spaces or parentheses), from field 3 on.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const start = f[19]
  const ticks = [f[11], f[12], f[13], f[14]].reduce((sum: number, x) => sum + (Number.parseInt(x ?? '', 10) || 0), 0)
  return start === undefined || start === '' ? undefined : { start, ticks }
}

function killGroup (pgid: number | undefined, sig: NodeJS.Signals): void {
  if (pgid === undefined) return
  try { process.kill(-pgid, sig) } catch { /* already gone */ }
}
