/**
 * A plain Uint8Array copy. Seeds often are Buffers (dag-cbor and the quote simulator return them),
 * and Buffer#slice is a view, not a copy: a mutator writing into one would corrupt its seed.
 */
export function copy (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return new Uint8Array(bytes.subarray(start, end))
}
