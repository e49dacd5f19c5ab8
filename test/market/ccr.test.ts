import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { decodeRecord, CcrType, CCR_NSID, isIpv4, isIpv6, isDatetime, parseDatetimeMs, datetimeFromUnixSecs } from '../../src/market/index.js'
import { T0 } from '../helpers/cards.js'
import { bob, eve, makeCcb, makeCcba, makeCcr, makeRfp, refusedWith, signMap, wireMap } from './contract-fixtures.js'

describe('CCR (compute-contract lexicon)', () => {
  const rfp = makeRfp()
  const ccb = makeCcb(rfp)
  const ccba = makeCcba(rfp, ccb)
  const ccr = makeCcr(rfp, ccb, ccba, { compute: { ipv4: '203.0.113.7', ipv6: '2001:db8::7' } })

  it('round-trips and keeps the lexicon names (createdAt as an RFC 3339 string)', () => {
    const again = decodeRecord(ccr.bytes, [CcrType])
    assert.deepEqual(again.value, ccr.value)
    assert.equal(again.author, bob.did)
    assert.equal(CCR_NSID, 'com.publicdomainrelay.temp.ccr')
    const map = wireMap(ccr.bytes)
    assert.deepEqual(Object.keys(map).sort(), ['$type', 'bid', 'ccba', 'compute', 'createdAt', 'createdAtUnixSecs', 'provider', 'rfp', 'sig', 'v'])
    assert.equal(map.createdAt, '2027-01-15T08:01:00.000Z')
    assert.deepEqual(map.ccba, { uri: ccba.uri, cid: ccba.cid.toString() })
    assert.equal(decodeRecord(makeCcr(rfp, ccb, ccba, { compute: undefined }).bytes, [CcrType]).value.compute, undefined)
  })

  it('refuses bad datetimes, a createdAt that disagrees with createdAtUnixSecs, bad IPs, and a sealed receipt inside', () => {
    const map = wireMap(ccr.bytes)
    for (const variant of [
      { ...map, createdAt: '2027-01-15 08:01:00Z' },
      { ...map, createdAt: '2027-01-15T08:01:00' },
      { ...map, createdAt: T0 + 60 },
      { ...map, compute: { ipv4: '203.0.113.256' } },
      { ...map, compute: { ipv4: '2001:db8::7' } },
      { ...map, compute: { ipv6: '203.0.113.7' } },
      { ...map, compute: { ipv4: '203.0.113.7:22' } },
      { ...map, compute: { hostname: 'x' } },
      { ...map, receipt: { enc: new Uint8Array(32), ct: new Uint8Array(32) } },
      { ...map, ccba: map.bid }
    ]) assert.throws(() => decodeRecord(signMap(variant, bob), [CcrType]), refusedWith('RECORD_SCHEMA'))
    for (const createdAt of ['2027-01-15T08:01:01.000Z', '2027-01-15T08:01:00.000+01:00']) {
      assert.throws(() => decodeRecord(signMap({ ...map, createdAt }, bob), [CcrType]), refusedWith('RECORD_SEMANTIC'))
    }
    // The same second in another offset, or with a fraction, is the same time.
    for (const createdAt of ['2027-01-15T09:01:00+01:00', '2027-01-15T08:01:00.999999Z', '2027-01-15T08:01:00Z']) {
      assert.equal(decodeRecord(signMap({ ...map, createdAt }, bob), [CcrType]).value.createdAt, createdAt)
    }
    assert.throws(() => decodeRecord(signMap(map, eve), [CcrType]), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('IP literals', () => {
    for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255', '203.0.113.7']) assert.ok(isIpv4(ok), ok)
    for (const bad of ['256.0.0.1', '010.0.0.1', '1.2.3', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4/32', '', 'a.b.c.d']) assert.ok(!isIpv4(bad), bad)
    for (const ok of ['::', '::1', '2001:db8::7', 'fe80::1:2:3:4', '1:2:3:4:5:6:7:8', '::ffff:192.0.2.1', '1:2:3:4:5:6:1.2.3.4', '2001:DB8::A']) assert.ok(isIpv6(ok), ok)
    for (const bad of ['1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'fe80::1%eth0', '[::1]', ':', '1:2:3:4:5:6:7', '::1.2.3.4:1', 'g::1', '1.2.3.4::', '1:2:3:4:5:6:7::1.2.3.4']) assert.ok(!isIpv6(bad), bad)
  })

  it('RFC 3339 datetimes', () => {
    assert.equal(datetimeFromUnixSecs(T0), '2027-01-15T08:00:00.000Z')
    assert.equal(parseDatetimeMs('2027-01-15T08:00:00.000Z'), T0 * 1000)
    assert.equal(parseDatetimeMs('2027-01-15T10:30:00+02:30'), T0 * 1000)
    for (const bad of ['2027-02-29T00:00:00Z', '2027-04-31T00:00:00Z', '2027-01-15t08:00:00z', '2027-01-15T24:00:00Z', '2027-01-15T08:00:60Z', '2027-01-15T08:00:00-00:00', '2027-1-15T08:00:00Z', '2027-01-15T08:00:00.Z', '2027-01-15T08:00:00.0000000001Z']) {
      assert.ok(!isDatetime(bad), bad)
    }
    assert.ok(isDatetime('2028-02-29T00:00:00Z'))
  })
})
