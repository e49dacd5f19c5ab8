/**
 * ProviderCard: what a provider offers, signed by its key. The seed's fields plus the compute
 * bridge's (backends, rates, evidence, addresses, expiry, successor). `cardDigest` is the record
 * digest: sha256 of the canonical encoding of every field but the signature.
 */
import { encodeCanonical, sha256Digest, type CID } from './cbor.js'
import { bytesEqual } from './bytes.js'
import { RecordError } from './errors.js'
import { ATTESTATION_LEVELS, meets, type AttestationLevel } from './ladder.js'
import type { Did } from './identity.js'
import type { RecordType, SignedRecord } from './record.js'
import { paymentTermsSchema, type PaymentTerms } from './payment.js'
import { bytes, cid, did, token, uint, unixSecs, wei, weiToString, z } from './schema.js'

export const PROVIDER_CARD_NSID = 'org.computemesh.provider.card'
export const MAX_CARD_BYTES = 16 * 1024
/** A card lives at most a week: providers refresh, and nobody keeps an unrefreshed card for long. */
export const MAX_CARD_TTL_SECS = 7 * 24 * 3600

export const BACKEND_KINDS = ['aws-ec2', 'gcp', 'azure', 'bare-metal', 'local'] as const
export type BackendKind = typeof BACKEND_KINDS[number]

export interface BackendCapability {
  /** Unique within the card; rates refer to it. */
  name: string
  kind: BackendKind
  regions: string[]
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  tdx: boolean
}

/** Price of one machine-hour on a backend (optionally one region), per resource unit. */
export interface Rate {
  backend: string
  region?: string
  cpuHourWei: bigint
  memoryGiBHourWei: bigint
  diskGiBHourWei: bigint
}

export interface EvidencePointer {
  /** CID of the raw quote blob. */
  quote: CID
  /** CID of the collateral (JSON) the quote verifies against. */
  collateral: CID
}

/**
 * How to rebuild this provider's image: in a checkout of `source`, `command` writes a measurement
 * manifest JSON ({mrTd, rtmr: [4], mrConfigId}, hex) to `manifest`, whose digest must equal the
 * card's attestationDigest (and so the quoted measurements).
 */
export interface BuildRecipe {
  source: string
  command: string
  manifest: string
}

export interface ProviderCard {
  providerId: Did
  schemesSupported: string[]
  /** Claimed level; consumers compute the verified one from evidence. */
  attestationLevel: AttestationLevel
  /** sha256 of the measurement manifest (TDX) or of the software identity. */
  attestationDigest: Uint8Array
  capacityPerSecond: number
  feePerPartialWei: bigint
  committedAtUnixSecs: number
  expiresAtUnixSecs: number
  backends: BackendCapability[]
  rates: Rate[]
  /** sha256 of the canonical encoding of `rates`; bids quote it so a price is pinned to a table. */
  rateTableDigest: Uint8Array
  evidence?: EvidencePointer
  listenAddrs: string[]
  successor?: Did
  buildRecipe?: BuildRecipe
  /** How bids are paid: x402 on this network, in this token, to this address. Absent: unsettled (wei). */
  payment?: PaymentTerms
}

const backendSchema = z.strictObject({
  name: token(32),
  kind: z.enum(BACKEND_KINDS),
  regions: z.array(token(48)).max(64),
  maxCpu: uint.max(4096),
  maxMemoryMiB: uint.max(64 * 1024 * 1024),
  maxDiskGiB: uint.max(1024 * 1024),
  tdx: z.boolean()
})

const rateSchema = z.strictObject({
  backend: token(32),
  region: token(48).optional(),
  cpuHourWei: wei,
  memoryGiBHourWei: wei,
  diskGiBHourWei: wei
})

const cardSchema = z.strictObject({
  providerId: did,
  schemesSupported: z.array(token(64)).min(1).max(32),
  attestationLevel: z.enum(ATTESTATION_LEVELS),
  attestationDigest: bytes(32),
  capacityPerSecond: uint,
  feePerPartialWei: wei,
  committedAtUnixSecs: unixSecs,
  expiresAtUnixSecs: unixSecs,
  backends: z.array(backendSchema).min(1).max(16),
  rates: z.array(rateSchema).max(64),
  rateTableDigest: bytes(32),
  evidence: z.strictObject({ quote: cid, collateral: cid }).optional(),
  listenAddrs: z.array(z.string().min(1).max(256)).max(16),
  successor: did.optional(),
  buildRecipe: z.strictObject({ source: z.string().min(1).max(512), command: z.string().min(1).max(1024), manifest: z.string().min(1).max(256) }).optional(),
  payment: paymentTermsSchema.optional()
}) satisfies z.ZodType<ProviderCard, any>

function ratesToWire (rates: Rate[]): Array<Record<string, unknown>> {
  return rates.map((r) => ({
    backend: r.backend,
    ...(r.region !== undefined ? { region: r.region } : {}),
    cpuHourWei: weiToString(r.cpuHourWei),
    memoryGiBHourWei: weiToString(r.memoryGiBHourWei),
    diskGiBHourWei: weiToString(r.diskGiBHourWei)
  }))
}

export function rateTableDigest (rates: Rate[]): Uint8Array {
  return sha256Digest(encodeCanonical(ratesToWire(rates)))
}

function unique (values: string[]): boolean {
  return new Set(values).size === values.length
}

function semantic (message: string, meta?: Record<string, unknown>): never {
  throw new RecordError('RECORD_SEMANTIC', `provider card: ${message}`, meta)
}

export const ProviderCardType: RecordType<ProviderCard> = {
  nsid: PROVIDER_CARD_NSID,
  maxBytes: MAX_CARD_BYTES,
  schema: cardSchema,
  toFields: (c) => ({
    providerId: c.providerId,
    schemesSupported: c.schemesSupported,
    attestationLevel: c.attestationLevel,
    attestationDigest: c.attestationDigest,
    capacityPerSecond: c.capacityPerSecond,
    feePerPartialWei: weiToString(c.feePerPartialWei),
    committedAtUnixSecs: c.committedAtUnixSecs,
    expiresAtUnixSecs: c.expiresAtUnixSecs,
    backends: c.backends.map((b) => ({ ...b })),
    rates: ratesToWire(c.rates),
    rateTableDigest: c.rateTableDigest,
    ...(c.evidence !== undefined ? { evidence: { quote: c.evidence.quote, collateral: c.evidence.collateral } } : {}),
    listenAddrs: c.listenAddrs,
    ...(c.successor !== undefined ? { successor: c.successor } : {}),
    ...(c.buildRecipe !== undefined ? { buildRecipe: { ...c.buildRecipe } } : {}),
    ...(c.payment !== undefined ? { payment: { network: c.payment.network, asset: c.payment.asset, payTo: c.payment.payTo } } : {})
  }),
  author: (c) => c.providerId,
  time: (c) => c.committedAtUnixSecs,
  check: (c) => {
    if (c.expiresAtUnixSecs <= c.committedAtUnixSecs) semantic('expires before it is committed')
    if (c.expiresAtUnixSecs - c.committedAtUnixSecs > MAX_CARD_TTL_SECS) semantic(`lives longer than ${MAX_CARD_TTL_SECS} s`)
    if (!unique(c.schemesSupported)) semantic('schemesSupported repeats a scheme')
    if (!unique(c.backends.map((b) => b.name))) semantic('backend names repeat')
    if (!unique(c.listenAddrs)) semantic('listenAddrs repeat')
    for (const b of c.backends) if (!unique(b.regions)) semantic(`backend ${b.name} repeats a region`)
    const names = new Set(c.backends.map((b) => b.name))
    for (const r of c.rates) if (!names.has(r.backend)) semantic(`rate names unknown backend ${r.backend}`)
    if (!unique(c.rates.map((r) => `${r.backend}\0${r.region ?? ''}`))) semantic('rate table repeats a backend/region')
    if (!bytesEqual(rateTableDigest(c.rates), c.rateTableDigest)) semantic('rateTableDigest does not match rates')
    if (c.successor === c.providerId) semantic('a provider cannot succeed itself')
  }
}

export type SignedProviderCard = SignedRecord<ProviderCard>

/** The card digest that orders LWW and marks republish events. */
export function cardDigest (card: SignedProviderCard): Uint8Array {
  return card.digest
}

export interface CapabilityUnion {
  regions: string[]
  tdxRegions: string[]
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  tdx: boolean
  backendKinds: BackendKind[]
}

/** What the provider can do across all its backends (no single machine need reach every max). */
export function capabilityUnion (card: ProviderCard): CapabilityUnion {
  const regions = new Set<string>()
  const tdxRegions = new Set<string>()
  const kinds = new Set<BackendKind>()
  let maxCpu = 0
  let maxMemoryMiB = 0
  let maxDiskGiB = 0
  for (const b of card.backends) {
    kinds.add(b.kind)
    for (const r of b.regions) {
      regions.add(r)
      if (b.tdx) tdxRegions.add(r)
    }
    maxCpu = Math.max(maxCpu, b.maxCpu)
    maxMemoryMiB = Math.max(maxMemoryMiB, b.maxMemoryMiB)
    maxDiskGiB = Math.max(maxDiskGiB, b.maxDiskGiB)
  }
  return {
    regions: [...regions].sort(),
    tdxRegions: [...tdxRegions].sort(),
    maxCpu,
    maxMemoryMiB,
    maxDiskGiB,
    tdx: card.backends.some((b) => b.tdx),
    backendKinds: [...kinds].sort()
  }
}

/**
 * The seed's rule: the card meets the floor and serves the scheme. `level` defaults to the claimed
 * one; auditors pass the level verified from evidence.
 */
export function isEligible (card: ProviderCard, scheme: string, floor: AttestationLevel, level: AttestationLevel = card.attestationLevel): boolean {
  return meets(level, floor) && card.schemesSupported.includes(scheme)
}

export interface ComputeRequirements {
  scheme: string
  floor: AttestationLevel
  cpu: number
  memoryMiB: number
  diskGiB: number
  /** Any region when absent. */
  region?: string
  tdx: boolean
}

/** Stable reason codes a provider names when it declines; shared with the bid protocol. */
export type IneligibleReason = 'SCHEME_UNSUPPORTED' | 'FLOOR_NOT_MET' | 'REGION_UNSERVED' | 'TDX_UNAVAILABLE' | 'RESOURCES_EXCEEDED'

export type Eligibility =
  | { eligible: true, backend: string }
  | { eligible: false, reason: IneligibleReason }

/**
 * The compute form of `isEligible`: one backend must serve the region, TDX and resources together,
 * since a machine cannot span backends. Reasons come in a fixed precedence so callers can rely on them.
 */
export function isEligibleFor (card: ProviderCard, req: ComputeRequirements, level: AttestationLevel = card.attestationLevel): Eligibility {
  if (!card.schemesSupported.includes(req.scheme)) return { eligible: false, reason: 'SCHEME_UNSUPPORTED' }
  if (!meets(level, req.floor)) return { eligible: false, reason: 'FLOOR_NOT_MET' }
  const inRegion = card.backends.filter((b) => req.region === undefined || b.regions.includes(req.region))
  if (inRegion.length === 0) return { eligible: false, reason: 'REGION_UNSERVED' }
  const withTdx = inRegion.filter((b) => !req.tdx || b.tdx)
  if (withTdx.length === 0) return { eligible: false, reason: 'TDX_UNAVAILABLE' }
  const fits = withTdx.find((b) => b.maxCpu >= req.cpu && b.maxMemoryMiB >= req.memoryMiB && b.maxDiskGiB >= req.diskGiB)
  if (fits === undefined) return { eligible: false, reason: 'RESOURCES_EXCEEDED' }
  return { eligible: true, backend: fits.name }
}
