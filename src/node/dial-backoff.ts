/**
 * Per-address dial back-off. libp2p 3 dials an address again whenever any part of the node asks
 * (DHT pings and queries, reconnects of kept-alive peers, evidence and bond dials, bootstrap
 * re-dials); during a partition that was hundreds of refused dials per second across a mesh. Here
 * the transport itself remembers failed addresses: after a failure an address is not dialled for
 * `baseMs`, doubling per further failure up to `maxMs`; a dial inside that window fails at once,
 * without touching the network, with DIAL_BACKOFF. One success forgets the address.
 */
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Transport } from '@libp2p/interface'
import { NodeError } from './errors.js'

export const DIAL_BACKOFF_BASE_MS = 1000
export const DIAL_BACKOFF_MAX_MS = 60_000
/** Addresses remembered at most; the entry closest to being dialable again goes first. */
export const DIAL_BACKOFF_MAX_ENTRIES = 4096

interface Entry { failures: number, untilMs: number }

export interface DialBackoffInit {
  baseMs?: number
  maxMs?: number
  maxEntries?: number
  now?: () => number
}

export class DialBackoff {
  private readonly entries = new Map<string, Entry>()
  private readonly baseMs: number
  private readonly maxMs: number
  private readonly maxEntries: number
  private readonly now: () => number
  /** Dials refused without touching the network (metrics, benchmarks). */
  refused = 0

  constructor (init: DialBackoffInit = {}) {
    this.baseMs = init.baseMs ?? DIAL_BACKOFF_BASE_MS
    this.maxMs = init.maxMs ?? DIAL_BACKOFF_MAX_MS
    this.maxEntries = init.maxEntries ?? DIAL_BACKOFF_MAX_ENTRIES
    this.now = init.now ?? Date.now
  }

  /** The address without its /p2p/ part: the transport is what failed, whoever we hoped to meet. */
  static keyOf (ma: Multiaddr): string {
    return ma.toString().replace(/\/p2p\/[^/]+$/, '')
  }

  /** Milliseconds until `key` may be dialled again (0: now). */
  waitMs (key: string): number {
    const entry = this.entries.get(key)
    return entry === undefined ? 0 : Math.max(0, entry.untilMs - this.now())
  }

  failed (key: string): void {
    const failures = (this.entries.get(key)?.failures ?? 0) + 1
    this.entries.delete(key)
    this.entries.set(key, { failures, untilMs: this.now() + Math.min(this.maxMs, this.baseMs * 2 ** (failures - 1)) })
    if (this.entries.size > this.maxEntries) this.evict()
  }

  succeeded (key: string): void {
    this.entries.delete(key)
  }

  get size (): number {
    return this.entries.size
  }

  private evict (): void {
    let soonest: string | undefined
    let soonestUntil = Infinity
    for (const [key, entry] of this.entries) {
      if (entry.untilMs < soonestUntil) { soonest = key; soonestUntil = entry.untilMs }
    }
    if (soonest !== undefined) this.entries.delete(soonest)
  }
}

/** A transport factory (e.g. `tcp()`) whose dials go through `backoff`. */
export function withDialBackoff<C> (factory: (components: C) => Transport, backoff: DialBackoff): (components: C) => Transport {
  return (components: C) => {
    const inner = factory(components)
    const dial = inner.dial.bind(inner)
    // Everything else (symbols, filters, listeners) stays the inner transport's own.
    const wrapped = Object.create(inner) as Transport
    wrapped.dial = async (ma, options) => {
      const key = DialBackoff.keyOf(ma)
      const waitMs = backoff.waitMs(key)
      if (waitMs > 0) {
        backoff.refused++
        throw new NodeError('DIAL_BACKOFF', `not dialling ${key} for another ${waitMs} ms: it failed recently`)
      }
      try {
        const conn = await dial(ma, options)
        backoff.succeeded(key)
        return conn
      } catch (err) {
        // Our own caller giving up says nothing about the address.
        if (options.signal?.aborted !== true) backoff.failed(key)
        throw err
      }
    }
    return wrapped
  }
}
