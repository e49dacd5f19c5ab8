/** Byte helpers the libraries lack; hex, utf8 and concatenation come from @noble/hashes/utils. */
export { bytesToHex as toHex, hexToBytes as fromHex, concatBytes, utf8ToBytes as utf8 } from '@noble/hashes/utils.js'

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic byte order: the tie-break that makes LWW total. */
export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** u32 big-endian length prefix, as DESIGN.md §6 `lp()`. */
export function lengthPrefixed (bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length)
  new DataView(out.buffer).setUint32(0, bytes.length)
  out.set(bytes, 4)
  return out
}
