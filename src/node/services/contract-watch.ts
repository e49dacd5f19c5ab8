/**
 * The requester's side of a contract after its receipt. It takes the provider's heartbeats and
 * termination records for the contracts this node holds with that very provider, checks and keeps
 * them (the last heartbeat; the termination, which ends the contract), marks a ready contract
 * `unresponsive` when heartbeats stop for `lifecycle.unresponsiveAfterPeriods` periods (and ready
 * again when they resume), and asks the provider to end a contract (`terminate`, what
 * `cmesh contracts terminate` calls). Every change is published as a `contract` event.
 *
 * Its handlers are served by the lifecycle service, which owns the protocol's registration; it
 * sends its own requests through a client of the same protocol.
 */
import type { PeerId, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ContractProtocol } from '../../protocols/contract.js'
import { errorText } from '../../protocols/error-text.js'
import { decodeRecord, signRecord } from '../../market/record.js'
import { HeartbeatType } from '../../market/heartbeat.js'
import { TerminationType, MAX_TERMINATION_DETAIL_CHARS, type SignedTermination } from '../../market/termination.js'
import { checkHeartbeat, checkTermination, type ContractParties } from '../../market/lifecycle-checks.js'
import { LifecycleError } from '../../market/lifecycle-error.js'
import { CcrType } from '../../market/ccr.js'
import { openReceipt } from '../../market/sealed-receipt.js'
import { peerIdFromDid } from '../../market/identity.js'
import { CmeshError } from '../../market/errors.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { decodeContract, type StoredContract } from '../contract-state.js'
import { bidHeartbeatSecs, didOfPeer, PerKeySerial, readContract, storedParties, updateContract } from '../contract-store.js'
import { contractView } from '../contract-view.js'

/** How often watched contracts are looked at for silence and for valid-to. */
export const WATCH_TICK_SECS = 1

interface Watched {
  id: string
  parties: ContractParties
  /** When this node began to expect heartbeats (ready, or its own start): silence counts from here at the earliest. */
  since: number
  lastBeat?: number
  periodSecs: number
  validTo?: number
  state: 'ready' | 'unresponsive'
  busy: boolean
}

export class ContractWatch implements Startable {
  /** Outbound only (terminate); the lifecycle service registers the protocol's handler. */
  readonly client: ContractProtocol
  /** CCBA CID → requester contract id (the RFP's CID). */
  private readonly byCcba = new Map<string, string>()
  private readonly watched = new Map<string, Watched>()
  private readonly serial = new PerKeySerial()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private stopping = new AbortController()

  constructor (private readonly components: NodeComponents) {
    this.client = new ContractProtocol(components.libp2p, { network: components.config.network })
  }

  private get signal (): AbortSignal {
    return AbortSignal.any([this.components.shutdown, this.stopping.signal])
  }

  async start (): Promise<void> {
    const { store, events, log } = this.components
    this.stopping = new AbortController()
    for (const [key, bytes] of await store.entries('contracts')) {
      if (!key.startsWith('requester/')) continue
      try {
        const c = decodeContract(bytes)
        this.index(c)
        if (c.state === 'ready' || c.state === 'unresponsive') await this.watch(c)
      } catch (err) {
        log.warn(`contract ${key}: cannot watch it: ${errorText(err)}`)
      }
    }
    this.unsubscribe = events.subscribe((event) => {
      const data = event.data as { id?: unknown, role?: unknown, state?: unknown }
      if (event.type !== 'contract' || data.role !== 'requester' || typeof data.id !== 'string') return
      if (data.state !== 'accepted' && data.state !== 'ready') return
      const id = data.id
      if (this.watched.has(id)) return
      const ready = data.state === 'ready'
      readContract(this.components, 'requester', id)
        .then(async (c) => {
          if (c === undefined) return
          this.index(c)
          // The event may come before the flow's last save lands: the event says ready, and that is enough to expect heartbeats.
          if (ready) await this.watch(c)
        })
        .catch((err) => log.warn(`contract ${id}: cannot watch it: ${errorText(err)}`))
    })
    this.timer = every(WATCH_TICK_SECS, () => { this.tick() })
    this.gauge()
  }

  stop (): void {
    clearInterval(this.timer)
    this.unsubscribe?.()
    this.stopping.abort()
    this.watched.clear()
    this.byCcba.clear()
    this.gauge()
  }

  private index (c: StoredContract): void {
    if (c.ccba === undefined) return
    const parties = storedParties(c)
    if (parties !== undefined) this.byCcba.set(parties.ccba.cid.toString(), c.id)
  }

  /**
   * Expects heartbeats for a ready contract (idempotent). valid-to comes from the receipt; it is
   * stored with the first heartbeat, not here: the requester service saves the contract right
   * after announcing it ready, and a write now could land between its read and its write.
   */
  private async watch (c: StoredContract): Promise<void> {
    if (this.watched.has(c.id)) return
    const parties = storedParties(c)
    if (parties === undefined) return
    let validTo = c.validToUnixSecs
    if (validTo === undefined && c.receipt !== undefined && c.receiptKey !== undefined && c.ccr !== undefined) {
      try {
        validTo = (await openReceipt(c.receipt, c.receiptKey, decodeRecord(c.ccr, [CcrType]).cid.bytes)).validToUnixSecs
      } catch (err) {
        // Watched all the same: only the end after valid-to goes unnoticed.
        this.components.log.warn(`contract ${c.id}: its valid-to is unknown (${errorText(err)})`)
      }
    }
    const last = c.heartbeat !== undefined ? decodeRecord(c.heartbeat, [HeartbeatType]).value : undefined
    this.watched.set(c.id, {
      id: c.id,
      parties,
      since: nowSecs(this.components),
      ...(c.lastHeartbeatUnixSecs !== undefined ? { lastBeat: c.lastHeartbeatUnixSecs } : {}),
      periodSecs: last?.periodSecs ?? bidHeartbeatSecs(c) ?? this.components.config.lifecycle.heartbeatSecs,
      ...(validTo !== undefined ? { validTo } : {}),
      state: c.state === 'unresponsive' ? 'unresponsive' : 'ready',
      busy: false
    })
    this.index(c)
    this.gauge()
  }

  private unwatch (id: string): void {
    this.watched.delete(id)
    this.gauge()
  }

  private gauge (): void {
    let n = 0
    for (const w of this.watched.values()) if (w.state === 'unresponsive') n++
    this.components.metrics.contractsUnresponsive.set(n)
  }

  private tick (): void {
    if (this.signal.aborted) return
    const now = nowSecs(this.components)
    const periods = this.components.config.lifecycle.unresponsiveAfterPeriods
    for (const w of this.watched.values()) {
      if (w.busy) continue
      const silence = periods * w.periodSecs
      if (w.validTo !== undefined && now > w.validTo + silence) void this.settle(w, () => this.lapsed(w))
      else if (w.state === 'ready' && now - Math.max(w.since, w.lastBeat ?? 0) > silence) void this.settle(w, () => this.silent(w))
    }
  }

  private async settle (w: Watched, run: () => Promise<void>): Promise<void> {
    w.busy = true
    try {
      await this.serial.run(w.id, run)
    } catch (err) {
      this.components.log.warn(`contract ${w.id}: ${errorText(err)}`)
    } finally {
      w.busy = false
    }
  }

  /** Heartbeats stopped: the contract is unresponsive until they resume. */
  private async silent (w: Watched): Promise<void> {
    const stored = await updateContract(this.components, 'requester', w.id, (c) => c.state === 'ready' ? { ...c, state: 'unresponsive' } : undefined)
    if (stored === undefined) return
    w.state = 'unresponsive'
    this.gauge()
    this.components.metrics.contracts.inc({ role: 'requester', state: 'unresponsive' })
    this.components.events.publish('contract', { id: w.id, role: 'requester', state: 'unresponsive', provider: w.parties.provider })
    this.components.log.info(`contract ${w.id}: no heartbeat from ${w.parties.provider} for ${nowSecs(this.components) - Math.max(w.since, w.lastBeat ?? 0)} s; unresponsive`)
  }

  /** valid-to passed long ago and the provider never said it ended: ended here all the same, without a record. */
  private async lapsed (w: Watched): Promise<void> {
    const stored = await updateContract(this.components, 'requester', w.id, (c) =>
      c.termination === undefined && (c.state === 'ready' || c.state === 'unresponsive')
        ? { ...c, state: 'ended', error: { code: 'EXPIRED', detail: 'valid-to passed and the provider sent no termination record' } }
        : undefined)
    this.unwatch(w.id)
    if (stored === undefined) return
    this.components.metrics.contracts.inc({ role: 'requester', state: 'ended' })
    this.components.events.publish('contract', { id: w.id, role: 'requester', state: 'ended', error: stored.error })
  }

  /** The contract this record names, held with this very peer as its provider; one refusal for unknown and not-yours. */
  private async held (ccbaCid: string, peer: PeerId): Promise<{ c: StoredContract, parties: ContractParties }> {
    const id = this.byCcba.get(ccbaCid)
    const c = id === undefined ? undefined : await readContract(this.components, 'requester', id)
    const parties = c === undefined ? undefined : storedParties(c)
    if (c === undefined || parties === undefined || parties.provider !== didOfPeer(peer)) throw new LifecycleError('LIFECYCLE_UNKNOWN_CONTRACT', 'no such contract with this peer')
    return { c, parties }
  }

  /** A provider's heartbeat (the contract protocol's handler). */
  async onHeartbeat (bytes: Uint8Array, peer: PeerId): Promise<void> {
    const { metrics, events } = this.components
    try {
      const hb = decodeRecord(bytes, [HeartbeatType])
      const cid = hb.value.contract.cid.toString()
      await this.serial.run(this.byCcba.get(cid) ?? cid, async () => {
        const { c, parties } = await this.held(cid, peer)
        if (c.state === 'ended') throw new LifecycleError('LIFECYCLE_ENDED', 'this contract has ended')
        const now = nowSecs(this.components)
        const lastSeq = c.heartbeat !== undefined ? decodeRecord(c.heartbeat, [HeartbeatType]).value.seq : undefined
        checkHeartbeat(hb, parties, lastSeq, now)
        const resumed = c.state === 'unresponsive'
        const w = this.watched.get(c.id)
        const stored = await updateContract(this.components, 'requester', c.id, (fresh) => ({
          ...fresh,
          heartbeat: hb.bytes,
          lastHeartbeatUnixSecs: now,
          ...(fresh.validToUnixSecs === undefined && w?.validTo !== undefined ? { validToUnixSecs: w.validTo } : {}),
          ...(fresh.state === 'unresponsive' ? { state: 'ready' as const } : {})
        }))
        if (w !== undefined) {
          w.lastBeat = now
          w.periodSecs = hb.value.periodSecs
          if (resumed) w.state = 'ready'
          this.gauge()
        }
        if (resumed) metrics.contracts.inc({ role: 'requester', state: 'ready' })
        events.publish('contract', { id: c.id, role: 'requester', state: stored?.state ?? c.state, heartbeat: { seq: hb.value.seq, atUnixSecs: hb.value.atUnixSecs } })
      })
      metrics.heartbeats.inc({ direction: 'received', outcome: 'ok' })
    } catch (err) {
      metrics.heartbeats.inc({ direction: 'received', outcome: err instanceof CmeshError ? err.code : 'INTERNAL' })
      throw err
    }
  }

  /** A provider's termination record, pushed (the contract protocol's handler). Idempotent. */
  async onTerminated (bytes: Uint8Array, peer: PeerId): Promise<void> {
    const t = decodeRecord(bytes, [TerminationType])
    const cid = t.value.contract.cid.toString()
    await this.serial.run(this.byCcba.get(cid) ?? cid, async () => {
      const { c, parties } = await this.held(cid, peer)
      if (c.termination !== undefined) return
      checkTermination(t, parties, 'provider', nowSecs(this.components), { fresh: false })
      await this.recordEnd(c.id, t)
    })
  }

  /** A contract of either role (the requester's id is the RFP's CID, the provider's the accept's): state, last heartbeat, termination. */
  async show (id: string): Promise<Record<string, unknown> | undefined> {
    const c = await readContract(this.components, 'requester', id) ?? await readContract(this.components, 'provider', id)
    return c === undefined ? undefined : contractView(c)
  }

  /** Asks the provider to end contract `id` (the RFP's id); returns the provider's termination record, kept here. */
  async terminate (id: string, detail = 'ended at the requester\'s request'): Promise<SignedTermination> {
    const { identity } = this.components
    const c = await readContract(this.components, 'requester', id)
    if (c === undefined) throw new LifecycleError('LIFECYCLE_UNKNOWN_CONTRACT', `no contract ${id} as requester here`)
    if (c.termination !== undefined) return decodeRecord(c.termination, [TerminationType])
    const parties = storedParties(c)
    if (parties === undefined || (c.state !== 'ready' && c.state !== 'unresponsive')) throw new LifecycleError('LIFECYCLE_NOT_LIVE', `contract ${id} is ${c.state}, not live`)
    const request = signRecord(TerminationType, {
      contract: { uri: parties.ccba.uri, cid: parties.ccba.cid },
      by: identity.did,
      reason: 'REQUESTER',
      detail: detail.slice(0, MAX_TERMINATION_DETAIL_CHARS),
      atUnixSecs: nowSecs(this.components)
    }, identity)
    const answer = await this.client.requestTermination(peerIdFromString(peerIdFromDid(parties.provider)), request.bytes, { signal: this.signal })
    const t = decodeRecord(answer, [TerminationType])
    checkTermination(t, parties, 'provider', nowSecs(this.components), { fresh: false })
    return await this.serial.run(id, async () => {
      // The provider's push may have landed first: the record kept is the one the provider signed either way.
      const fresh = await readContract(this.components, 'requester', id)
      if (fresh?.termination !== undefined) return decodeRecord(fresh.termination, [TerminationType])
      await this.recordEnd(id, t)
      return t
    })
  }

  private async recordEnd (id: string, t: SignedTermination): Promise<void> {
    const { metrics, events, log } = this.components
    const stored = await updateContract(this.components, 'requester', id, (c) => c.termination === undefined
      ? { ...c, state: 'ended', termination: t.bytes, error: { code: t.value.reason, detail: t.value.detail } }
      : undefined)
    this.unwatch(id)
    if (stored === undefined) return
    metrics.terminations.inc({ reason: t.value.reason, by: t.value.reason === 'REQUESTER' ? 'requester' : 'provider' })
    metrics.contracts.inc({ role: 'requester', state: 'ended' })
    events.publish('contract', { id, role: 'requester', state: 'ended', error: stored.error })
    log.info(`contract ${id} ended: ${t.value.reason}: ${t.value.detail}`)
  }
}
