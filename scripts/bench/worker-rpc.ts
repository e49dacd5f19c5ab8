/**
 * A benchmark worker process and its request/reply over IPC: every message carries a type `t`;
 * a request waits for the first message of the reply type it names. `onMessage` sees every message
 * first (propagation uses it for unsolicited delivery reports).
 *
 * A worker can die under a benchmark (out of memory, a crash in a node, the OOM killer, a closed
 * IPC channel). Then the worker is marked dead with a report (its label, exit code or signal,
 * why, the last lines of its stderr), every pending and later request rejects with a
 * `WorkerDiedError` carrying that report, and sends to it are dropped: nothing here throws
 * uncaught, so the harness can count the dead nodes against its figures and still print its row.
 */
import { fork, type ChildProcess } from 'node:child_process'

const STDERR_TAIL_LINES = 20
// After 'exit', stderr may still hold the crash's last lines: wait this long at most for its end.
const STDERR_DRAIN_MS = 500
const CHANNEL_GRACE_MS = 1000

export interface WorkerDeath {
  /** What the harness calls this worker (which nodes it hosts). */
  label: string
  pid: number | undefined
  code: number | null
  signal: NodeJS.Signals | null
  /** What was seen first: 'exited', 'IPC channel closed', 'send failed: EPIPE', 'spawn failed: …'. */
  reason: string
  /** Its last stderr lines (at most 20), oldest first. */
  stderrTail: string[]
}

export class WorkerDiedError extends Error {
  readonly death: WorkerDeath
  constructor (death: WorkerDeath, during: string) {
    super(`worker ${death.label} died during ${during}: ${describeDeath(death)}`)
    this.name = 'WorkerDiedError'
    this.death = death
  }
}

export class WorkerTimeoutError extends Error {
  constructor (label: string, reply: string, ms: number) {
    super(`worker ${label}: no '${reply}' within ${ms} ms`)
    this.name = 'WorkerTimeoutError'
  }
}

export function describeDeath (d: WorkerDeath): string {
  const how = d.signal !== null ? `signal ${d.signal}` : d.code !== null ? `exit code ${d.code}` : 'still running (killed)'
  return `${d.reason}, ${how}${d.pid !== undefined ? `, pid ${d.pid}` : ''}`
}

/** The death report as lines for stderr: the summary, then the stderr tail indented. */
export function formatDeath (d: WorkerDeath): string {
  const tail = d.stderrTail.length > 0 ? `\n  last stderr lines:\n${d.stderrTail.map((l) => `    ${l}`).join('\n')}` : '\n  (no stderr output)'
  return `worker ${d.label} died: ${describeDeath(d)}${tail}`
}

export interface WorkerOptions {
  env?: NodeJS.ProcessEnv
  /** Sees every message first; returns true when it consumed it. */
  onMessage?: (m: any) => boolean
  /** Which nodes this worker hosts, for reports; may be changed later through `label`. */
  label?: string
  /** Called once, when the death is final (the stderr tail collected). Default: print the report. */
  onDeath?: (death: WorkerDeath) => void
  /** Echo the worker's stderr to ours (prefixed with the label). Default true. */
  echoStderr?: boolean
  /** Node flags for the worker; default: tsx, so workers may be TypeScript. */
  execArgv?: string[]
}

interface Waiter { t: string, resolve: (m: any) => void, reject: (err: Error) => void }

export class WorkerProcess {
  readonly child: ChildProcess
  label: string
  /** Set once the worker is known dead; final (with the stderr tail) once `exited` resolves. */
  death: WorkerDeath | undefined
  /** Resolves with the final death report, whenever the worker ends (a clean stop included). */
  readonly exited: Promise<WorkerDeath>
  private readonly waiters: Waiter[] = []
  private readonly stderrTail: string[] = []
  private partialLine = ''
  private firstReason: string | undefined
  private finalize: (death: WorkerDeath) => void = () => {}
  private stopping = false

  constructor (path: string, options: WorkerOptions = {}) {
    this.label = options.label ?? path
    this.exited = new Promise((resolve) => { this.finalize = resolve })
    this.child = fork(path, [], {
      execArgv: options.execArgv ?? ['--import', 'tsx'],
      ...(options.env !== undefined ? { env: options.env } : {}),
      stdio: ['ignore', 'inherit', 'pipe', 'ipc']
    })
    const echo = options.echoStderr ?? true
    let stderrEnded: () => void = () => {}
    const stderrDone = new Promise<void>((resolve) => { stderrEnded = resolve })
    const stderr = this.child.stderr
    if (stderr === null) stderrEnded()
    else {
      stderr.setEncoding('utf8')
      stderr.on('data', (chunk: string) => { this.keepStderr(chunk, echo) })
      stderr.on('end', () => { this.flushPartial(echo); stderrEnded() })
      stderr.on('error', () => { stderrEnded() })
    }

    this.child.on('message', (m: any) => {
      if (options.onMessage?.(m) === true) return
      if (m?.t === 'error') console.error(`worker ${this.label} error:`, m.message)
      const i = this.waiters.findIndex((w) => w.t === m?.t)
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(m)
    })
    // Without an 'error' listener, a failed spawn or send would be an uncaught exception here.
    this.child.on('error', (err: NodeJS.ErrnoException) => {
      this.markDead(this.child.pid === undefined ? `spawn failed: ${err.message}` : `error: ${err.code ?? err.message}`)
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    })
    // An exiting worker's channel closes just before its 'exit': only a channel still closed with
    // the process alive a moment later is a death of its own (and the process is then killed).
    let channelTimer: NodeJS.Timeout | undefined
    this.child.on('disconnect', () => {
      if (!this.stopping) channelTimer = setTimeout(() => { this.markDead('IPC channel closed') }, CHANNEL_GRACE_MS)
    })
    this.child.on('exit', (code, signal) => {
      clearTimeout(channelTimer)
      this.markDead(this.stopping && code === 0 ? 'stopped' : 'exited')
      const report = (): void => {
        const death: WorkerDeath = { label: this.label, pid: this.child.pid, code, signal, reason: this.firstReason ?? 'exited', stderrTail: [...this.stderrTail] }
        this.death = death
        if (death.reason !== 'stopped') (options.onDeath ?? ((d) => { console.error(formatDeath(d)) }))(death)
        this.finalize(death)
      }
      let timer: NodeJS.Timeout | undefined
      void Promise.race([stderrDone, new Promise<void>((resolve) => { timer = setTimeout(resolve, STDERR_DRAIN_MS) })])
        .then(() => { clearTimeout(timer); this.flushPartial(echo); report() })
    })
  }

  /** True until the worker exits, its channel closes or a send to it fails. */
  get alive (): boolean {
    return this.death === undefined
  }

  /** Sends a message; false (never a throw) when the worker is dead or the send fails. */
  send (msg: unknown): boolean {
    if (!this.alive || !this.child.connected) return false
    try {
      this.child.send(msg as any, (err) => {
        if (err !== null && err !== undefined) this.markDead(`send failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`)
      })
      return true
    } catch (err) {
      // Serialization errors throw synchronously; a broken channel reports through the callback.
      this.markDead(`send failed: ${(err as Error).message}`)
      return false
    }
  }

  /**
   * Sends `msg` (unless null) and resolves with the next message of type `reply`; rejects with a
   * WorkerDiedError if the worker is or becomes dead first, or a WorkerTimeoutError after `timeoutMs`.
   */
  async request (msg: unknown, reply: string, options: { timeoutMs?: number } = {}): Promise<any> {
    if (this.death !== undefined) throw new WorkerDiedError(this.death, `'${reply}'`)
    let timer: NodeJS.Timeout | undefined
    try {
      return await new Promise((resolve, reject) => {
        const waiter: Waiter = { t: reply, resolve, reject }
        this.waiters.push(waiter)
        if (options.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            const i = this.waiters.indexOf(waiter)
            if (i >= 0) this.waiters.splice(i, 1)
            reject(new WorkerTimeoutError(this.label, reply, options.timeoutMs as number))
          }, options.timeoutMs)
        }
        if (msg !== null) this.send(msg)
      })
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Asks the worker to stop (`msg`, answered by `reply`, then it exits), and kills it with SIGKILL
   * if it has not exited within `graceMs`. Never throws; resolves once the process is gone.
   */
  async stop (msg: unknown, reply: string, graceMs = 15_000): Promise<WorkerDeath> {
    if (this.death === undefined) {
      this.stopping = true
      const gone = this.request(msg, reply, { timeoutMs: graceMs }).then(async () => await this.exitedWithin(graceMs)).catch(() => false)
      if (!await gone) this.kill('SIGKILL')
    }
    return await this.exited
  }

  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }

  private async exitedWithin (ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const ok = await Promise.race([this.exited.then(() => true), new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false) }, ms) })])
    clearTimeout(timer)
    return ok
  }

  /** The first sign of death wins as the reason; pending requests reject at once. */
  private markDead (reason: string): void {
    if (this.firstReason === undefined) this.firstReason = reason
    if (this.death === undefined) {
      // Provisional until 'exit' (code, signal and the whole stderr tail are known then).
      this.death = { label: this.label, pid: this.child.pid, code: this.child.exitCode, signal: this.child.signalCode, reason, stderrTail: [...this.stderrTail] }
    }
    if (reason !== 'exited' && reason !== 'stopped' && this.child.exitCode === null && this.child.signalCode === null) {
      // A worker we can no longer talk to is of no use, and must not linger.
      this.child.kill('SIGKILL')
    }
    const pending = this.waiters.splice(0)
    for (const w of pending) w.reject(new WorkerDiedError(this.death, `'${w.t}'`))
  }

  private keepStderr (chunk: string, echo: boolean): void {
    const lines = (this.partialLine + chunk).split('\n')
    this.partialLine = lines.pop() ?? ''
    for (const line of lines) this.keepLine(line, echo)
  }

  private flushPartial (echo: boolean): void {
    if (this.partialLine !== '') this.keepLine(this.partialLine, echo)
    this.partialLine = ''
  }

  private keepLine (line: string, echo: boolean): void {
    this.stderrTail.push(line)
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift()
    if (echo) process.stderr.write(`[${this.label}] ${line}\n`)
  }
}
