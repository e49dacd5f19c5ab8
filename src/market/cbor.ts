/**
 * Canonical DAG-CBOR and CIDv1 (dag-cbor, sha2-256), the form atproto records use. Decoding is
 * strict *and* round-trip checked: dag-cbor's decoder tolerates unsorted map keys, so the only
 * sound canonicality test is that re-encoding gives back the very same bytes.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from '@noble/hashes/sha2.js'
import { RecordError } from './errors.js'
import { bytesEqual } from './bytes.js'

export { CID }

const SHA2_256 = 0x12

export function encodeCanonical (value: unknown): Uint8Array {
  return dagCbor.encode(value)
}

/** Decodes exactly one canonical DAG-CBOR item; anything else is a typed RecordError. */
export function decodeCanonical (bytes: Uint8Array): unknown {
  let value: unknown
  try {
    value = dagCbor.decode(bytes)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    // cborg reports trailing bytes as "too many terminals".
    const trailing = message.includes('too many terminals')
    throw new RecordError(trailing ? 'RECORD_NON_CANONICAL' : 'RECORD_MALFORMED',
      trailing ? 'trailing bytes after the record' : `not DAG-CBOR: ${message}`, {}, { cause: err })
  }
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

export function cidForBytes (bytes: Uint8Array): CID {
  return CID.createV1(dagCbor.code, createDigest(SHA2_256, sha256(bytes)))
}

export function sha256Digest (bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

const RAW_CODEC = 0x55

/** CIDv1 (raw, sha2-256) of an opaque blob, such as a quote or collateral file. */
export function rawCidForBytes (bytes: Uint8Array): CID {
  return CID.createV1(RAW_CODEC, createDigest(SHA2_256, sha256(bytes)))
}
