/**
 * Attestation in a running node: the attest protocol (bonds per connection) and the evidence
 * protocol (serving and retrieving quote and collateral blobs), set up from the node's
 * AttestationSetup. This node's measurement manifest digest is read from its own TD once, here.
 */
import type { Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { AttestProtocol } from '../../protocols/attest.js'
import { EvidenceProtocol } from '../../protocols/evidence.js'
import { measurementManifestDigest } from '../../attestation/card-evidence.js'
import { parseTdxQuote } from '../../attestation/quote.js'
import { tcbPolicy } from '../../attestation/policy.js'
import type { AttestationLevel } from '../../market/ladder.js'
import { didFromPublicKey, type Did } from '../../market/identity.js'
import type { NodeComponents } from '../components.js'
import type { AttestationSetup } from '../attestation-setup.js'

export interface AttestationServiceInit {
  /** A bond formed with this provider (either side initiated): its verified level may rise. */
  onBond?: (providerId: Did) => void
}

export class AttestationService implements Startable {
  readonly evidence: EvidenceProtocol
  private protocol: AttestProtocol | undefined
  /** This TD's measurement manifest digest (its card's attestationDigest); absent without a quote provider. */
  manifest: Uint8Array | undefined

  constructor (private readonly components: NodeComponents, readonly setup: AttestationSetup, private readonly init: AttestationServiceInit = {}) {
    const { libp2p, config, metrics, log } = components
    const dht = config.dht ? libp2p.services.dht : undefined
    this.evidence = new EvidenceProtocol(libp2p, {
      network: config.network,
      ...(dht !== undefined ? { contentRouting: libp2p.contentRouting } : {}),
      addAddresses: async (peer, info) => { await libp2p.peerStore.merge(peer, { multiaddrs: info.multiaddrs }) },
      onRetrieve: (outcome, source) => metrics.evidenceFetches.inc({ outcome, source }),
      log: log.forComponent('evidence').debug
    })
  }

  get attest (): AttestProtocol {
    if (this.protocol === undefined) throw new Error('attestation service not started')
    return this.protocol
  }

  /** The most this node proves in a bond (what its card claims unless the operator says otherwise). */
  get offer (): AttestationLevel {
    return this.attest.offer
  }

  async start (): Promise<void> {
    const { libp2p, config, identity, metrics, log, now } = this.components
    const { quoteProvider, anchor } = this.setup
    if (anchor.simulated) log.warn(`attestation runs under a TEST-ONLY root (${anchor.subject}): every TDX result is simulated, not production evidence`)
    // The measurements are the TD's own: any quote carries them.
    if (quoteProvider !== undefined) this.manifest = measurementManifestDigest(parseTdxQuote(await quoteProvider.quote(new Uint8Array(64))).body)
    this.protocol = new AttestProtocol(libp2p, {
      network: config.network,
      identity,
      anchor,
      require: config.attest.require,
      manifest: this.manifest ?? new Uint8Array(32),
      policy: tcbPolicy({ allowSwHardeningNeeded: config.attest.allowSwHardeningNeeded }),
      now,
      ...(quoteProvider !== undefined ? { quoteProvider } : {}),
      log: log.forComponent('attest').debug,
      onBond: (bond) => {
        const key = peerIdFromString(bond.peer).publicKey?.raw
        if (key !== undefined) this.init.onBond?.(didFromPublicKey(key))
      },
      onSession: (s) => {
        if (s.outcome !== 'ok') log.info(`attest (${s.role}) with ${s.peer} failed: ${s.error ?? s.outcome}`)
        metrics.attestSessions.inc({ role: s.role, outcome: s.outcome, level: s.level ?? 'none' })
        metrics.attestDuration.observe({ role: s.role }, s.seconds)
      },
      onQuoteVerified: (code, seconds) => {
        metrics.quoteVerifications.inc({ source: 'attest', code })
        metrics.quoteVerificationDuration.observe({ source: 'attest' }, seconds)
      }
    })
    await this.evidence.start()
    try {
      await this.protocol.start()
    } catch (err) {
      await this.evidence.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    await this.protocol?.stop()
    await this.evidence.stop()
  }
}
