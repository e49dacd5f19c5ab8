/**
 * Bonds in a running node: a card claiming TdxRaTlsBidirectional or more can only be verified at
 * that rung after this node has bonded with the provider, so the verified-level service asks for
 * one here. The provider is dialled (peer routing when not connected) and the attest exchange run
 * once per connection, a few at a time; a refused or failed bond is not retried on that connection.
 * The bid protocol uses the same per-connection bonds.
 */
import type { Connection, PeerId, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { peerIdFromDid, type Did } from '../../market/identity.js'
import { KeyedQueue } from '../keyed-queue.js'
import type { NodeComponents } from '../components.js'
import type { AttestationService } from './attestation.js'

export const BOND_CONCURRENCY = 2
/** Dial (with peer routing) and the exchange together. */
export const BOND_TIMEOUT_MS = 30_000
export const BOND_MAX_PENDING = 1000

export class Bonding implements Startable {
  private readonly queue: KeyedQueue<PeerId>
  /** Connections an exchange was already run on (whatever its outcome). */
  private readonly attempted = new Set<string>()
  private readonly onClose = (evt: CustomEvent<Connection>): void => { this.attempted.delete(evt.detail.id) }

  constructor (private readonly components: NodeComponents, private readonly attestation: AttestationService) {
    this.queue = new KeyedQueue<PeerId>({
      concurrency: BOND_CONCURRENCY,
      maxPending: BOND_MAX_PENDING,
      timeoutMs: BOND_TIMEOUT_MS,
      signal: components.shutdown,
      run: async (_key, peer, signal) => { await this.bond(peer, signal) },
      onError: (key, err) => components.log.debug(`bond with ${key} failed: ${(err as Error).message}`)
    })
  }

  /** Only a node that proves TDX itself and requires it of peers can form a bidirectional bond. */
  get canBond (): boolean {
    return this.attestation.offer === 'TdxRaTlsBidirectional'
  }

  start (): void {
    this.components.libp2p.addEventListener('connection:close', this.onClose)
  }

  async stop (): Promise<void> {
    this.components.libp2p.removeEventListener('connection:close', this.onClose)
    this.queue.clear()
    await this.queue.settled()
  }

  /** Asks for a bond with `providerId` in the background (no-op when one is queued or this node cannot bond). */
  request (providerId: Did): void {
    if (!this.canBond || providerId === this.components.identity.did) return
    this.queue.add(providerId, peerIdFromString(peerIdFromDid(providerId)))
  }

  async settled (): Promise<void> {
    await this.queue.settled()
  }

  private async bond (peer: PeerId, signal: AbortSignal): Promise<void> {
    const { libp2p } = this.components
    const open = libp2p.getConnections(peer).filter((c) => c.status === 'open')
    if (open.some((c) => this.attestation.attest.bondFor(c) !== undefined)) return
    const connection = open.find((c) => !this.attempted.has(c.id)) ?? (open.length === 0 ? await libp2p.dial(peer, { signal }) : undefined)
    if (connection === undefined || this.attempted.has(connection.id)) return
    this.attempted.add(connection.id)
    await this.attestation.attest.attest(connection, { signal })
  }
}
