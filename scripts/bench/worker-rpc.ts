/**
 * A benchmark worker process and its request/reply over IPC: every message carries a type `t`;
 * a request waits for the first message of the reply type it names. `onMessage` sees every message
 * first (propagation uses it for unsolicited delivery reports).
 */
import { fork, type ChildProcess } from 'node:child_process'

export class WorkerProcess {
  readonly child: ChildProcess
  private readonly waiters: Array<{ t: string, resolve: (m: any) => void }> = []

  constructor (path: string, options: { env?: NodeJS.ProcessEnv, onMessage?: (m: any) => boolean } = {}) {
    this.child = fork(path, [], { execArgv: ['--import', 'tsx'], ...(options.env !== undefined ? { env: options.env } : {}), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (m: any) => {
      if (options.onMessage?.(m) === true) return
      if (m.t === 'error') console.error('worker error:', m.message)
      const i = this.waiters.findIndex((w) => w.t === m.t)
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(m)
    })
  }

  /** Sends `msg` (unless null) and resolves with the next message of type `reply`. */
  async request (msg: any, reply: string): Promise<any> {
    const p = new Promise((resolve) => this.waiters.push({ t: reply, resolve }))
    if (msg !== null) this.child.send(msg)
    return await p
  }
}
