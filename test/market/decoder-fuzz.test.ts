/**
 * Feeds mutated and random encodings of every collection record type to the decoder: each must
 * either be refused with a RecordError or be the untouched original. Nothing else may escape.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as dagCbor from '@ipld/dag-cbor'
import {
  decodeRecord, RecordError, COLLECTION_RECORD_TYPES, bytesEqual, encodeCanonical, verify, publicKeyFromDid,
  concatBytes, RECORD_SIGNATURE_DOMAIN, type SignedRecord
} from '../../src/market/index.js'
import { makeCard, makeRetirement, testIdentity, T0 } from '../helpers/cards.js'

const RUNS = 10_000

type Mutation =
  | { kind: 'flip', at: number, bit: number }
  | { kind: 'set', at: number, value: number }
  | { kind: 'insert', at: number, bytes: Uint8Array }
  | { kind: 'delete', at: number, count: number }
  | { kind: 'truncate', at: number }
  | { kind: 'field', key: number, value: unknown }

const cborValue = fc.oneof(
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.string({ maxLength: 40 }), fc.boolean(), fc.constant(null),
  fc.uint8Array({ maxLength: 70 }), fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.array(fc.string({ maxLength: 10 }), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 3 })
)

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat(255) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('field' as const), key: fc.nat(), value: cborValue })
)

function apply (original: Uint8Array, m: Mutation): Uint8Array {
  const at = original.length === 0 ? 0 : ('at' in m ? m.at % original.length : 0)
  switch (m.kind) {
    case 'flip': { const b = Uint8Array.from(original); b[at] = (b[at] as number) ^ (1 << m.bit); return b }
    case 'set': { const b = Uint8Array.from(original); b[at] = m.value; return b }
    case 'insert': return concatBytes(original.subarray(0, at), m.bytes, original.subarray(at))
    case 'delete': return concatBytes(original.subarray(0, at), original.subarray(at + m.count))
    case 'truncate': return original.subarray(0, at)
    case 'field': {
      // Structure-aware: change one field and re-encode canonically, keeping the old signature.
      // (Only when the input still decodes to a map; otherwise it is left as the earlier mutations made it.)
      try {
        const map = dagCbor.decode(original) as Record<string, unknown>
        const keys = Object.keys(map)
        const key = keys[m.key % keys.length] as string
        return encodeCanonical({ ...map, [key]: m.value })
      } catch {
        return original
      }
    }
  }
}

function signatureHolds (record: SignedRecord<any>): boolean {
  const { sig, ...body } = dagCbor.decode(record.bytes) as Record<string, unknown>
  return verify(publicKeyFromDid(record.author), concatBytes(RECORD_SIGNATURE_DOMAIN, encodeCanonical(body)), sig as Uint8Array)
}

function fuzz (name: string, original: Uint8Array): void {
  describe(`decoder fuzz: ${name}`, () => {
    it(`refuses ${RUNS} mutated encodings with typed errors only`, () => {
      let refused = 0
      const codes = new Set<string>()
      fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        const input = mutations.reduce(apply, original)
        try {
          const record = decodeRecord(input, COLLECTION_RECORD_TYPES)
          // Accepted: it must be the original (or an identical re-encoding) with a signature that holds.
          assert.ok(bytesEqual(record.bytes, original), 'a mutated encoding was accepted')
          assert.ok(signatureHolds(record))
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err
          assert.ok(err instanceof RecordError, `untyped error: ${String(err)}`)
          assert.match(err.code, /^RECORD_/)
          codes.add(err.code)
          refused++
        }
      }), { numRuns: RUNS, seed: 0x5eed })
      assert.ok(refused > RUNS * 0.9, `only ${refused} of ${RUNS} refused`)
      // The mutations reach every stage of the pipeline, not just the CBOR parser.
      for (const code of ['RECORD_MALFORMED', 'RECORD_NON_CANONICAL', 'RECORD_SCHEMA', 'RECORD_BAD_SIGNATURE']) {
        assert.ok(codes.has(code), `no mutation reached ${code}: saw ${[...codes].join(', ')}`)
      }
    })

    it(`refuses ${RUNS} random byte strings with typed errors only`, () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (input) => {
        assert.throws(() => decodeRecord(input, COLLECTION_RECORD_TYPES), RecordError)
      }), { numRuns: RUNS, seed: 0xcafe })
    })
  })
}

const alice = testIdentity(1)
fuzz('provider card', makeCard(alice).bytes)
fuzz('retirement', makeRetirement(alice, T0, testIdentity(2)).bytes)
