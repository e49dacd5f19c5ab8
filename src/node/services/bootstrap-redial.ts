/**
 * `@libp2p/bootstrap` dials its list once and never again: a node that lost every peer (or
 * started before its bootstrap peers) re-dials them every `redialIntervalSecs` while it has none.
 */
import type { Startable } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { every, withTimeout, type NodeComponents } from '../components.js'

export const BOOTSTRAP_DIAL_TIMEOUT_MS = 5000

export class BootstrapRedial implements Startable {
  private timer: NodeJS.Timeout | undefined
  private dialing = false

  constructor (private readonly components: NodeComponents) {}

  start (): void {
    const { config } = this.components
    if (config.bootstrap.length > 0) this.timer = every(config.redialIntervalSecs, () => { void this.redial() })
  }

  stop (): void {
    clearInterval(this.timer)
  }

  private async redial (): Promise<void> {
    const { libp2p, config, shutdown, log } = this.components
    if (this.dialing || libp2p.getConnections().length > 0) return
    this.dialing = true
    try {
      for (const addr of config.bootstrap) {
        if (shutdown.aborted) return
        try {
          await libp2p.dial(multiaddr(addr), { signal: withTimeout(shutdown, BOOTSTRAP_DIAL_TIMEOUT_MS) })
        } catch (err) {
          log.debug(`bootstrap dial ${addr} failed: ${(err as Error).message}`)
        }
      }
    } finally {
      this.dialing = false
    }
  }
}
