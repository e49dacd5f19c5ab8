/**
 * A provider card's attestation evidence and the level it proves. A TDX provider publishes a quote
 * whose REPORTDATA binds its DID and its card's attestationDigest, and whose measurements hash to
 * that digest; the consumer climbs the ladder as far as the evidence carries it:
 *   Software   nothing beyond the card's signature
 *   TdxLocal   a quote bound to this card whose measurements match the declared digest (no chain)
 *   TdxRemote  plus full DCAP verification to the trust anchor
 *   TdxRaTlsBidirectional     plus a bidirectional attest bond with the provider
 *   TdxPlusReproducibleBuild  plus a build recipe whose rebuilt measurement matched
 * The verified level never exceeds the claim, and results under a test root are marked simulated.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js'
import { bytesEqual, concatBytes, lengthPrefixed, utf8 } from '../market/bytes.js'
import { encodeCanonical } from '../market/cbor.js'
import { minLevel, type AttestationLevel } from '../market/ladder.js'
import type { ProviderCard } from '../market/provider-card.js'
import { parseTdxQuote, type TdReportBody } from './quote.js'
import { parseCollateral } from './collateral.js'
import { verifyTdxQuote } from './tdx-verifier.js'
import type { TrustAnchor } from './trust-anchor.js'
import type { VerificationPolicy } from './policy.js'
import { AttestationError } from './errors.js'

const CARD_EVIDENCE_DOMAIN = utf8('cmesh/card-evidence/v1\0')

/** The measurements a card declares, hashed: sha256(dag-cbor({mrTd, rtmr: [4], mrConfigId})). */
export function measurementManifestDigest (body: Pick<TdReportBody, 'mrTd' | 'rtmr' | 'mrConfigId'>): Uint8Array {
  return sha256(encodeCanonical({ mrTd: body.mrTd, rtmr: [...body.rtmr], mrConfigId: body.mrConfigId }))
}

export function cardEvidenceReportData (providerId: string, attestationDigest: Uint8Array): Uint8Array {
  return sha512(concatBytes(CARD_EVIDENCE_DOMAIN, lengthPrefixed(utf8(providerId)), lengthPrefixed(attestationDigest)))
}

export interface CardEvidence {
  quote: Uint8Array
  /** Collateral JSON text. */
  collateral: Uint8Array
}

export interface VerifiedLevel {
  level: AttestationLevel
  claimed: AttestationLevel
  simulated: boolean
  /** Why the evidence stopped short of the claim, when it did. */
  code?: string
  reason?: string
  checkedAtUnixSecs: number
}

export interface LevelExtras {
  /** This node holds a bidirectional attest bond with the provider. */
  bidirectionalBond?: boolean
  /** A rebuild of the card's build recipe reproduced its measurement. */
  reproducibleBuild?: boolean
}

function verdict (card: ProviderCard, atUnixSecs: number, level: AttestationLevel, simulated: boolean, code?: string, reason?: string): VerifiedLevel {
  return {
    level: minLevel(level, card.attestationLevel),
    claimed: card.attestationLevel,
    simulated,
    ...(code !== undefined ? { code } : {}),
    ...(reason !== undefined ? { reason } : {}),
    checkedAtUnixSecs: atUnixSecs
  }
}

/**
 * The level of a card checked without evidence (it names none, or it could not be fetched): its
 * signature proves Software and no more, whatever it claims. Synchronous, so a joiner syncing
 * thousands of evidence-less cards judges each as it is applied.
 */
export function levelWithoutEvidence (card: ProviderCard, atUnixSecs: number): VerifiedLevel {
  return card.evidence === undefined
    ? verdict(card, atUnixSecs, 'Software', false)
    : verdict(card, atUnixSecs, 'Software', false, 'EVIDENCE_UNAVAILABLE', 'evidence could not be fetched')
}

export async function verifyCardEvidence (card: ProviderCard, evidence: CardEvidence | undefined, options: { anchor: TrustAnchor, atUnixSecs: number, policy?: VerificationPolicy, extras?: LevelExtras }): Promise<VerifiedLevel> {
  const out = (level: AttestationLevel, simulated: boolean, code?: string, reason?: string): VerifiedLevel => verdict(card, options.atUnixSecs, level, simulated, code, reason)
  if (evidence === undefined) return levelWithoutEvidence(card, options.atUnixSecs)
  let body: TdReportBody
  try {
    body = parseTdxQuote(evidence.quote).body
  } catch (err) {
    return out('Software', false, err instanceof AttestationError ? err.code : 'QUOTE_MALFORMED', (err as Error).message)
  }
  const reportData = cardEvidenceReportData(card.providerId, card.attestationDigest)
  if (!bytesEqual(body.reportData, reportData)) return out('Software', false, 'REPORT_DATA_MISMATCH', 'the quote is not bound to this provider and digest')
  if (!bytesEqual(measurementManifestDigest(body), card.attestationDigest)) return out('Software', false, 'MEASUREMENT_MISMATCH', 'the quoted measurements do not hash to the card\'s attestationDigest')
  let collateral
  try {
    collateral = parseCollateral(new TextDecoder().decode(evidence.collateral))
  } catch (err) {
    return out('TdxLocal', false, 'COLLATERAL_MALFORMED', (err as Error).message)
  }
  const r = await verifyTdxQuote(evidence.quote, collateral, { anchor: options.anchor, atUnixSecs: options.atUnixSecs, ...(options.policy !== undefined ? { policy: options.policy } : {}) })
  if (!r.accepted) return out('TdxLocal', r.simulated, r.code, r.reason)
  if (options.extras?.bidirectionalBond !== true) return out('TdxRemote', r.simulated)
  if (options.extras.reproducibleBuild !== true) return out('TdxRaTlsBidirectional', r.simulated)
  return out('TdxPlusReproducibleBuild', r.simulated)
}

