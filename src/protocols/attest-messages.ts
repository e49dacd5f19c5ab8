/**
 * The attest protocol's messages (docs/PROTOCOLS.md §6a): their schemas, and the transcript each
 * side keeps of the exact bytes exchanged.
 */
import { z } from 'zod'
import { sha256 } from '@noble/hashes/sha2.js'
import { concatBytes, lengthPrefixed } from '../market/bytes.js'
import { ATTESTATION_LEVELS } from '../market/ladder.js'
import { MAX_COLLATERAL_BYTES } from '../attestation/collateral.js'
import { MAX_QUOTE_BYTES } from '../attestation/quote.js'

const level = z.enum(ATTESTATION_LEVELS)
const helloMsg = z.strictObject({
  v: z.literal(1),
  nonce: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === 32),
  offer: level,
  require: level,
  manifest: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === 32)
})
const evidenceMsg = z.union([
  z.strictObject({ tdx: z.strictObject({ quote: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length <= MAX_QUOTE_BYTES), collateral: z.string().max(MAX_COLLATERAL_BYTES) }) }),
  z.strictObject({ software: z.strictObject({ sig: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === 64) }) }),
  z.strictObject({ refuse: z.string().max(64) })
])
const finishMsg = z.strictObject({
  transcript: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === 32),
  ok: z.boolean(),
  code: z.string().max(64).optional()
})

export type Hello = z.output<typeof helloMsg>
/** Every message schema, for docs/PROTOCOLS.md's vectors and the fuzzer. */
export const ATTEST_MESSAGES = { hello: helloMsg, evidence: evidenceMsg, finish: finishMsg }

/** One side's view of one exchange: the bytes it sent and received, in order. */
export class Transcript {
  private readonly parts: Uint8Array[] = []
  add (bytes: Uint8Array): void { this.parts.push(lengthPrefixed(bytes)) }
  digest (): Uint8Array { return sha256(concatBytes(...this.parts)) }
}
