/**
 * The CBOR pre-scan: hostile shapes (deep nesting, indefinite lengths, lengths past the end, too
 * many items) are refused before the decoder runs, with stable codes, in time linear in the input;
 * every shape our own encodings use still decodes.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import {
  canonicalMapWithout, decodeCanonical, encodeCanonical, scanCbor, MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, RecordError, rawCidForBytes, utf8, concatBytes
} from '../../src/market/index.js'
import { makeCard, testIdentity } from '../helpers/cards.js'

function refusedWith (code: string, reason?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof RecordError, `expected a RecordError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (reason !== undefined) assert.equal((err.meta as { reason?: string }).reason, reason, err.message)
    return true
  }
}

function cpuMs<T> (fn: () => T): { ms: number, result: T | unknown } {
  const started = process.cpuUsage()
  let result: unknown
  try { result = fn() } catch (err) { result = err }
  const d = process.cpuUsage(started)
  return { ms: (d.user + d.system) / 1000, result }
}

/** `depth` one-item arrays around the integer 1: 0x81 … 0x81 0x01. */
function nestedArrays (depth: number): Uint8Array {
  const out = new Uint8Array(depth + 1).fill(0x81)
  out[depth] = 0x01
  return out
}

describe('CBOR pre-scan', () => {
  it('lets through every shape our encodings use, the deepest (a card with evidence) included', () => {
    const alice = testIdentity(1)
    const card = makeCard(alice, { evidence: { quote: rawCidForBytes(utf8('q')), collateral: rawCidForBytes(utf8('c')) } })
    assert.doesNotThrow(() => scanCbor(card.bytes))
    assert.deepEqual(encodeCanonical(decodeCanonical(card.bytes)), card.bytes)
    const entries = { entries: Array.from({ length: 4096 }, (_, i) => ({ p: alice.did, t: i, r: false, d: new Uint8Array(32) })), more: false }
    assert.doesNotThrow(() => decodeCanonical(encodeCanonical(entries)), 'a full sync entries message')
  })

  it(`accepts ${MAX_CBOR_DEPTH} nested containers and refuses ${MAX_CBOR_DEPTH + 1}, arrays, maps and tags alike`, () => {
    assert.doesNotThrow(() => decodeCanonical(nestedArrays(MAX_CBOR_DEPTH)))
    assert.throws(() => decodeCanonical(nestedArrays(MAX_CBOR_DEPTH + 1)), refusedWith('RECORD_MALFORMED', 'depth'))
    // An empty container at the limit counts as well.
    assert.throws(() => decodeCanonical(concatBytes(new Uint8Array(MAX_CBOR_DEPTH).fill(0x81), Uint8Array.of(0x80))), refusedWith('RECORD_MALFORMED', 'depth'))
    let map: unknown = 1
    for (let i = 0; i < MAX_CBOR_DEPTH + 1; i++) map = { a: map }
    assert.throws(() => decodeCanonical(dagCbor.encode(map)), refusedWith('RECORD_MALFORMED', 'depth'))
    // Tags nest too: tag(42) chains never reach the CID decoder.
    const tags = concatBytes(new Uint8Array(2 * (MAX_CBOR_DEPTH + 1)).map((_, i) => i % 2 === 0 ? 0xd8 : 42), Uint8Array.of(0x41, 0x00))
    assert.throws(() => decodeCanonical(tags), refusedWith('RECORD_MALFORMED', 'depth'))
  })

  it('refuses indefinite-length items and stray breaks', () => {
    for (const bytes of [[0x9f, 0x01, 0xff], [0xbf, 0x61, 0x61, 0x01, 0xff], [0x5f, 0x41, 0x00, 0xff], [0x7f, 0x61, 0x61, 0xff], [0xff], [0x82, 0x01, 0xff]]) {
      assert.throws(() => decodeCanonical(Uint8Array.from(bytes)), refusedWith('RECORD_MALFORMED', 'indefinite'), Buffer.from(bytes).toString('hex'))
    }
  })

  it('refuses declared lengths beyond the bytes left, before allocating anything', () => {
    for (const bytes of [
      [0x5a, 0xff, 0xff, 0xff, 0xff], // bytes(4 GiB)
      [0x7b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61], // text(2^32)
      [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // array(2^64 − 1)
      [0xba, 0x00, 0x01, 0x00, 0x00, 0x01, 0x01], // map(65536) with 2 bytes left
      [0x83, 0x01, 0x02], // array(3) with 2 items
      [0x78, 0x05, 0x61, 0x62] // text(5) with 2 bytes
    ]) {
      assert.throws(() => decodeCanonical(Uint8Array.from(bytes)), refusedWith('RECORD_MALFORMED', 'length'), Buffer.from(bytes).toString('hex'))
    }
    assert.throws(() => decodeCanonical(Uint8Array.from([0x19, 0x01])), refusedWith('RECORD_MALFORMED', 'truncated'))
    assert.throws(() => decodeCanonical(new Uint8Array(0)), refusedWith('RECORD_MALFORMED', 'truncated'))
  })

  it('refuses reserved additional information 28-30', () => {
    for (const initial of [0x1c, 0x3d, 0x5e, 0x9c, 0xfe]) {
      assert.throws(() => decodeCanonical(Uint8Array.of(initial, 0, 0, 0, 0)), refusedWith('RECORD_MALFORMED', 'reserved'))
    }
  })

  it(`refuses more than ${MAX_CBOR_ITEMS} items as too large`, () => {
    const ok = encodeCanonical(new Array(MAX_CBOR_ITEMS - 1).fill(0))
    assert.doesNotThrow(() => scanCbor(ok))
    const tooMany = encodeCanonical(new Array(MAX_CBOR_ITEMS).fill(0))
    assert.throws(() => decodeCanonical(tooMany), refusedWith('RECORD_TOO_LARGE', 'items'))
  })

  it('still calls trailing bytes non-canonical', () => {
    assert.throws(() => decodeCanonical(Uint8Array.of(0x01, 0x02)), refusedWith('RECORD_NON_CANONICAL', 'trailing'))
  })

  it('leaves the rest to the decoder and the round trip, with the same codes as before (non-minimal, unsorted, undefined)', () => {
    assert.throws(() => decodeCanonical(Uint8Array.of(0x18, 0x01)), refusedWith('RECORD_MALFORMED'))
    assert.throws(() => decodeCanonical(Uint8Array.of(0xa2, 0x61, 0x62, 0x01, 0x61, 0x61, 0x02)), refusedWith('RECORD_NON_CANONICAL'))
    assert.throws(() => decodeCanonical(Uint8Array.of(0xf7)), refusedWith('RECORD_NON_CANONICAL'))
  })

  it('refuses a 3 MiB frame nested thousands deep in a few ms (decoding it cost ≈ 7 s of CPU and 680 MB before)', (t) => {
    // The shape from the hardening issue: 1,048 subtrees, each 3,000 one-item arrays deep.
    const depth = 3000
    const count = 1048
    const frame = new Uint8Array(3 + count * (depth + 1))
    frame.set([0x99, count >> 8, count & 0xff])
    for (let i = 0; i < count; i++) {
      const at = 3 + i * (depth + 1)
      frame.fill(0x81, at, at + depth)
      frame[at + depth] = 0x01
    }
    const deep = cpuMs(() => decodeCanonical(frame))
    refusedWith('RECORD_MALFORMED', 'depth')(deep.result)
    // Legal depth, as many items as fit: refused at the item bound, not decoded.
    const wide = new Uint8Array(3 * 1024 * 1024).fill(0x81)
    wide.set([0x9a, 0x00, 0x01, 0xff, 0xff])
    for (let at = 5; at + 16 <= wide.length; at += 16) wide[at + 15] = 0x01
    const many = cpuMs(() => decodeCanonical(wide))
    refusedWith('RECORD_TOO_LARGE', 'items')(many.result)
    t.diagnostic(`3 MiB nested 3000 deep: ${deep.ms.toFixed(1)} ms CPU; 3 MiB of 15-deep subtrees: ${many.ms.toFixed(1)} ms CPU`)
    assert.ok(deep.ms < 100, `nesting refused in ${deep.ms} ms`)
    assert.ok(many.ms < 100, `items refused in ${many.ms} ms`)
  })
})

describe('canonicalMapWithout (a record\'s signed body, cut from its bytes)', () => {
  // A small deterministic generator: the same maps on every run, so a failure can be replayed.
  let seed = 0x2545f491
  const rand = (n: number): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n }
  function value (depth: number): unknown {
    // Containers only near the top, and small: the maps stay a few KiB.
    switch (rand(depth > 1 ? 6 : 9)) {
      case 0: return rand(2) === 0 ? rand(30) : rand(2 ** 31) * 7919
      case 1: return -1 - rand(70_000)
      case 2: return 'x'.repeat(rand(300))
      case 3: return new Uint8Array([64, rand(300), 70_000][rand(3)]!)
      case 4: return rand(3) === 0 ? null : rand(2) === 0
      case 5: return BigInt(2) ** 64n - BigInt(rand(1000)) - 1n
      case 6: return Array.from({ length: rand(6) }, () => value(depth + 1))
      case 7: return randomMap(rand(6), depth + 1)
      default: return rawCidForBytes(new Uint8Array([rand(256)]))
    }
  }
  // cborg hands back a Buffer under Node: compare bytes, not prototypes.
  const asBuffer = (bytes: Uint8Array | undefined): Buffer | undefined => bytes === undefined ? undefined : Buffer.from(bytes)
  function randomMap (size: number, depth: number): Record<string, unknown> {
    const map: Record<string, unknown> = {}
    while (Object.keys(map).length < size) map[`${'k'.repeat(rand(40))}${rand(1000)}`] = value(depth)
    return map
  }

  it('equals re-encoding the map without the entry, at every head width and key position', () => {
    // 24, 256 entries: the count's head shrinks by a byte when one goes; 1: the empty map remains.
    for (const size of [1, 2, 23, 24, 25, 255, 256, 257, 300]) {
      for (let round = 0; round < 6; round++) {
        const map = randomMap(size, 0)
        const keys = Object.keys(map)
        const drop = keys[rand(keys.length)]!
        const bytes = encodeCanonical(map)
        const { [drop]: _dropped, ...rest } = map
        assert.deepEqual(asBuffer(canonicalMapWithout(bytes, drop)), asBuffer(encodeCanonical(rest)), `size ${size}, dropping ${drop}`)
      }
    }
  })

  it('cuts the very body its signer signed (a card; every record type goes through it in decodeRecord)', () => {
    const alice = testIdentity(1)
    const card = makeCard(alice)
    const { sig: _sig, ...body } = decodeCanonical(card.bytes) as Record<string, unknown>
    assert.deepEqual(asBuffer(canonicalMapWithout(card.bytes, 'sig')), asBuffer(encodeCanonical(body)))
  })

  it('is undefined for a missing key, a non-map and trailing bytes', () => {
    const bytes = encodeCanonical({ a: 1, sig: new Uint8Array(64) })
    assert.equal(canonicalMapWithout(bytes, 'nope'), undefined)
    assert.equal(canonicalMapWithout(encodeCanonical([1, 2]), 'a'), undefined)
    assert.equal(canonicalMapWithout(concatBytes(bytes, Uint8Array.of(0)), 'a'), undefined)
    assert.equal(canonicalMapWithout(new Uint8Array(0), 'a'), undefined)
  })
})
