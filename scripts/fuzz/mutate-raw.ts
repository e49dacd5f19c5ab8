/** Format-blind byte damage: flips, overwrites, inserts, deletes, truncation, repeats. */
import type { Rng } from './rng.js'
import { copy } from './copy.js'

const INTERESTING = [0x00, 0x01, 0x17, 0x18, 0x1f, 0x7f, 0x80, 0x9f, 0xbf, 0xd8, 0xf6, 0xf7, 0xfb, 0xff]

function splice (bytes: Uint8Array, at: number, remove: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(bytes.length - remove + insert.length)
  out.set(bytes.subarray(0, at), 0)
  out.set(insert, at)
  out.set(bytes.subarray(at + remove), at + insert.length)
  return out
}

export function mutateRaw (rng: Rng, input: Uint8Array): { bytes: Uint8Array, ops: string[] } {
  let bytes = input
  const ops: string[] = []
  const rounds = rng.range(1, 3)
  for (let i = 0; i < rounds; i++) {
    const at = rng.int(bytes.length + 1)
    switch (rng.int(8)) {
      case 0: {
        if (bytes.length === 0) break
        const b = copy(bytes)
        const j = Math.min(at, b.length - 1)
        b[j] = (b[j] as number) ^ (1 << rng.int(8))
        bytes = b
        ops.push('raw.flip')
        break
      }
      case 1: {
        if (bytes.length === 0) break
        const b = copy(bytes)
        b[Math.min(at, b.length - 1)] = rng.chance(0.5) ? rng.pick(INTERESTING) : rng.int(256)
        bytes = b
        ops.push('raw.set')
        break
      }
      case 2:
        bytes = splice(bytes, at, 0, rng.chance(0.5) ? rng.bytes(rng.geometric(16)) : Uint8Array.of(rng.pick(INTERESTING)))
        ops.push('raw.insert')
        break
      case 3:
        bytes = splice(bytes, Math.min(at, bytes.length), Math.min(rng.geometric(32), bytes.length - Math.min(at, bytes.length)))
        ops.push('raw.delete')
        break
      case 4:
        bytes = bytes.subarray(0, at)
        ops.push('raw.truncate')
        break
      case 5: {
        const len = Math.min(rng.geometric(64), bytes.length - Math.min(at, bytes.length))
        bytes = splice(bytes, rng.int(bytes.length + 1), 0, copy(bytes, at, at + len))
        ops.push('raw.repeat')
        break
      }
      case 6:
        bytes = splice(bytes, bytes.length, 0, rng.bytes(rng.geometric(32)))
        ops.push('raw.append')
        break
      default:
        bytes = rng.bytes(rng.geometric(256))
        ops.push('raw.random')
    }
  }
  return { bytes, ops }
}
