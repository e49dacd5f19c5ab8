/**
 * What the node's services are built from, in js-libp2p's components style: each service factory
 * takes this bag (and the few other services it needs) and picks what it uses. `shutdown` aborts
 * when the node stops, so every long operation a service starts ends with it.
 */
import type { Startable } from '@libp2p/interface'
import type { ProviderCollection } from '../market/collection.js'
import type { RfpBook } from '../market/rfp-book.js'
import type { Identity } from '../market/identity.js'
import type { MeshLibp2p } from './libp2p.js'
import type { NodeStore } from './store.js'
import type { NodeConfig } from './config.js'
import type { Logger } from './logger.js'
import type { NodeMetrics } from './metrics.js'
import type { NodeEvents } from './events.js'
import type { DialBackoff } from './dial-backoff.js'

export interface NodeComponents {
  config: NodeConfig
  /** Absolute path of the data dir (key, store, api.json, builds.json). */
  dataDir: string
  identity: Identity
  libp2p: MeshLibp2p
  collection: ProviderCollection
  rfps: RfpBook
  store: NodeStore
  /** Wall clock in ms; tests move it. */
  now: () => number
  log: Logger
  metrics: NodeMetrics
  events: NodeEvents
  shutdown: AbortSignal
  /** The transport's memory of failed addresses (its refusals are a metric). */
  dialBackoff: DialBackoff
}

export type { Startable }

export function nowSecs (components: Pick<NodeComponents, 'now'>): number {
  return Math.floor(components.now() / 1000)
}

/** A timer that never keeps the process alive; cleared by the caller's stop(). */
export function every (secs: number, fn: () => void): NodeJS.Timeout {
  const timer = setInterval(fn, secs * 1000)
  timer.unref()
  return timer
}

/** `signal` with a deadline added: what every long operation a service starts is given. */
export function withTimeout (signal: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)])
}
