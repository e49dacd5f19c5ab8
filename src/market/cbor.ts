/**
 * Canonical DAG-CBOR and CIDv1 (dag-cbor, sha2-256), the form atproto records use. Decoding is
 * strict *and* round-trip checked: dag-cbor's decoder tolerates unsorted map keys, so the only
 * sound canonicality test is that re-encoding gives back the very same bytes.
 *
 * Every input is pre-scanned first (`scanCbor`): a linear walk over item heads that allocates
 * nothing and refuses deep nesting, too many items, indefinite lengths and lengths running past
 * the end, so a hostile frame costs microseconds instead of seconds of decoding and re-encoding.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { createHash } from 'node:crypto'
import { RecordError } from './errors.js'
import { bytesEqual } from './bytes.js'

export { CID }

const SHA2_256 = 0x12

export function encodeCanonical (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/**
 * Most containers (arrays, maps, tags) any item may sit inside. The deepest encoding we produce
 * is 4: a card's map → backends → backend → regions (a CID in `evidence` is map → map → tag 42;
 * sync, attest and evidence messages reach 3 at most; records travel inside messages as byte
 * strings, so they add nothing). 16 leaves 4× room; decoding 3 MiB nested thousands deep cost
 * seconds of CPU and gigabytes of memory before this bound.
 */
export const MAX_CBOR_DEPTH = 16

/**
 * Most items (every head: scalars, strings, containers, tags) one encoding may hold. The largest
 * legitimate one is a sync entries message: 4096 entries × 9 items ≈ 36,900; a record is capped
 * at 64 KiB and so at fewer items than this. 131,072 leaves 3.5× room; a 3 MiB frame of small
 * items decodes into millions of JS values otherwise (~2 s of CPU).
 */
export const MAX_CBOR_ITEMS = 131_072

export interface CborLimits {
  maxDepth?: number
  maxItems?: number
}

function refuse (code: 'RECORD_MALFORMED' | 'RECORD_TOO_LARGE' | 'RECORD_NON_CANONICAL', reason: string, message: string, offset: number): never {
  throw new RecordError(code, message, { reason, offset })
}

/**
 * Checks the shape of one CBOR item without decoding it: exactly one item, definite lengths only,
 * no declared length beyond the bytes left, at most `maxDepth` nested containers and `maxItems`
 * items, no trailing bytes. Linear in the input, allocation-free but for one small counter array.
 * Throws RecordError: RECORD_MALFORMED (meta.reason `truncated`, `length`, `indefinite`,
 * `reserved`, `depth`), RECORD_TOO_LARGE (`items`) or RECORD_NON_CANONICAL (`trailing`).
 * What it lets through still goes to the strict decoder (tags, simple values, minimal widths).
 */
export function scanCbor (bytes: Uint8Array, { maxDepth = MAX_CBOR_DEPTH, maxItems = MAX_CBOR_ITEMS }: CborLimits = {}): void {
  const end = bytes.length
  // pending[l]: items still to read at nesting level l (level 0 holds the one top-level item).
  // Counts never exceed the input length (checked as they are declared), so doubles are exact.
  const pending = new Float64Array(maxDepth + 1)
  pending[0] = 1
  let level = 0
  let items = 0
  let pos = 0
  for (;;) {
    if (pending[level] === 0) {
      if (level === 0) break
      level--
      continue
    }
    pending[level]!--
    if (++items > maxItems) refuse('RECORD_TOO_LARGE', 'items', `CBOR holds more than ${maxItems} items`, pos)
    if (pos >= end) refuse('RECORD_MALFORMED', 'truncated', 'CBOR ends inside an item', pos)
    const head = pos
    const initial = bytes[pos++]!
    const major = initial >> 5
    const info = initial & 0x1f
    let arg: number
    if (info < 24) {
      arg = info
    } else if (info <= 27) {
      const width = 1 << (info - 24)
      if (width > end - pos) refuse('RECORD_MALFORMED', 'truncated', 'CBOR ends inside an item head', head)
      arg = 0
      for (let i = 0; i < width; i++) arg = arg * 256 + bytes[pos + i]!
      pos += width
    } else if (info === 31) {
      refuse('RECORD_MALFORMED', 'indefinite', major === 7 ? 'CBOR break outside an indefinite-length item' : 'indefinite-length CBOR item', head)
    } else {
      refuse('RECORD_MALFORMED', 'reserved', `reserved CBOR additional information ${info}`, head)
    }
    let children = 0
    switch (major) {
      case 2: case 3:
        if (arg > end - pos) refuse('RECORD_MALFORMED', 'length', `CBOR string declares ${arg} bytes, ${end - pos} remain`, head)
        pos += arg
        continue
      case 4: case 5:
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        children = major === 4 ? arg : arg * 2
        if (children > end - pos) refuse('RECORD_MALFORMED', 'length', `CBOR ${major === 4 ? 'array' : 'map'} declares ${arg} entries, ${end - pos} bytes remain`, head)
        break
      case 6:
        children = 1
        break
      default:
        // Integers, floats and simple values: the head was all of it.
        continue
    }
    if (level + 1 > maxDepth) refuse('RECORD_MALFORMED', 'depth', `CBOR nested deeper than ${maxDepth}`, head)
    if (children > 0) pending[++level] = children
  }
  if (pos !== end) refuse('RECORD_NON_CANONICAL', 'trailing', `${end - pos} bytes after the CBOR item`, pos)
}

/**
 * Decodes exactly one DAG-CBOR item, after the pre-scan (so hostile shapes never reach the
 * decoder), without checking the encoding is canonical: for bytes already known to be (a record a
 * full decode accepted elsewhere). Anything else is a typed RecordError.
 */
export function decodeScanned (bytes: Uint8Array, limits?: CborLimits): unknown {
  if (!(bytes instanceof Uint8Array)) throw new RecordError('RECORD_MALFORMED', 'expected bytes')
  scanCbor(bytes, limits)
  try {
    return dagCbor.decode(bytes)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    // cborg reports trailing bytes as "too many terminals".
    const trailing = message.includes('too many terminals')
    throw new RecordError(trailing ? 'RECORD_NON_CANONICAL' : 'RECORD_MALFORMED',
      trailing ? 'trailing bytes after the record' : `not DAG-CBOR: ${message}`, {}, { cause: err })
  }
}

/** Decodes exactly one canonical DAG-CBOR item; anything else is a typed RecordError. */
export function decodeCanonical (bytes: Uint8Array, limits?: CborLimits): unknown {
  const value = decodeScanned(bytes, limits)
  let again: Uint8Array
  try {
    again = dagCbor.encode(value)
  } catch (err) {
    throw new RecordError('RECORD_MALFORMED', 'decoded value cannot be re-encoded', {}, { cause: err })
  }
  if (!bytesEqual(again, bytes)) {
    throw new RecordError('RECORD_NON_CANONICAL', 'encoding is not canonical DAG-CBOR (key order, widths or float form)')
  }
  return value
}

/** SHA-256 through node:crypto (OpenSSL): about 3× @noble/hashes on a record, and sync hashes each one 2–3 times. */
function sha256 (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

export function cidForBytes (bytes: Uint8Array): CID {
  return CID.createV1(dagCbor.code, createDigest(SHA2_256, sha256(bytes)))
}

export function sha256Digest (bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

const textEncoder = new TextEncoder()

/** Where the item starting at `pos` ends; `bytes` passed scanCbor, so every length is in range. */
function itemEnd (bytes: Uint8Array, pos: number): number {
  let pending = 1
  while (pending > 0) {
    pending--
    const initial = bytes[pos++]!
    const major = initial >> 5
    const info = initial & 0x1f
    let arg = info
    if (info >= 24) {
      const width = 1 << (info - 24)
      arg = 0
      for (let i = 0; i < width; i++) arg = arg * 256 + bytes[pos + i]!
      pos += width
    }
    if (major === 2 || major === 3) pos += arg
    else if (major === 4) pending += arg
    else if (major === 5) pending += arg * 2
    else if (major === 6) pending += 1
  }
  return pos
}

/** The minimal CBOR head of `major` with argument `arg` (as the canonical encoder writes it). */
function head (major: number, arg: number): Uint8Array {
  if (arg < 24) return Uint8Array.of((major << 5) | arg)
  if (arg < 0x100) return Uint8Array.of((major << 5) | 24, arg)
  if (arg < 0x10000) return Uint8Array.of((major << 5) | 25, arg >> 8, arg & 0xff)
  return Uint8Array.of((major << 5) | 26, arg >>> 24, (arg >> 16) & 0xff, (arg >> 8) & 0xff, arg & 0xff)
}

/**
 * The canonical encoding of a map without its entry `key`, cut from the canonical encoding of the
 * whole map (decodeCanonical accepted `bytes`): a canonical map is its minimal head and its entries
 * in key order, each canonical by itself, so dropping one entry and re-heading the count is exactly
 * what re-encoding the smaller map would give, without re-encoding it. Undefined when `bytes` is not
 * a map or holds no such text key.
 */
export function canonicalMapWithout (bytes: Uint8Array, key: string): Uint8Array | undefined {
  if (bytes.length === 0 || bytes[0]! >> 5 !== 5 || itemEnd(bytes, 0) !== bytes.length) return undefined
  const keyBytes = textEncoder.encode(key)
  const afterHead = headLength(bytes[0]!)
  const count = mapCount(bytes)
  let pos = afterHead
  for (let i = 0; i < count; i++) {
    const keyStart = pos
    const keyEnd = itemEnd(bytes, pos)
    const valueEnd = itemEnd(bytes, keyEnd)
    if (bytes[keyStart]! >> 5 === 3 && keyEnd - keyStart === headLength(bytes[keyStart]!) + keyBytes.length &&
      bytesEqual(bytes.subarray(keyEnd - keyBytes.length, keyEnd), keyBytes)) {
      const prefix = head(5, count - 1)
      const out = new Uint8Array(prefix.length + (keyStart - afterHead) + (bytes.length - valueEnd))
      out.set(prefix, 0)
      out.set(bytes.subarray(afterHead, keyStart), prefix.length)
      out.set(bytes.subarray(valueEnd), prefix.length + keyStart - afterHead)
      return out
    }
    pos = valueEnd
  }
  return undefined
}

function headLength (initial: number): number {
  const info = initial & 0x1f
  return info < 24 ? 1 : 1 + (1 << (info - 24))
}

function mapCount (bytes: Uint8Array): number {
  const info = bytes[0]! & 0x1f
  if (info < 24) return info
  let arg = 0
  for (let i = 0; i < 1 << (info - 24); i++) arg = arg * 256 + bytes[1 + i]!
  return arg
}

const RAW_CODEC = 0x55

/** CIDv1 (raw, sha2-256) of an opaque blob, such as a quote or collateral file. */
export function rawCidForBytes (bytes: Uint8Array): CID {
  return CID.createV1(RAW_CODEC, createDigest(SHA2_256, sha256(bytes)))
}
