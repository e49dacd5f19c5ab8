/**
 * A bounded work queue keyed by subject (a provider, a peer): at most one pending job per key
 * (a newer job replaces or merges into the waiting one), at most `concurrency` running, never two
 * for the same key at once, each with its own deadline and the owner's shutdown signal. When more
 * than `maxPending` keys wait, the oldest waiting job is dropped (Lodestar's gossip queues drop the
 * same way): it is the stalest, and a newer event for that key will queue it again.
 */
export interface KeyedQueueInit<T> {
  concurrency: number
  maxPending: number
  /** Per job: its signal aborts after this long. */
  timeoutMs: number
  /** Aborts every running job and refuses new ones. */
  signal: AbortSignal
  run: (key: string, item: T, signal: AbortSignal) => Promise<void>
  /** Combines a waiting job with a newer one for the same key (default: the newer wins). */
  merge?: (waiting: T, newer: T) => T
  onError?: (key: string, err: unknown) => void
  onDrop?: (key: string) => void
}

export class KeyedQueue<T> {
  private readonly pending = new Map<string, T>()
  private readonly running = new Set<string>()
  private waiters: Array<() => void> = []

  constructor (private readonly init: KeyedQueueInit<T>) {}

  get pendingCount (): number {
    return this.pending.size
  }

  get runningCount (): number {
    return this.running.size
  }

  add (key: string, item: T): void {
    if (this.init.signal.aborted) return
    const waiting = this.pending.get(key)
    // Re-inserted at the back: a key that keeps changing does not hold the front of the line.
    this.pending.delete(key)
    this.pending.set(key, waiting !== undefined && this.init.merge !== undefined ? this.init.merge(waiting, item) : item)
    while (this.pending.size > this.init.maxPending) {
      const oldest = this.pending.keys().next().value as string
      this.pending.delete(oldest)
      this.init.onDrop?.(oldest)
    }
    this.pump()
  }

  /** Forgets waiting jobs (running ones finish or are aborted by the signal). */
  clear (): void {
    this.pending.clear()
    this.notifyIfIdle()
  }

  /** Resolves once nothing is waiting or running. */
  async settled (): Promise<void> {
    if (this.pending.size === 0 && this.running.size === 0) return
    await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  private pump (): void {
    if (this.init.signal.aborted) {
      this.clear()
      return
    }
    for (const [key, item] of this.pending) {
      if (this.running.size >= this.init.concurrency) break
      if (this.running.has(key)) continue
      this.pending.delete(key)
      this.running.add(key)
      const signal = AbortSignal.any([this.init.signal, AbortSignal.timeout(this.init.timeoutMs)])
      this.init.run(key, item, signal)
        .catch((err) => this.init.onError?.(key, err))
        .finally(() => {
          this.running.delete(key)
          this.pump()
          this.notifyIfIdle()
        })
    }
  }

  private notifyIfIdle (): void {
    if (this.pending.size > 0 || this.running.size > 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const resolve of waiters) resolve()
  }
}
