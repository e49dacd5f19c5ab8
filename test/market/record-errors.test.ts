/**
 * decodeRecord's contract: whatever the bytes, a refusal is a RecordError with a stable code. An
 * untyped error (a TypeError from String() on a hostile value, a RangeError from deep recursion)
 * ends `cmesh cards`, `audit`, `pack` and `attest check-build` as "unexpected error" and ends a
 * sync session without counting the record as invalid.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  decodeRecord, signRecord, encodeCanonical, concatBytes, utf8, rawCidForBytes, RecordError, RECORD_SIGNATURE_DOMAIN,
  COLLECTION_RECORD_TYPES, CcrfpType, userDataRefFromDigest, type Identity
} from '../../src/market/index.js'
import { makeCard, makeRetirement, testIdentity, T0 } from '../helpers/cards.js'

const alice = testIdentity(1)
/** MAX_CBOR_DEPTH, spelled out so this file also runs (and fails) against the code before the bound. */
const MAX_CBOR_DEPTH = 16
const TYPES = [...COLLECTION_RECORD_TYPES, CcrfpType]

function typedRefusal (bytes: Uint8Array, code?: string, what = '', mayAccept = false): RecordError | undefined {
  let caught: unknown
  try {
    decodeRecord(bytes, TYPES)
  } catch (err) {
    caught = err
  }
  if (caught === undefined && mayAccept) return undefined
  assert.ok(caught !== undefined, `accepted: ${what}`)
  assert.ok(caught instanceof RecordError, `untyped ${(caught as Error)?.name}: ${(caught as Error)?.message} ${what}`)
  if (code !== undefined) assert.equal(caught.code, code, caught.message)
  return caught
}

/** The record's map with `sig` re-made by `identity`, so a change reaches the steps after the signature. */
function signMap (map: Record<string, unknown>, identity: Identity): Uint8Array {
  const { sig: _sig, ...body } = map
  return encodeCanonical({ ...body, sig: identity.sign(concatBytes(RECORD_SIGNATURE_DOMAIN, encodeCanonical(body))) })
}

/** Replaces the encoded `"v": 1` entry (61 76 01) with `"v": <raw>`, however deep `raw` is. */
function withRawVersion (record: Uint8Array, raw: Uint8Array): Uint8Array {
  const at = record.findIndex((_, i) => record[i] === 0x61 && record[i + 1] === 0x76 && record[i + 2] === 0x01)
  assert.ok(at > 0)
  return concatBytes(record.subarray(0, at + 2), raw, record.subarray(at + 3))
}

const rfp = signRecord(CcrfpType, {
  requester: alice.did,
  createdAtUnixSecs: T0,
  cpus: 2,
  mem: '1G',
  disk: '10G',
  network: '100G',
  role: 'worker',
  user_data: userDataRefFromDigest(new Uint8Array(32)),
  cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 1n, durationSecs: 3600, bidWindowSecs: 30 }
}, alice)

const records = [makeCard(alice), makeRetirement(alice, T0, testIdentity(2)), rfp]

const HOSTILE: Array<[string, unknown]> = [
  ['{toString: 0}', { toString: 0 }],
  ['{valueOf: 0}', { valueOf: 0 }],
  ['{toString, valueOf}', { toString: 0, valueOf: 'x' }],
  ['{constructor: 0}', { constructor: 0 }],
  ['{toJSON: 0}', { toJSON: 0 }],
  ['own __proto__', Object.defineProperty({}, '__proto__', { value: { v: 1 }, enumerable: true })],
  ['[{toString: 0}]', [{ toString: 0 }]],
  ['bytes', new Uint8Array(3)],
  ['CID', rawCidForBytes(utf8('x'))],
  ['null', null],
  ['true', true],
  ['-1', -1],
  ['2^53', 2 ** 53],
  ['1.5', 1.5],
  ['"1"', '1'],
  ['huge string', 'x'.repeat(4000)],
  [`${MAX_CBOR_DEPTH - 2} nested arrays`, Array.from({ length: MAX_CBOR_DEPTH - 2 }).reduce<unknown>((v) => [v], 1)],
  [`${MAX_CBOR_DEPTH} nested maps`, Array.from({ length: MAX_CBOR_DEPTH }).reduce<unknown>((v) => ({ toString: v }), 1)]
]

describe('decodeRecord refuses with a RecordError, whatever the bytes', () => {
  it('a `v` of {"toString": 0} is RECORD_UNSUPPORTED_VERSION, not a TypeError from String(v)', () => {
    const map = dagCbor.decode(records[0]!.bytes) as Record<string, unknown>
    const err = typedRefusal(encodeCanonical({ ...map, v: { toString: 0 } }), 'RECORD_UNSUPPORTED_VERSION')
    assert.equal(err?.meta.version, 'object')
  })

  it('a `v` nested 3,500 deep is RECORD_MALFORMED, not a RangeError', () => {
    const deep = new Uint8Array(3501).fill(0x81)
    deep[3500] = 0x01
    for (const record of records) typedRefusal(withRawVersion(record.bytes, deep), 'RECORD_MALFORMED')
    // Maps too, and just over the bound.
    const maps = concatBytes(...Array.from({ length: 3500 }, () => Uint8Array.of(0xa1, 0x61, 0x61)), Uint8Array.of(0x01))
    typedRefusal(withRawVersion(records[0]!.bytes, maps), 'RECORD_MALFORMED')
    const justOver = new Uint8Array(MAX_CBOR_DEPTH + 1).fill(0x81)
    justOver[MAX_CBOR_DEPTH] = 0x01
    typedRefusal(withRawVersion(records[0]!.bytes, justOver), 'RECORD_MALFORMED')
  })

  it('hostile values in every field of every record type, signed or not, are refused with a code', () => {
    for (const record of records) {
      const map = dagCbor.decode(record.bytes) as Record<string, unknown>
      for (const key of Object.keys(map)) {
        for (const [name, value] of HOSTILE) {
          const changed = { ...map }
          Object.defineProperty(changed, key, { value, enumerable: true, writable: true, configurable: true })
          let plain: Uint8Array
          try {
            plain = encodeCanonical(changed)
          } catch {
            continue // not encodable as DAG-CBOR (a float where none is allowed, for instance)
          }
          const err = typedRefusal(plain, undefined, `${record.type.nsid} ${key} = ${name}`)
          assert.match(err?.code ?? '', /^RECORD_/)
          // Re-signed by the author, a change can be a valid record (a retirement's reason "1"): only no untyped error.
          if (key !== 'sig') typedRefusal(signMap(changed, alice), undefined, `${record.type.nsid} ${key} = ${name}, re-signed`, true)
        }
      }
    }
  })

  it('a map with an own "__proto__" key, a record of a CID or of nothing but "sig" are refused with a code', () => {
    const map = dagCbor.decode(records[0]!.bytes) as Record<string, unknown>
    const withProto = { ...map }
    Object.defineProperty(withProto, '__proto__', { value: { $type: 'x' }, enumerable: true })
    typedRefusal(encodeCanonical(withProto))
    typedRefusal(encodeCanonical(rawCidForBytes(utf8('x'))), 'RECORD_MALFORMED')
    typedRefusal(encodeCanonical({ sig: new Uint8Array(64) }), 'RECORD_UNKNOWN_TYPE')
  })
})
