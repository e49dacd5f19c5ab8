import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { tidFromTime, timeFromTid, isTid, formatAtUri, parseAtUri, IdentityError } from '../../src/market/index.js'
import { testIdentity } from '../helpers/cards.js'

describe('TID', () => {
  it('round-trips time and clock id and sorts as time sorts', () => {
    const a = tidFromTime(1_700_000_000_000_000n, 5)
    const b = tidFromTime(1_700_000_000_000_001n, 0)
    assert.equal(a.length, 13)
    assert.ok(isTid(a))
    assert.ok(a < b)
    assert.deepEqual(timeFromTid(a), { microseconds: 1_700_000_000_000_000n, clockId: 5 })
  })

  it('matches the atproto example layout (first char in 2-j)', () => {
    assert.equal(tidFromTime(0n), '2222222222222')
    assert.throws(() => tidFromTime(-1n), IdentityError)
    assert.throws(() => tidFromTime(1n << 53n), IdentityError)
    assert.throws(() => timeFromTid('k222222222222'), IdentityError)
  })
})

describe('at:// addresses', () => {
  it('formats and parses', () => {
    const did = testIdentity(1).did
    const uri = formatAtUri({ did, nsid: 'org.computemesh.provider.card', rkey: tidFromTime(1n) })
    assert.deepEqual(parseAtUri(uri), { did, nsid: 'org.computemesh.provider.card', rkey: tidFromTime(1n) })
  })

  it('refuses malformed addresses with ADDRESS_MALFORMED', () => {
    const did = testIdentity(1).did
    for (const bad of [
      'http://x/y/z',
      `at://${did}/org.computemesh.provider.card`,
      `at://did:web:x/org.computemesh.provider.card/${tidFromTime(1n)}`,
      `at://${did}/notansid/${tidFromTime(1n)}`,
      `at://${did}/org.computemesh.provider.card/self`,
      `at://${did}/a.b.c/${tidFromTime(1n)}/extra`
    ]) {
      assert.throws(() => parseAtUri(bad), (e: unknown) => e instanceof IdentityError && e.code === 'ADDRESS_MALFORMED', bad)
    }
  })
})
