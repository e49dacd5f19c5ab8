/**
 * Timestamp identifiers (atproto TIDs): 64 bits = 0 | 53-bit microseconds since epoch | 10-bit
 * clock id, written as 13 chars of sortable base32. Time is passed in; market code reads no clock.
 */
import { IdentityError } from './errors.js'

const ALPHABET = '234567abcdefghijklmnopqrstuvwxyz'
const TID_PATTERN = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/

export function tidFromTime (microseconds: bigint | number, clockId = 0): string {
  const micros = BigInt(microseconds)
  if (micros < 0n || micros >= 1n << 53n) throw new IdentityError('TID_MALFORMED', 'TID time out of range')
  if (!Number.isInteger(clockId) || clockId < 0 || clockId > 1023) throw new IdentityError('TID_MALFORMED', 'TID clock id out of range')
  let n = (micros << 10n) | BigInt(clockId)
  let out = ''
  for (let i = 0; i < 13; i++) {
    out = ALPHABET[Number(n & 31n)] + out
    n >>= 5n
  }
  return out
}

export function isTid (value: string): boolean {
  return TID_PATTERN.test(value)
}

export function timeFromTid (tid: string): { microseconds: bigint, clockId: number } {
  if (!isTid(tid)) throw new IdentityError('TID_MALFORMED', 'not a TID', { tid: tid.slice(0, 20) })
  let n = 0n
  for (const ch of tid) n = (n << 5n) | BigInt(ALPHABET.indexOf(ch))
  return { microseconds: n >> 10n, clockId: Number(n & 1023n) }
}
