/**
 * A running cmesh node: key, store, libp2p, the gossip topics, sync, the role loops and the local
 * API, started and stopped in order. Roles are configuration; a node may play all of them.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ProviderCollection, type CollectionRecord } from '../market/collection.js'
import { RfpBook } from '../market/rfp-book.js'
import { signRecord } from '../market/record.js'
import { ProviderCardType, type SignedProviderCard } from '../market/provider-card.js'
import { CcrfpType, type Ccrfp, type SignedCcrfp } from '../market/ccrfp.js'
import type { Identity } from '../market/identity.js'
import { cardGossip } from '../protocols/card-gossip.js'
import { rfpGossip } from '../protocols/rfp-gossip.js'
import { SyncProtocol, type SyncResult } from '../protocols/sync.js'
import type { GossipTopic } from '../protocols/gossip-topic.js'
import { createMeshLibp2p, type MeshLibp2p } from './libp2p.js'
import { loadOrCreateKeyFile } from './key-store.js'
import { NodeStore } from './store.js'
import { ApiServer } from './api.js'
import { encodeSnapshot } from './collection-file.js'
import { cardFromDraft } from './card-draft.js'
import { DEFAULT_CARD_DRAFT, type NodeConfig } from './config.js'
import { createLogger, type Logger } from './logger.js'
import { NodeError } from './errors.js'
import { AttestProtocol } from '../protocols/attest.js'
import { EvidenceProtocol } from '../protocols/evidence.js'
import { ConfigfsTsmQuoteProvider, SimulatedQuoteProvider, type QuoteProvider } from '../attestation/quote-provider.js'
import { intelTrustAnchor, trustAnchorFromPem, type TrustAnchor } from '../attestation/trust-anchor.js'
import { parseCollateral } from '../attestation/collateral.js'
import { parseTdxQuote } from '../attestation/quote.js'
import { tcbPolicy } from '../attestation/policy.js'
import { cardEvidenceReportData, measurementManifestDigest, verifyCardEvidence, type VerifiedLevel } from '../attestation/card-evidence.js'
import { buildKey, readBuildResults } from './build-check.js'
import { peerIdFromDid, type Did } from '../market/identity.js'
import { bytesEqual, toHex } from '../market/bytes.js'
import { didFromPublicKey } from '../market/identity.js'
import type { CID } from '../market/cbor.js'

export const KEY_FILE = 'node.key'
const PRUNE_RETENTION_SECS = 24 * 3600
/** Collateral (CRLs, TCB Info) has a validity window: the card's evidence is renewed daily at its next refresh. */
const OWN_EVIDENCE_RENEW_SECS = 24 * 3600
/** Evidence is fetched again at most this often per provider (collateral and CRLs change daily at most). */
const EVIDENCE_RECHECK_SECS = 3600

export interface CmeshNodeInit {
  config: NodeConfig
  /** Wall clock in ms; tests move it. */
  now?: () => number
  log?: Logger
  /** Serve the local HTTP API (default true). In-process test meshes turn it off. */
  api?: boolean
}

export class CmeshNode {
  readonly config: NodeConfig
  readonly collection = new ProviderCollection()
  readonly rfps = new RfpBook()
  private readonly now: () => number
  private readonly log: Logger
  private readonly dataDir: string
  private readonly timers: NodeJS.Timeout[] = []
  private readonly syncing = new Set<string>()
  private node: MeshLibp2p | undefined
  private me: Identity | undefined
  private store: NodeStore | undefined
  private api: ApiServer | undefined
  private cardTopic: ReturnType<typeof cardGossip> | undefined
  private rfpTopic: ReturnType<typeof rfpGossip> | undefined
  private sync: SyncProtocol | undefined
  private ownCard: SignedProviderCard | undefined
  /** Whether the last publish of our card reached anyone; if not, the first mesh peer triggers a republish. */
  private ownCardDelivered = false
  private readonly withApi: boolean
  /** The last sync result per peer (for status and tests). */
  readonly syncResults = new Map<string, SyncResult>()
  /** The level each provider's evidence proves, as this node last checked it. */
  readonly verified = new Map<string, VerifiedLevel>()
  private attestProtocol: AttestProtocol | undefined
  private evidence: EvidenceProtocol | undefined
  private quoteProvider: QuoteProvider | undefined
  private anchor: TrustAnchor | undefined
  /** Own-card evidence: the quote binds the DID and digest, which do not change; collateral ages, so it is renewed daily. */
  private ownEvidence: { digest: Uint8Array, quote: CID, collateral: CID, at: number } | undefined
  private verifyQueue: Promise<void> = Promise.resolve()
  private readonly pendingVerify = new Map<string, { card: SignedProviderCard, force: boolean }>()
  private stopping = false
  /** Which evidence each provider's verdict rests on, so a republished card with the same pointers costs nothing. */
  private readonly verifiedEvidence = new Map<string, { key: string, at: number, result: VerifiedLevel }>()

  constructor (init: CmeshNodeInit) {
    this.config = init.config
    this.now = init.now ?? Date.now
    this.log = init.log ?? createLogger('cmesh')
    this.dataDir = resolve(init.config.dataDir)
    this.withApi = init.api ?? true
  }

  get libp2p (): MeshLibp2p {
    if (this.node === undefined) throw new Error('node not started')
    return this.node
  }

  get identity (): Identity {
    if (this.me === undefined) throw new Error('node not started')
    return this.me
  }

  get cards (): GossipTopic<any> {
    if (this.cardTopic === undefined) throw new Error('node not started')
    return this.cardTopic
  }

  get rfpTopicHandle (): GossipTopic<any> {
    if (this.rfpTopic === undefined) throw new Error('node not started')
    return this.rfpTopic
  }

  get attest (): AttestProtocol {
    if (this.attestProtocol === undefined) throw new Error('node not started')
    return this.attestProtocol
  }

  get apiUrl (): string | undefined {
    return this.api?.url
  }

  private nowSecs (): number {
    return Math.floor(this.now() / 1000)
  }

  async start (): Promise<void> {
    const c = this.config
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 })
    const key = await loadOrCreateKeyFile(join(this.dataDir, KEY_FILE))
    this.me = key.identity
    if (key.created) this.log.info(`created node key ${join(this.dataDir, KEY_FILE)} (mode 0600)`)

    this.store = new NodeStore(join(this.dataDir, 'db'))
    await this.store.open()
    const loaded = await this.store.loadRecords()
    for (const record of loaded.records) this.collection.apply(record, this.nowSecs())
    if (loaded.corrupt > 0) this.log.warn(`${loaded.corrupt} stored records failed verification and were skipped`)
    this.log.info(`collection: ${this.collection.size} records loaded from ${join(this.dataDir, 'db')}`)

    this.node = await createMeshLibp2p({
      privateKey: key.privateKey,
      network: c.network,
      listen: c.listen,
      announce: c.announce,
      bootstrap: c.bootstrap,
      heartbeatMs: c.gossipHeartbeatMs,
      ipColocationWhitelist: c.ipColocationWhitelist,
      dht: c.dht
    })
    const persist = (record: CollectionRecord): void => {
      this.store?.putRecord(record).catch((err) => this.log.error(`store: ${(err as Error).message}`))
    }
    const gossipLog = this.log.forComponent('gossip')
    this.cardTopic = cardGossip(this.node.services.pubsub, { network: c.network, collection: this.collection, now: this.now, onAdmitted: persist, log: gossipLog.debug })
    this.rfpTopic = rfpGossip(this.node.services.pubsub, { network: c.network, book: this.rfps, now: this.now, log: gossipLog.debug })
    this.sync = new SyncProtocol(this.node, { network: c.network, collection: this.collection, now: this.now, onAdmitted: persist, log: this.log.forComponent('sync').debug })
    this.cardTopic.start()
    this.rfpTopic.start()
    await this.sync.start()
    // Listen before anything slow: bootstrap may connect while attestation is still being set up.
    this.node.addEventListener('peer:connect', (evt) => { this.syncWith(evt.detail) })
    await this.startAttestation()
    // Peers that connected before the listener existed get their on-connect sync now.
    for (const peer of this.node.getPeers()) this.syncWith(peer)
    this.collection.subscribe((change) => {
      // The old verdict belonged to the old card: until the new one is checked, show nothing.
      if (change.kind !== 'added') this.verified.delete(change.providerId)
      if (change.card !== undefined) this.scheduleVerify(change.card)
    })
    for (const card of this.collection.cards(this.nowSecs())) this.scheduleVerify(card)

    // A card published while we had no mesh peers reached nobody, and gossip never replays: when
    // the first peer grafts us on the cards topic, announce ourselves again. Once per run: after
    // that, periodic sync carries any card a later isolation kept from spreading.
    this.node.services.pubsub.addEventListener('gossipsub:graft', (evt) => {
      if (evt.detail.topic !== this.cardTopic?.topic || this.ownCard === undefined || this.ownCardDelivered) return
      this.ownCardDelivered = true
      this.publishOwnCard().catch((err) => this.log.warn(`card republish failed: ${(err as Error).message}`))
    })
    this.every(10, () => {
      for (const change of this.collection.expire(this.nowSecs())) this.log.info(`card of ${change.providerId} expired`)
      // Ended slots are kept a day (so older copies cannot resurface), then forgotten.
      const pruned = this.collection.prune(this.nowSecs(), PRUNE_RETENTION_SECS)
      if (pruned > 0) this.log.debug(`pruned ${pruned} ended provider slots`)
      this.rfps.close(this.nowSecs())
    })
    this.every(c.syncIntervalSecs, () => {
      const peers = this.node?.getPeers() ?? []
      const peer = peers[Math.floor(Math.random() * peers.length)]
      if (peer !== undefined) this.syncWith(peer)
    })
    if (c.bootstrap.length > 0) this.every(c.redialIntervalSecs, () => { void this.redialBootstrap() })

    if (c.roles.includes('provider')) {
      await this.publishOwnCard()
      // Refresh well before expiry so a card never lapses between refreshes.
      this.every(Math.min(c.cardRefreshSecs, Math.floor(c.cardTtlSecs / 2)), () => {
        this.publishOwnCard().catch((err) => this.log.error(`card refresh failed: ${(err as Error).message}`))
      })
    }

    if (this.withApi) {
      this.api = new ApiServer({ host: c.apiHost, port: c.apiPort, dataDir: this.dataDir, routes: this.apiRoutes() })
      await this.api.start()
    }
  }

  async stop (): Promise<void> {
    this.stopping = true
    this.pendingVerify.clear()
    for (const t of this.timers.splice(0)) clearInterval(t)
    await this.api?.stop()
    await this.attestProtocol?.stop().catch(() => {})
    await this.evidence?.stop().catch(() => {})
    await this.verifyQueue.catch(() => {})
    this.cardTopic?.stop()
    this.rfpTopic?.stop()
    await this.sync?.stop().catch(() => {})
    await this.node?.stop()
    await this.store?.close()
  }

  /** Signs this node's card (config draft, current addresses, fresh times), stores and gossips it. */
  async publishOwnCard (): Promise<SignedProviderCard> {
    const c = this.config
    const evidence = await this.ownCardEvidence()
    const base = c.card ?? DEFAULT_CARD_DRAFT
    const draft = {
      ...base,
      ttlSecs: c.cardTtlSecs,
      listenAddrs: this.libp2p.getMultiaddrs().map(String).slice(0, 16),
      // With a quote provider the card claims what the attest protocol offers, unless the operator says otherwise.
      ...(evidence !== undefined
        ? { attestationLevel: c.card?.attestationLevel ?? this.attest.offer, attestationDigest: toHex(evidence.digest), evidence: { quote: evidence.quote.toString(), collateral: evidence.collateral.toString() } }
        : {})
    }
    let now = this.nowSecs()
    // Our last card (from this run or, after a restart, from the store) must lose to the new one,
    // even if the clock has not moved on or stepped back.
    const held = this.collection.record(this.identity.did)
    const heldTime = held === undefined ? -1 : 'committedAtUnixSecs' in held.value ? held.value.committedAtUnixSecs : held.value.retiredAtUnixSecs
    if (now <= heldTime) now = heldTime + 1
    const card = signRecord(ProviderCardType, cardFromDraft({ ...draft, committedAtUnixSecs: now }, this.identity, now), this.identity)
    this.collection.apply(card, this.nowSecs())
    await this.store?.putRecord(card)
    this.ownCard = card
    const recipients = await this.cards.publish(card.bytes)
    this.ownCardDelivered ||= recipients > 0
    this.log.debug(`published own card ${card.cid.toString()} to ${recipients} peers`)
    return card
  }

  private async startAttestation (): Promise<void> {
    const a = this.config.attest
    if (a.production && a.provider === 'simulated') throw new NodeError('CONFIG_INVALID', 'production mode cannot run the simulated quote provider (attest.provider: "configfs-tsm" or "none")')
    if (a.provider === 'simulated') {
      this.quoteProvider = await SimulatedQuoteProvider.create()
    } else if (a.provider === 'configfs-tsm') {
      if (a.collateralFile === undefined) throw new NodeError('CONFIG_INVALID', 'attest.provider "configfs-tsm" needs attest.collateralFile (collateral for this TD\'s quotes)')
      this.quoteProvider = new ConfigfsTsmQuoteProvider({ collateral: parseCollateral(await readFile(a.collateralFile, 'utf8')) })
    }
    if (a.rootPem !== undefined) this.anchor = trustAnchorFromPem(await readFile(a.rootPem, 'utf8'), { production: a.production })
    else if (this.quoteProvider instanceof SimulatedQuoteProvider) this.anchor = this.quoteProvider.trustAnchor
    else this.anchor = intelTrustAnchor()
    if (this.anchor.simulated) this.log.warn(`attestation runs under a TEST-ONLY root (${this.anchor.subject}): every TDX result is simulated, not production evidence`)
    this.evidence = new EvidenceProtocol(this.libp2p, this.config.network)
    await this.evidence.start()
    this.attestProtocol = new AttestProtocol(this.libp2p, {
      network: this.config.network,
      identity: this.identity,
      anchor: this.anchor,
      require: a.require,
      manifest: (await this.ownCardEvidence())?.digest ?? new Uint8Array(32),
      policy: tcbPolicy({ allowSwHardeningNeeded: a.allowSwHardeningNeeded }),
      now: this.now,
      ...(this.quoteProvider !== undefined ? { quoteProvider: this.quoteProvider } : {}),
      log: this.log.forComponent('attest').debug,
      // A new bond may lift that provider's verified level.
      onBond: (bond) => {
        const key = peerIdFromString(bond.peer).publicKey?.raw
        if (key !== undefined) this.reverify(didFromPublicKey(key))
      }
    })
    await this.attestProtocol.start()
  }

  /** Quote + collateral bound to this node's DID and measurement digest, served by the evidence protocol. */
  private async ownCardEvidence (): Promise<{ digest: Uint8Array, quote: CID, collateral: CID } | undefined> {
    if (this.quoteProvider === undefined || this.evidence === undefined) return undefined
    if (this.ownEvidence !== undefined && this.nowSecs() - this.ownEvidence.at < OWN_EVIDENCE_RENEW_SECS) return this.ownEvidence
    // The measurements are the TD's own; a first quote reads them, the second binds the card to them.
    const digest = measurementManifestDigest(parseTdxQuote(await this.quoteProvider.quote(new Uint8Array(64))).body)
    const quote = await this.quoteProvider.quote(cardEvidenceReportData(this.identity.did, digest))
    const collateral = new TextEncoder().encode(JSON.stringify(await this.quoteProvider.collateral()))
    this.ownEvidence = { digest, quote: this.evidence.put(quote, { pin: true }), collateral: this.evidence.put(collateral, { pin: true }), at: this.nowSecs() }
    this.announce(this.ownEvidence.quote)
    this.announce(this.ownEvidence.collateral)
    return this.ownEvidence
  }

  /**
   * Checks a card's evidence in the background, one provider at a time, and records its verified
   * level. Only the newest pending card per provider is checked: a provider republishing faster
   * than its evidence can be fetched costs one check, not a growing queue.
   */
  private scheduleVerify (card: SignedProviderCard, { force = false } = {}): void {
    const providerId = card.value.providerId
    const queued = this.pendingVerify.has(providerId)
    this.pendingVerify.set(providerId, { card, force: force || (this.pendingVerify.get(providerId)?.force ?? false) })
    if (queued) return
    this.verifyQueue = this.verifyQueue.then(async () => {
      const pending = this.pendingVerify.get(providerId)
      this.pendingVerify.delete(providerId)
      if (pending === undefined || this.stopping) return
      await this.verifyCard(pending.card, pending.force)
    }).catch((err) => this.log.warn(`verifying a card failed: ${(err as Error).message}`))
  }

  private async verifyCard (card: SignedProviderCard, force: boolean): Promise<void> {
    if (this.anchor === undefined || this.node === undefined) return
    const v = card.value
    if (v.evidence === undefined) {
      // Nothing to fetch or verify: the signature is all there is.
      this.verifiedEvidence.delete(v.providerId)
      this.verified.set(v.providerId, await verifyCardEvidence(v, undefined, { anchor: this.anchor, atUnixSecs: this.nowSecs() }))
      return
    }
    // A republished card usually points at the same evidence: reuse that verdict unless asked to look again.
    const evidenceKey = `${v.evidence.quote.toString()}/${v.evidence.collateral.toString()}/${toHex(v.attestationDigest)}/${v.attestationLevel}/${v.buildRecipe !== undefined ? buildKey(v.buildRecipe, v.attestationDigest) : ''}`
    const previous = this.verifiedEvidence.get(v.providerId)
    const fresh = !force && previous?.key === evidenceKey && this.nowSecs() - previous.at < EVIDENCE_RECHECK_SECS
    // Same evidence, same claim, checked recently: the verdict stands (republishes are frequent, quotes cost ~30 ms).
    if (fresh && previous !== undefined) {
      this.verified.set(v.providerId, { ...previous.result, checkedAtUnixSecs: this.nowSecs() })
      return
    }
    let evidence
    const peer = peerIdFromString(peerIdFromDid(v.providerId))
    try {
      if (v.providerId !== this.identity.did && this.node.getConnections(peer).length === 0 && v.listenAddrs.length > 0) {
        await this.node.peerStore.merge(peer, { multiaddrs: v.listenAddrs.map((a) => multiaddr(a)) })
      }
      const fetch = async (cid: CID) => v.providerId === this.identity.did ? await this.evidence!.fetchLocal(cid) : await this.fetchEvidence(peer, cid)
      evidence = { quote: await fetch(v.evidence.quote), collateral: await fetch(v.evidence.collateral) }
    } catch (err) {
      this.log.debug(`evidence of ${v.providerId} unavailable: ${(err as Error).message}`)
    }
    const bonds = this.node.getConnections(peer).map((conn) => this.attestProtocol?.bondFor(conn))
    const builds = v.buildRecipe !== undefined ? await readBuildResults(this.dataDir) : new Map()
    const result = await verifyCardEvidence(v, evidence, {
      anchor: this.anchor,
      atUnixSecs: this.nowSecs(),
      policy: tcbPolicy({ allowSwHardeningNeeded: this.config.attest.allowSwHardeningNeeded }),
      extras: {
        // The bond must be with the image this card declares, not merely with this provider.
        bidirectionalBond: bonds.some((b) => b?.bidirectional === true && bytesEqual(b.manifest, v.attestationDigest)),
        reproducibleBuild: v.buildRecipe !== undefined && builds.get(buildKey(v.buildRecipe, v.attestationDigest))?.match === true
      }
    })
    this.verified.set(v.providerId, result)
    if (evidence !== undefined) {
      this.verifiedEvidence.set(v.providerId, { key: evidenceKey, at: this.nowSecs(), result })
      if (result.level !== 'Software' && v.providerId !== this.identity.did) {
        // Evidence that checked out is worth keeping available: serve it, and say so on the DHT.
        this.announce(this.evidence!.put(evidence.quote))
        this.announce(this.evidence!.put(evidence.collateral))
      }
    }
    if (result.level !== result.claimed) this.log.info(`provider ${v.providerId} claims ${result.claimed}, evidence proves ${result.level}${result.code !== undefined ? ` (${result.code})` : ''}`)
  }

  /** Tells the DHT this node holds `cid` (content routing), in the background; failures only log. */
  private announce (cid: CID): void {
    const routing = this.node?.contentRouting
    if (this.config.dht !== true || routing === undefined || this.stopping) return
    routing.provide(cid, { signal: AbortSignal.timeout(30_000) })
      .catch((err) => this.log.debug(`DHT provide ${cid.toString()} failed: ${(err as Error).message}`))
  }

  /** A blob from the provider, or, when it cannot be reached, from any node the DHT says holds it. */
  private async fetchEvidence (provider: PeerId, cid: CID): Promise<Uint8Array> {
    try {
      return await this.evidence!.fetch(provider, cid)
    } catch (first) {
      if (this.config.dht !== true || this.node === undefined) throw first
      for await (const holder of this.node.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(10_000) })) {
        if (holder.id.equals(this.node.peerId) || holder.id.equals(provider)) continue
        try {
          if (holder.multiaddrs.length > 0) await this.node.peerStore.merge(holder.id, { multiaddrs: holder.multiaddrs })
          return await this.evidence!.fetch(holder.id, cid)
        } catch (err) {
          this.log.debug(`evidence ${cid.toString()} from ${holder.id.toString()} failed: ${(err as Error).message}`)
        }
      }
      throw first
    }
  }

  /** Re-checks every shown card (after a bond forms or a build check is recorded). */
  reverify (providerId?: Did): void {
    for (const card of this.collection.cards(this.nowSecs())) if (providerId === undefined || card.value.providerId === providerId) this.scheduleVerify(card, { force: true })
  }

  /** Waits until every scheduled evidence check has finished (tests, shutdown). */
  async verificationsSettled (): Promise<void> {
    let current
    do {
      current = this.verifyQueue
      await current
    } while (current !== this.verifyQueue)
  }

  /** Requester: signs an RFP (requester and time filled in), keeps it in the book and gossips it. */
  async publishRfp (fields: Omit<Ccrfp, 'requester' | 'createdAtUnixSecs'>): Promise<SignedCcrfp> {
    const rfp = signRecord(CcrfpType, { ...fields, requester: this.identity.did, createdAtUnixSecs: this.nowSecs() }, this.identity)
    this.rfps.add(rfp, this.nowSecs())
    await this.rfpTopicHandle.publish(rfp.bytes)
    return rfp
  }

  /** Runs one sync session with `peer` unless one is already running. */
  syncWith (peer: PeerId): void {
    const id = peer.toString()
    if (this.syncing.has(id) || this.sync === undefined) return
    this.syncing.add(id)
    this.sync.pull(peer)
      .then((r) => {
        this.syncResults.set(id, r)
        if (r.admitted > 0 || r.invalid > 0) this.log.info(`sync with ${id}: ${r.admitted} admitted, ${r.invalid} invalid, ${r.ms.toFixed(0)} ms`)
      })
      .catch((err) => this.log.debug(`sync with ${id} failed: ${(err as Error).message}`))
      .finally(() => this.syncing.delete(id))
  }

  private async redialBootstrap (): Promise<void> {
    if (this.node === undefined || this.node.getConnections().length > 0) return
    for (const addr of this.config.bootstrap) {
      try {
        await this.node.dial(multiaddr(addr), { signal: AbortSignal.timeout(5000) })
      } catch (err) {
        this.log.debug(`bootstrap dial ${addr} failed: ${(err as Error).message}`)
      }
    }
  }

  private every (secs: number, fn: () => void): void {
    const t = setInterval(fn, secs * 1000)
    t.unref()
    this.timers.push(t)
  }

  status (): Record<string, unknown> {
    const now = this.nowSecs()
    return {
      peerId: this.libp2p.peerId.toString(),
      did: this.identity.did,
      network: this.config.network,
      roles: this.config.roles,
      listen: this.libp2p.getMultiaddrs().map(String),
      peers: this.libp2p.getPeers().length,
      collection: { held: this.collection.size, shown: this.collection.cards(now).length },
      rfps: { open: this.rfps.list(now).length },
      attest: {
        provider: this.config.attest.provider,
        require: this.config.attest.require,
        offer: this.attestProtocol?.offer,
        root: this.anchor?.sha256,
        simulated: this.anchor?.simulated
      },
      gossip: { cards: this.cards.stats, rfps: this.rfpTopicHandle.stats }
    }
  }

  private apiRoutes () {
    return {
      '/v1/status': () => ({ type: 'json' as const, body: this.status() }),
      '/v1/collection': () => ({ type: 'cbor' as const, body: encodeSnapshot(this.collection.records()) }),
      '/v1/rfps': () => ({ type: 'cbor' as const, body: encodeSnapshot(this.rfps.list(this.nowSecs())) }),
      '/v1/verified': () => ({ type: 'json' as const, body: Object.fromEntries(this.verified) })
    }
  }
}
