/** zod building blocks for records after DAG-CBOR decoding (bytes are Uint8Array, links are CIDs). */
import { z } from 'zod'
import { CID } from './cbor.js'
import { isDid, type Did } from './identity.js'

export { z }

export const bytes = (length?: number) => z.custom<Uint8Array>(
  (v) => v instanceof Uint8Array && (length === undefined || v.length === length),
  { message: length === undefined ? 'expected bytes' : `expected ${length} bytes` }
)

export const did = z.custom<Did>((v) => isDid(v), { message: 'expected an Ed25519 did:key' })

export const cid = z.custom<CID>((v) => CID.asCID(v) !== null, { message: 'expected a CID link' })

/** Non-negative safe integer: DAG-CBOR has no floats here, and JS numbers stay exact. */
export const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

/** Up to 2^33 s (year 2242): well inside the TID range (2^53 µs), so every record has an address. */
export const unixSecs = uint.max(2 ** 33, { message: 'unix seconds out of range' })

/** Wei amounts exceed 64 bits, which DAG-CBOR integers cannot hold: they travel as canonical decimal strings. */
export const weiString = z.string().regex(/^(0|[1-9][0-9]{0,77})$/, 'expected a canonical decimal wei amount')
export const wei = weiString.transform((s) => BigInt(s))

export function weiToString (value: bigint): string {
  if (typeof value !== 'bigint' || value < 0n) throw new TypeError('wei amounts are non-negative bigints')
  return value.toString(10)
}

/** Short identifier-like strings (scheme names, regions, backend names). */
export const token = (max = 64) => z.string().min(1).max(max).regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'expected a plain identifier')
