/**
 * The provider's side of a contract after its receipt. For each live (`ready`) contract it sends
 * the requester a signed heartbeat with the machine's usage every period, and ends the contract:
 * at valid-to (`EXPIRED`), when the requester asks (`REQUESTER`), when the backend reports the
 * machine gone (`PROVIDER_FAULT`), or when another service asks (`terminate`). Ending means the
 * machine is terminated first, then a termination record with the final usage is signed, stored
 * (state `ended`) and delivered to the requester, again each period until it is accepted.
 *
 * It owns the contract protocol's handler; the requester's half of it is the watch service's.
 * Contracts come from the store at start and from the provider's `ready` event afterwards.
 */
import type { PeerId, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ContractProtocol, CONTRACT_TERMINATE_TIMEOUT_MS } from '../../protocols/contract.js'
import { errorText } from '../../protocols/error-text.js'
import { decodeRecord, signRecord } from '../../market/record.js'
import { HeartbeatType } from '../../market/heartbeat.js'
import { TerminationType, MAX_TERMINATION_DETAIL_CHARS, type SignedTermination, type TerminationReason } from '../../market/termination.js'
import { checkTermination, type ContractParties } from '../../market/lifecycle-checks.js'
import { LifecycleError } from '../../market/lifecycle-error.js'
import { peerIdFromDid, type Did } from '../../market/identity.js'
import { CmeshError } from '../../market/errors.js'
import type { Usage } from '../../market/usage.js'
import { CcbType } from '../../market/ccb.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { decodeContract, type StoredContract } from '../contract-state.js'
import { bidHeartbeatSecs, didOfPeer, PerKeySerial, readContract, storedParties, updateContract } from '../contract-store.js'
import type { FleetService } from './fleet.js'
import type { ContractWatch } from './contract-watch.js'

/** How often live contracts are looked at (heartbeats due, valid-to reached, deliveries due). */
export const LIFECYCLE_TICK_SECS = 1
/** Heartbeats and deliveries in flight at once, over all contracts. */
export const MAX_LIFECYCLE_SENDS = 16
/** A termination the requester has not accepted is sent again each period for this long (also after a restart). */
export const TERMINATION_RESEND_SECS = 3600
/** Ending a machine at the requester's request: what is left of the requester's budget for the answer. */
const TERMINATE_BUDGET_MS = CONTRACT_TERMINATE_TIMEOUT_MS - 15_000

interface Live {
  id: string
  parties: ContractParties
  backend: string
  validTo: number
  startedAt: number
  periodSecs: number
  memMiB: number
  seq: number
  nextBeatAt: number
  /** After a failed end (the backend would not terminate), not before this second. */
  retryEndAt: number
  lastCpuMillis?: number
  beating: boolean
  ending?: Promise<SignedTermination>
}

interface Delivery { id: string, requester: Did, record: Uint8Array, until: number, nextAt: number, periodSecs: number, sending: boolean }

function peerOf (did: Did): PeerId {
  return peerIdFromString(peerIdFromDid(did))
}

function codeOf (err: unknown): string {
  return err instanceof CmeshError ? err.code : 'INTERNAL'
}

export class ContractLifecycle implements Startable {
  readonly protocol: ContractProtocol
  private readonly live = new Map<string, Live>()
  /** CCBA CID → contract id (the provider's id is the CID of the accept it stored). */
  private readonly byCcba = new Map<string, string>()
  private readonly deliveries = new Map<string, Delivery>()
  private readonly serial = new PerKeySerial()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private stopping = new AbortController()
  private sends = 0

  constructor (private readonly components: NodeComponents, private readonly deps: { fleet: FleetService, watch: ContractWatch }) {
    const { config, libp2p, log } = components
    this.protocol = new ContractProtocol(libp2p, {
      network: config.network,
      now: components.now,
      log: log.forComponent('contract').debug,
      handlers: {
        onHeartbeat: async (bytes, peer) => { await deps.watch.onHeartbeat(bytes, peer) },
        onTerminated: async (bytes, peer) => { await deps.watch.onTerminated(bytes, peer) },
        onTerminate: async (bytes, peer) => await this.onTerminate(bytes, peer)
      }
    })
  }

  private get signal (): AbortSignal {
    return AbortSignal.any([this.components.shutdown, this.stopping.signal])
  }

  async start (): Promise<void> {
    const { store, events, log } = this.components
    this.stopping = new AbortController()
    const now = nowSecs(this.components)
    for (const [key, bytes] of await store.entries('contracts')) {
      if (!key.startsWith('provider/')) continue
      try {
        await this.recover(bytes, now)
      } catch (err) {
        log.warn(`contract ${key}: cannot follow its lifecycle: ${errorText(err)}`)
      }
    }
    this.unsubscribe = events.subscribe((event) => {
      const data = event.data as { id?: unknown, role?: unknown, state?: unknown }
      if (event.type !== 'contract' || data.role !== 'provider' || data.state !== 'ready' || typeof data.id !== 'string') return
      const id = data.id
      if (this.live.has(id)) return
      readContract(this.components, 'provider', id)
        .then((c) => { if (c?.state === 'ready') this.track(c) })
        .catch((err) => log.warn(`contract ${id}: cannot follow its lifecycle: ${errorText(err)}`))
    })
    await this.protocol.start()
    this.timer = every(LIFECYCLE_TICK_SECS, () => { this.tick() })
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.unsubscribe?.()
    this.stopping.abort()
    await this.protocol.stop()
    this.live.clear()
    this.deliveries.clear()
    this.byCcba.clear()
  }

  /** Ends a live contract for a reason of the provider's own (`PAYMENT_MISSING`, `PROVIDER_FAULT`, …); returns its termination record. */
  async terminate (id: string, reason: Exclude<TerminationReason, 'REQUESTER'>, detail: string): Promise<SignedTermination> {
    const c = await readContract(this.components, 'provider', id)
    if (c?.termination !== undefined) return decodeRecord(c.termination, [TerminationType])
    if (c === undefined || c.state !== 'ready') throw new LifecycleError('LIFECYCLE_NOT_LIVE', `contract ${id} is not live here`)
    return await this.end(this.live.get(id) ?? this.track(c), reason, detail)
  }

  /** A stored provider contract at start: follow it, or finish what a restart left undone. */
  private async recover (bytes: Uint8Array, now: number): Promise<void> {
    const c = decodeContract(bytes)
    if (c.state === 'ready') {
      this.track(c)
      return
    }
    if (c.state !== 'ended' || c.ccba === undefined || c.counterparty === undefined) return
    if (c.termination === undefined && c.error?.code === 'INSTANCE_ENDED') {
      // The provider service found this grant's machine gone with the last run of this node: say so, signed.
      const parties = storedParties(c)
      if (parties === undefined) return
      // Uptime up to the last heartbeat sent: the machine ran at least that long, and when it stopped is not known.
      const started = c.startedAtUnixSecs
      const record = this.sign(parties, 'PROVIDER_SHUTDOWN', 'the provider\'s node stopped, and the machine with it', now, started !== undefined ? { uptimeSecs: Math.max(0, (c.lastHeartbeatUnixSecs ?? started) - started) } : undefined)
      await updateContract(this.components, 'provider', c.id, (fresh) => fresh.termination === undefined ? { ...fresh, termination: record.bytes, error: { code: 'PROVIDER_SHUTDOWN', detail: record.value.detail } } : undefined)
      this.components.metrics.terminations.inc({ reason: 'PROVIDER_SHUTDOWN', by: 'provider' })
      this.deliver(c.id, c.counterparty, record.bytes, now, this.components.config.lifecycle.heartbeatSecs)
    } else if (c.termination !== undefined && c.updatedAtUnixSecs > now - TERMINATION_RESEND_SECS) {
      // Delivery is not recorded; the requester takes a repeat as a no-op.
      this.deliver(c.id, c.counterparty, c.termination, now, this.components.config.lifecycle.heartbeatSecs)
    }
  }

  /** Follows a ready contract (idempotent); throws when its stored records do not decode. */
  private track (c: StoredContract): Live {
    const known = this.live.get(c.id)
    if (known !== undefined) return known
    const parties = storedParties(c)
    if (parties === undefined || c.counterparty === undefined || c.ccb === undefined) throw new LifecycleError('LIFECYCLE_NOT_LIVE', `contract ${c.id} lacks its accept or bid`)
    const now = nowSecs(this.components)
    const periodSecs = bidHeartbeatSecs(c) ?? this.components.config.lifecycle.heartbeatSecs
    const live: Live = {
      id: c.id,
      parties,
      backend: c.backend ?? '',
      validTo: c.validToUnixSecs ?? now,
      startedAt: c.startedAtUnixSecs ?? c.updatedAtUnixSecs,
      periodSecs,
      memMiB: decodeRecord(c.ccb, [CcbType]).value.cmesh.memMiB,
      seq: c.heartbeat !== undefined ? decodeRecord(c.heartbeat, [HeartbeatType]).value.seq : 0,
      nextBeatAt: now + periodSecs,
      retryEndAt: 0,
      beating: false
    }
    this.live.set(c.id, live)
    this.byCcba.set(parties.ccba.cid.toString(), c.id)
    return live
  }

  private tick (): void {
    if (this.signal.aborted) return
    const { log } = this.components
    const now = nowSecs(this.components)
    for (const l of this.live.values()) {
      if (l.ending !== undefined) continue
      if (now >= l.validTo) {
        if (now >= l.retryEndAt) this.end(l, 'EXPIRED', 'valid-to reached').catch((err) => log.warn(`contract ${l.id}: could not end it at valid-to: ${errorText(err)}`))
        continue
      }
      if (!l.beating && now >= l.nextBeatAt && this.sends < MAX_LIFECYCLE_SENDS) void this.beat(l)
    }
    for (const d of this.deliveries.values()) {
      if (d.sending || now < d.nextAt || this.sends >= MAX_LIFECYCLE_SENDS) continue
      if (now > d.until) this.deliveries.delete(d.id)
      else void this.send(d)
    }
  }

  /**
   * What the machine used so far. Undefined backend figures are left out; memory falls back to the
   * bid's allocation. Throws BACKEND_UNKNOWN_INSTANCE when the backend says the machine is gone.
   */
  private async usageOf (l: Live, now: number): Promise<Usage> {
    let measured: { cpuMillis?: number, memMiB?: number } | undefined
    try {
      measured = await this.deps.fleet.fleet.usage(l.id)
    } catch (err) {
      if (err instanceof CmeshError && err.code === 'BACKEND_UNKNOWN_INSTANCE') throw err
      this.components.log.debug(`contract ${l.id}: usage unavailable: ${errorText(err)}`)
    }
    const cpuMillis = measured?.cpuMillis
    if (cpuMillis !== undefined && Number.isSafeInteger(cpuMillis) && cpuMillis >= 0) {
      const delta = cpuMillis - (l.lastCpuMillis ?? 0)
      if (delta > 0) this.components.metrics.usageCpuSeconds.inc({ backend: l.backend }, delta / 1000)
      l.lastCpuMillis = Math.max(l.lastCpuMillis ?? 0, cpuMillis)
    }
    const memMiB = measured?.memMiB ?? l.memMiB
    return {
      uptimeSecs: Math.max(0, now - l.startedAt),
      ...(cpuMillis !== undefined && Number.isSafeInteger(cpuMillis) && cpuMillis >= 0 ? { cpuMillis } : {}),
      ...(Number.isSafeInteger(memMiB) && memMiB >= 0 ? { memMiB } : {})
    }
  }

  private async beat (l: Live): Promise<void> {
    const { identity, metrics, log } = this.components
    l.beating = true
    this.sends++
    try {
      const now = nowSecs(this.components)
      let usage: Usage
      try {
        usage = await this.usageOf(l, now)
      } catch (err) {
        // The backend says the machine is gone before valid-to: the provider's fault, said so.
        if (l.ending === undefined) this.end(l, 'PROVIDER_FAULT', `the machine is gone: ${errorText(err)}`).catch((e) => log.warn(`contract ${l.id}: ${errorText(e)}`))
        return
      }
      const hb = signRecord(HeartbeatType, { contract: { uri: l.parties.ccba.uri, cid: l.parties.ccba.cid }, provider: identity.did, seq: l.seq + 1, atUnixSecs: now, periodSecs: l.periodSecs, usage }, identity)
      l.seq = hb.value.seq
      // Kept before it is sent, so a restart continues the sequence rather than repeating it.
      await this.serial.run(l.id, async () => await updateContract(this.components, 'provider', l.id, (c) => c.state === 'ready' ? { ...c, heartbeat: hb.bytes, lastHeartbeatUnixSecs: now } : undefined))
      await this.protocol.sendHeartbeat(peerOf(l.parties.requester), hb.bytes, { signal: this.signal })
      metrics.heartbeats.inc({ direction: 'sent', outcome: 'ok' })
    } catch (err) {
      // Counted and tried again next period; the requester judges a silence itself.
      metrics.heartbeats.inc({ direction: 'sent', outcome: codeOf(err) })
      log.debug(`contract ${l.id}: heartbeat not delivered: ${errorText(err)}`)
    } finally {
      l.beating = false
      this.sends--
      l.nextBeatAt = nowSecs(this.components) + l.periodSecs
    }
  }

  private sign (parties: ContractParties, reason: TerminationReason, detail: string, now: number, usage: Usage | undefined): SignedTermination {
    const { identity } = this.components
    return signRecord(TerminationType, {
      contract: { uri: parties.ccba.uri, cid: parties.ccba.cid },
      by: identity.did,
      reason,
      detail: detail.slice(0, MAX_TERMINATION_DETAIL_CHARS),
      atUnixSecs: now,
      ...(usage !== undefined ? { usage } : {})
    }, identity)
  }

  /**
   * Ends a live contract once, whoever asks and however often: the machine first (a backend that
   * will not terminate leaves the contract live, tried again a period later), then the record,
   * stored and delivered.
   */
  private async end (l: Live, reason: TerminationReason, detail: string): Promise<SignedTermination> {
    if (l.ending !== undefined) return await l.ending
    const { metrics, events, log } = this.components
    l.ending = (async () => {
      const final = await this.usageOf(l, nowSecs(this.components)).catch(() => undefined)
      await this.deps.fleet.fleet.terminate(l.id)
      const now = nowSecs(this.components)
      const record = this.sign(l.parties, reason, detail, now, final ?? { uptimeSecs: Math.max(0, now - l.startedAt), memMiB: l.memMiB })
      const stored = await this.serial.run(l.id, async () => await updateContract(this.components, 'provider', l.id, (c) =>
        c.termination === undefined ? { ...c, state: 'ended', termination: record.bytes, error: { code: reason, detail: record.value.detail } } : undefined))
      this.live.delete(l.id)
      if (stored === undefined) {
        // Someone ended it first (or it is gone from the store): theirs is the record.
        const c = await readContract(this.components, 'provider', l.id)
        if (c?.termination !== undefined) return decodeRecord(c.termination, [TerminationType])
        return record
      }
      metrics.terminations.inc({ reason, by: reason === 'REQUESTER' ? 'requester' : 'provider' })
      metrics.contracts.inc({ role: 'provider', state: 'ended' })
      events.publish('contract', { id: l.id, role: 'provider', state: 'ended', error: { code: reason, detail: record.value.detail } })
      log.info(`contract ${l.id} ended: ${reason}: ${record.value.detail}`)
      // The requester learns it now, or a period later, until it has it (its answer to a request may be lost).
      this.deliver(l.id, l.parties.requester, record.bytes, now, l.periodSecs)
      return record
    })()
    try {
      return await l.ending
    } catch (err) {
      l.ending = undefined
      l.retryEndAt = nowSecs(this.components) + l.periodSecs
      throw err
    }
  }

  private deliver (id: string, requester: Did, record: Uint8Array, now: number, periodSecs: number): void {
    const d: Delivery = { id, requester, record, until: now + TERMINATION_RESEND_SECS, nextAt: now, periodSecs, sending: false }
    this.deliveries.set(id, d)
    if (this.sends < MAX_LIFECYCLE_SENDS && !this.signal.aborted) void this.send(d)
  }

  private async send (d: Delivery): Promise<void> {
    d.sending = true
    this.sends++
    try {
      await this.protocol.sendTerminated(peerOf(d.requester), d.record, { signal: this.signal })
      this.deliveries.delete(d.id)
    } catch (err) {
      // A refusal is the requester's judgement of this very record: sending it again changes nothing.
      if (err instanceof LifecycleError && err.code === 'LIFECYCLE_REFUSED') {
        this.components.log.warn(`contract ${d.id}: the requester refused its termination record: ${errorText(err)}`)
        this.deliveries.delete(d.id)
      }
    } finally {
      d.sending = false
      this.sends--
      d.nextAt = nowSecs(this.components) + d.periodSecs
    }
  }

  /** The requester asks for the end: the machine ends now, and the answer is the provider's own record. */
  private async onTerminate (bytes: Uint8Array, peer: PeerId): Promise<Uint8Array> {
    const request = decodeRecord(bytes, [TerminationType])
    const cid = request.value.contract.cid.toString()
    const id = this.byCcba.get(cid) ?? cid
    const c = await readContract(this.components, 'provider', id)
    // Unknown and not-yours get one answer: a stranger learns nothing about this node's contracts.
    if (c === undefined || c.counterparty === undefined || c.counterparty !== didOfPeer(peer)) throw new LifecycleError('LIFECYCLE_UNKNOWN_CONTRACT', 'no such contract with this peer')
    const parties = storedParties(c)
    if (parties === undefined) throw new LifecycleError('LIFECYCLE_NOT_LIVE', 'this contract was never accepted here')
    checkTermination(request, parties, 'requester', nowSecs(this.components))
    if (c.termination !== undefined) return c.termination
    if (c.state !== 'ready') throw new LifecycleError('LIFECYCLE_NOT_LIVE', `this contract is ${c.state}`)
    const ending = this.end(this.live.get(id) ?? this.track(c), 'REQUESTER', request.value.detail !== '' ? request.value.detail : 'ended at the requester\'s request')
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new LifecycleError('LIFECYCLE_TERMINATE_FAILED', 'the machine is still being ended; ask again')) }, TERMINATE_BUDGET_MS)
      timer.unref()
    })
    try {
      return (await Promise.race([ending, late])).bytes
    } catch (err) {
      if (err instanceof LifecycleError) throw err
      throw new LifecycleError('LIFECYCLE_TERMINATE_FAILED', `the machine could not be ended: ${errorText(err)}`)
    } finally {
      clearTimeout(timer)
    }
  }
}
