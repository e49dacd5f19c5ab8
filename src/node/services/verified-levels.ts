/**
 * The level each provider's evidence proves, as this node checks it (never the level claimed):
 * a card without evidence is judged at once; every other shown card is verified in a bounded
 * queue — the newest card per provider, a few at once,
 * each with a deadline and the shutdown signal — so a provider whose evidence cannot be reached
 * holds one slot for a while and never the cards behind it. A verdict is reused while the card
 * points at the same evidence, and dropped when the bond it counted ends or a new reproducible-build
 * result is recorded. Evidence that verified is served on, and announced on the DHT by a few of
 * the nodes holding it (evidence-announcers.ts).
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Connection, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { levelWithoutEvidence, verifyCardEvidence, type CardEvidence, type VerifiedLevel } from '../../attestation/card-evidence.js'
import { tcbPolicy } from '../../attestation/policy.js'
import type { SignedProviderCard } from '../../market/provider-card.js'
import { didFromPublicKey, peerIdFromDid, type Did } from '../../market/identity.js'
import { meets } from '../../market/ladder.js'
import { bytesEqual, toHex } from '../../market/bytes.js'
import { BUILDS_FILE, buildKey, readBuildResults } from '../build-check.js'
import { KeyedQueue } from '../keyed-queue.js'
import { announcesEvidence } from '../evidence-announcers.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import type { AttestationService } from './attestation.js'
import type { Bonding } from './bonding.js'

export const VERIFY_CONCURRENCY = 8
/** Evidence retrieval (provider, then DHT holders) and verification of one card together. */
export const VERIFY_TIMEOUT_MS = 30_000
export const VERIFY_MAX_PENDING = 10_000
/** Evidence is fetched again at most this often per provider (collateral and CRLs change daily at most). */
export const EVIDENCE_RECHECK_SECS = 3600
/** How often `<data>/builds.json` is looked at for new `cmesh attest check-build` results. */
export const BUILDS_POLL_SECS = 10

interface Job { card: SignedProviderCard, force: boolean }
interface CachedVerdict { key: string, atUnixSecs: number, result: VerifiedLevel, usedBond: boolean }

export class VerifiedLevels implements Startable {
  /** The level each provider's evidence proves, as this node last checked it. */
  readonly levels = new Map<Did, VerifiedLevel>()
  private readonly cache = new Map<Did, CachedVerdict>()
  private readonly queue: KeyedQueue<Job>
  private unsubscribe: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private buildsSeenMs = -1
  private readonly onClose = (evt: CustomEvent<Connection>): void => {
    const key = evt.detail.remotePeer.publicKey?.raw
    if (key === undefined) return
    const providerId = didFromPublicKey(key)
    // The bond lived on that connection: the verdict that counted it no longer stands.
    if (this.cache.get(providerId)?.usedBond === true) this.reverify(providerId)
  }

  constructor (private readonly components: NodeComponents, private readonly attestation: AttestationService, private readonly bonding: Bonding) {
    const { shutdown, log, metrics } = components
    this.queue = new KeyedQueue<Job>({
      concurrency: VERIFY_CONCURRENCY,
      maxPending: VERIFY_MAX_PENDING,
      timeoutMs: VERIFY_TIMEOUT_MS,
      signal: shutdown,
      run: async (_key, job, signal) => { await this.verify(job, signal) },
      merge: (waiting, newer) => ({ card: newer.card, force: waiting.force || newer.force }),
      onError: (key, err) => log.warn(`verifying the card of ${key} failed: ${(err as Error).message}`),
      onDrop: () => metrics.verificationsDropped.inc()
    })
  }

  async start (): Promise<void> {
    const { collection, libp2p } = this.components
    this.unsubscribe = collection.subscribe((change) => {
      // The old verdict belonged to the old card: until the new one is checked, show nothing.
      if (change.kind !== 'added') this.levels.delete(change.providerId)
      if (change.card !== undefined) this.schedule(change.card)
      else this.cache.delete(change.providerId)
    })
    libp2p.addEventListener('connection:close', this.onClose)
    this.buildsSeenMs = await this.buildsModifiedMs()
    this.timer = every(BUILDS_POLL_SECS, () => { void this.checkBuilds() })
    for (const card of collection.cards(nowSecs(this.components))) this.schedule(card)
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.unsubscribe?.()
    this.components.libp2p.removeEventListener('connection:close', this.onClose)
    this.queue.clear()
    await this.settled()
  }

  schedule (card: SignedProviderCard, { force = false } = {}): void {
    const v = card.value
    // A card with no evidence and no recipe proves Software by its signature alone: nothing to
    // fetch or wait for, so it is judged now rather than queued (a joiner syncing 10k cards queued
    // 10k jobs, each with its own deadline timer, and past VERIFY_MAX_PENDING dropped some).
    if (v.evidence === undefined && v.buildRecipe === undefined) {
      this.judgeWithoutEvidence(card)
      return
    }
    this.queue.add(v.providerId, { card, force })
  }

  /** What verify() would conclude for a card with no evidence and no recipe, without its awaits. */
  private judgeWithoutEvidence (card: SignedProviderCard): void {
    const v = card.value
    const now = nowSecs(this.components)
    const result = levelWithoutEvidence(v, now)
    this.record(card, result)
    this.cache.set(v.providerId, { key: 'none', atUnixSecs: now, result, usedBond: false })
    if (result.level !== result.claimed) this.components.log.info(`provider ${v.providerId} claims ${result.claimed}, evidence proves ${result.level}`)
    this.components.events.publish('verified', { providerId: v.providerId, level: result.level, claimed: result.claimed, simulated: result.simulated })
  }

  /** Checks shown cards again, ignoring cached verdicts (a bond formed or ended, a build was checked). */
  reverify (providerId?: Did): void {
    const now = nowSecs(this.components)
    if (providerId !== undefined) {
      const card = this.components.collection.get(providerId, now)
      if (card !== undefined) this.schedule(card, { force: true })
      return
    }
    for (const card of this.components.collection.cards(now)) this.schedule(card, { force: true })
  }

  /** Resolves once every scheduled check has finished (tests, shutdown). */
  async settled (): Promise<void> {
    await this.queue.settled()
  }

  /** Queue depth for metrics and status. */
  get queued (): { pending: number, running: number } {
    return { pending: this.queue.pendingCount, running: this.queue.runningCount }
  }

  private async verify ({ card, force }: Job, signal: AbortSignal): Promise<void> {
    const { identity, libp2p, config, metrics, log, dataDir, events } = this.components
    const { anchor } = this.attestation.setup
    const v = card.value
    const now = nowSecs(this.components)
    const key = v.evidence === undefined
      ? 'none'
      : `${v.evidence.quote.toString()}/${v.evidence.collateral.toString()}/${toHex(v.attestationDigest)}/${v.attestationLevel}/${v.buildRecipe !== undefined ? buildKey(v.buildRecipe, v.attestationDigest) : ''}`
    const previous = this.cache.get(v.providerId)
    // Same evidence, same claim, checked recently: the verdict stands (republishes are frequent, quotes cost ~30 ms).
    if (!force && previous?.key === key && now - previous.atUnixSecs < EVIDENCE_RECHECK_SECS) {
      this.record(card, { ...previous.result, checkedAtUnixSecs: now })
      return
    }
    const peer = peerIdFromString(peerIdFromDid(v.providerId))
    let evidence: CardEvidence | undefined
    if (v.evidence !== undefined) {
      // The provider is reached through a connection or peer routing, never through the card's own
      // listenAddrs: those are the provider's say-so, and every auditor would dial them.
      try {
        const retrieve = async (cid: typeof v.evidence.quote): Promise<Uint8Array> => await this.attestation.evidence.retrieve(cid, { providers: [peer], signal })
        evidence = { quote: await retrieve(v.evidence.quote), collateral: await retrieve(v.evidence.collateral) }
      } catch (err) {
        log.debug(`evidence of ${v.providerId} unavailable: ${(err as Error).message}`)
      }
    }
    if (signal.aborted && this.components.shutdown.aborted) return
    // The bond must be with the image this card declares, not merely with this provider.
    const bonded = libp2p.getConnections(peer).some((conn) => {
      const bond = this.attestation.attest.bondFor(conn)
      return bond?.bidirectional === true && bytesEqual(bond.manifest, v.attestationDigest)
    })
    const builds = v.buildRecipe !== undefined ? await readBuildResults(dataDir) : new Map()
    const started = performance.now()
    const result = await verifyCardEvidence(v, evidence, {
      anchor,
      atUnixSecs: now,
      policy: tcbPolicy({ allowSwHardeningNeeded: config.attest.allowSwHardeningNeeded }),
      extras: {
        bidirectionalBond: bonded,
        reproducibleBuild: v.buildRecipe !== undefined && builds.get(buildKey(v.buildRecipe, v.attestationDigest))?.match === true
      }
    })
    if (v.evidence !== undefined) {
      metrics.quoteVerifications.inc({ source: 'card', code: result.code ?? 'OK' })
      metrics.quoteVerificationDuration.observe({ source: 'card' }, (performance.now() - started) / 1000)
    }
    this.record(card, result)
    if (evidence !== undefined || v.evidence === undefined) this.cache.set(v.providerId, { key, atUnixSecs: now, result, usedBond: bonded })
    if (evidence !== undefined && meets(result.level, 'TdxRemote') && v.providerId !== identity.did) {
      // Evidence that fully verified is worth keeping available: serve it, and (a few of the nodes
      // that hold it, evidence-announcers.ts) say so on the DHT. (A quote that merely parses,
      // TdxLocal, could be junk anyone made up: not ours to spread.)
      const quote = this.attestation.evidence.put(evidence.quote)
      const collateral = this.attestation.evidence.put(evidence.collateral)
      if (announcesEvidence(libp2p.peerId.toMultihash().bytes, quote.bytes, this.components.collection.size)) {
        this.attestation.evidence.announce(quote, this.components.shutdown)
        this.attestation.evidence.announce(collateral, this.components.shutdown)
      }
    }
    // The top rungs need a bond with the provider: ask for one; it re-triggers this check when formed.
    if (!bonded && evidence !== undefined && meets(v.attestationLevel, 'TdxRaTlsBidirectional') && meets(result.level, 'TdxRemote')) this.bonding.request(v.providerId)
    if (result.level !== result.claimed) log.info(`provider ${v.providerId} claims ${result.claimed}, evidence proves ${result.level}${result.code !== undefined ? ` (${result.code})` : ''}`)
    events.publish('verified', { providerId: v.providerId, level: result.level, claimed: result.claimed, simulated: result.simulated })
  }

  private record (card: SignedProviderCard, result: VerifiedLevel): void {
    // A newer card may have replaced this one while it was checked; its own check is queued.
    const shown = this.components.collection.get(card.value.providerId, nowSecs(this.components))
    if (shown !== undefined && shown.cid.equals(card.cid)) this.levels.set(card.value.providerId, result)
  }

  private async buildsModifiedMs (): Promise<number> {
    try {
      return (await stat(join(this.components.dataDir, BUILDS_FILE))).mtimeMs
    } catch {
      return -1
    }
  }

  /** A new `check-build` result may lift (or lower) any card with a recipe. */
  private async checkBuilds (): Promise<void> {
    const modified = await this.buildsModifiedMs()
    if (modified === this.buildsSeenMs) return
    this.buildsSeenMs = modified
    for (const card of this.components.collection.cards(nowSecs(this.components))) {
      if (card.value.buildRecipe !== undefined) this.schedule(card, { force: true })
    }
  }
}
