/**
 * The JSON a provider operator writes (`cmesh card sign card.json`): a card without the fields the
 * node fills in itself (providerId, rate table digest, times by default). Wei amounts are decimal
 * strings, bytes are hex, CIDs are strings, so the file survives any JSON tool.
 */
import { z } from 'zod'
import { CID } from 'multiformats/cid'
import { sha256 } from '@noble/hashes/sha2.js'
import { ATTESTATION_LEVELS } from '../market/ladder.js'
import { BACKEND_KINDS, rateTableDigest, type ProviderCard } from '../market/provider-card.js'
import { fromHex, utf8 } from '../market/bytes.js'
import { weiString } from '../market/schema.js'
import { isDid, type Did, type Identity } from '../market/identity.js'
import { NodeError } from './errors.js'

// The record's own wei format, or a plain JSON integer for small amounts.
const weiText = z.union([weiString, z.number().int().nonnegative()]).transform((v) => BigInt(v))
const hex32 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 32 bytes of hex').transform((s) => fromHex(s))
const cidText = z.string().transform((s, ctx) => {
  try {
    return CID.parse(s)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected a CID' })
    return z.NEVER
  }
})

export const DEFAULT_CARD_TTL_SECS = 24 * 3600

export const cardDraftSchema = z.strictObject({
  schemesSupported: z.array(z.string()).min(1),
  attestationLevel: z.enum(ATTESTATION_LEVELS).default('Software'),
  attestationDigest: hex32.optional(),
  capacityPerSecond: z.number().int().nonnegative(),
  feePerPartialWei: weiText,
  committedAtUnixSecs: z.number().int().nonnegative().optional(),
  expiresAtUnixSecs: z.number().int().nonnegative().optional(),
  ttlSecs: z.number().int().positive().optional(),
  backends: z.array(z.strictObject({
    name: z.string(),
    kind: z.enum(BACKEND_KINDS),
    regions: z.array(z.string()),
    maxCpu: z.number().int().nonnegative(),
    maxMemoryMiB: z.number().int().nonnegative(),
    maxDiskGiB: z.number().int().nonnegative(),
    tdx: z.boolean().default(false)
  })).min(1),
  rates: z.array(z.strictObject({
    backend: z.string(),
    region: z.string().optional(),
    cpuHourWei: weiText,
    memoryGiBHourWei: weiText,
    diskGiBHourWei: weiText
  })).default([]),
  evidence: z.strictObject({ quote: cidText, collateral: cidText }).optional(),
  listenAddrs: z.array(z.string()).default([]),
  successor: z.string().refine(isDid, 'expected an Ed25519 did:key').optional(),
  buildRecipe: z.strictObject({ source: z.string().min(1), command: z.string().min(1), manifest: z.string().min(1) }).optional(),
  /** Set by the node from its payment config (network, token, its EVM address). */
  payment: z.strictObject({ network: z.string(), asset: z.string(), payTo: z.string() }).optional()
})

export type CardDraft = z.input<typeof cardDraftSchema>

/** Completes a draft into the card `identity` will sign; `nowSecs` fills the commit time. */
export function cardFromDraft (json: unknown, identity: Identity, nowSecs: number): ProviderCard {
  const parsed = cardDraftSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new NodeError('INPUT_INVALID', `card draft: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`)
  }
  const d = parsed.data
  const committedAtUnixSecs = d.committedAtUnixSecs ?? nowSecs
  const rates = d.rates.map((r) => ({ ...r, ...(r.region === undefined ? {} : { region: r.region }) }))
  return {
    providerId: identity.did,
    schemesSupported: d.schemesSupported,
    attestationLevel: d.attestationLevel,
    // A software-only provider's identity digest is the digest of its DID.
    attestationDigest: d.attestationDigest ?? sha256(utf8(identity.did)),
    capacityPerSecond: d.capacityPerSecond,
    feePerPartialWei: d.feePerPartialWei,
    committedAtUnixSecs,
    expiresAtUnixSecs: d.expiresAtUnixSecs ?? committedAtUnixSecs + (d.ttlSecs ?? DEFAULT_CARD_TTL_SECS),
    backends: d.backends,
    rates,
    rateTableDigest: rateTableDigest(rates),
    ...(d.evidence !== undefined ? { evidence: d.evidence } : {}),
    listenAddrs: d.listenAddrs,
    ...(d.successor !== undefined ? { successor: d.successor as Did } : {}),
    ...(d.buildRecipe !== undefined ? { buildRecipe: d.buildRecipe } : {}),
    ...(d.payment !== undefined ? { payment: { network: d.payment.network, asset: d.payment.asset.toLowerCase(), payTo: d.payment.payTo.toLowerCase() } } : {})
  }
}
