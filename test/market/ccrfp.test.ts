import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  decodeRecord, signRecord, CcrfpType, CCRFP_NSID, MAX_CCRFP_BYTES, bidDeadline, requestedResources,
  userDataRef, userDataRefFromDigest, parseUserDataRef, isUserDataRef, userDataMatches, utf8, toHex
} from '../../src/market/index.js'
import { T0 } from '../helpers/cards.js'
import { alice, eve, makeRfp, rfpFields, refusedWith, signMap, wireMap, USER_DATA } from './contract-fixtures.js'

describe('CCRFP (compute-contract lexicon)', () => {
  const rfp = makeRfp({ location: { country: 'IRL', region: 'eu-west-1' }, cmesh: { expectedMeasurements: sha256(utf8('manifest')) } as any })

  it('round-trips through signRecord/decodeRecord', () => {
    const again = decodeRecord(rfp.bytes, [CcrfpType])
    assert.deepEqual(again.value, rfp.value)
    assert.equal(again.author, alice.did)
    assert.equal(again.type.nsid, 'com.publicdomainrelay.temp.ccrfp')
    assert.equal(CCRFP_NSID, 'com.publicdomainrelay.temp.ccrfp')
    assert.equal(again.value.cmesh.priceCapWei, 10n ** 15n)
    assert.ok(rfp.bytes.length <= MAX_CCRFP_BYTES)
  })

  it('uses exactly the lexicon field names and formats, plus requester, createdAtUnixSecs and cmesh', () => {
    const map = wireMap(rfp.bytes)
    assert.deepEqual(Object.keys(map).sort(), ['$type', 'cmesh', 'cpus', 'createdAtUnixSecs', 'disk', 'location', 'mem', 'network', 'requester', 'role', 'sig', 'user_data', 'v'])
    assert.equal(map.cpus, 2)
    assert.equal(map.mem, '4G')
    assert.equal(map.disk, '20G')
    assert.equal(map.network, '500G')
    assert.deepEqual(map.location, { country: 'IRL', region: 'eu-west-1' })
    assert.equal(map.role, 'worker')
    assert.equal(typeof map.user_data, 'string')
    assert.equal(map.cmesh.priceCapWei, '1000000000000000', 'wei as a decimal string on the wire')
    // Nothing outside the lexicon's names but the three named additions.
    const lexicon = ['cpus', 'mem', 'disk', 'network', 'location', 'role', 'user_data']
    assert.deepEqual(Object.keys(map).filter((k) => !lexicon.includes(k)).sort(), ['$type', 'cmesh', 'createdAtUnixSecs', 'requester', 'sig', 'v'])
  })

  it('user_data is a sealed reference to the plaintext, never the plaintext', () => {
    const ref = userDataRef(USER_DATA)
    assert.equal(ref, `cmesh-sealed:sha256:${toHex(sha256(utf8(USER_DATA)))}`)
    assert.equal(rfp.value.user_data, ref)
    assert.ok(!rfp.value.user_data.includes('cloud-config'))
    assert.deepEqual(parseUserDataRef(ref), sha256(utf8(USER_DATA)))
    assert.equal(userDataRefFromDigest(sha256(utf8(USER_DATA))), ref)
    assert.ok(userDataMatches(ref, USER_DATA))
    assert.ok(userDataMatches(ref, utf8(USER_DATA)))
    assert.ok(!userDataMatches(ref, `${USER_DATA} `))
    assert.ok(isUserDataRef(ref))
    for (const bad of [USER_DATA, ref.toUpperCase(), ref.slice(0, -1), `${ref}0`, ref.replace('sha256', 'sha512'), `cmesh-sealed:sha256:${'g'.repeat(64)}`, ` ${ref}`]) {
      assert.ok(!isUserDataRef(bad), bad)
      assert.throws(() => parseUserDataRef(bad), TypeError)
    }
    assert.throws(() => userDataRefFromDigest(new Uint8Array(31)), TypeError)
  })

  it('refuses wrong types, bad sizes and plaintext-looking user_data (RECORD_SCHEMA)', () => {
    const map = wireMap(rfp.bytes)
    const bad: Array<Record<string, unknown>> = [
      { ...map, cpus: 0 },
      { ...map, cpus: '2' },
      { ...map, cpus: 5000 },
      { ...map, mem: '4GB' },
      { ...map, mem: '4 G' },
      { ...map, mem: '0G' },
      { ...map, mem: '04G' },
      { ...map, disk: '1.5T' },
      { ...map, disk: 20 },
      { ...map, network: '500g' },
      { ...map, user_data: '#cloud-config\npackages: [python3]\n' },
      { ...map, user_data: toHex(sha256(utf8(USER_DATA))) },
      { ...map, user_data: map.user_data.toUpperCase() },
      { ...map, location: {} },
      { ...map, location: { region: 'eu west' } },
      { ...map, location: { region: 'x', city: 'Dublin' } },
      { ...map, role: '' },
      { ...map, extra: 1 },
      { ...map, cmesh: { ...map.cmesh, priceCapWei: 5 } },
      { ...map, cmesh: { ...map.cmesh, floor: 'TdxSuper' } },
      { ...map, cmesh: { ...map.cmesh, bidWindowSecs: 601 } },
      { ...map, cmesh: { ...map.cmesh, durationSecs: 59 } },
      { ...map, cmesh: { ...map.cmesh, expectedMeasurements: new Uint8Array(31) } },
      { ...map, cmesh: { ...map.cmesh, surprise: true } }
    ]
    for (const { cpus: _c, ...rest } of [map]) bad.push(rest)
    for (const { network: _n, ...rest } of [map]) bad.push(rest)
    for (const { user_data: _u, ...rest } of [map]) bad.push(rest)
    for (const variant of bad) assert.throws(() => decodeRecord(signMap(variant, alice), [CcrfpType]), refusedWith('RECORD_SCHEMA'), JSON.stringify(variant, (_k, v) => typeof v === 'bigint' ? String(v) : v).slice(0, 120))
  })

  it('refuses the pre-lexicon shape (resources / requirements / userDataDigest)', () => {
    const { cpus: _c, mem: _m, disk: _d, network: _n, user_data: _u, cmesh, ...map } = wireMap(rfp.bytes)
    const old = { ...map, resources: { cpu: 2, memoryMiB: 4096, diskGiB: 20 }, requirements: cmesh, userDataDigest: new Uint8Array(32) }
    assert.throws(() => decodeRecord(signMap(old, alice), [CcrfpType]), refusedWith('RECORD_SCHEMA'))
  })

  it('a TDX request needs a TDX floor (RECORD_SEMANTIC)', () => {
    assert.throws(() => makeRfp({ cmesh: { tdx: true, floor: 'Software' } as any }), refusedWith('RECORD_SEMANTIC'))
    assert.equal(makeRfp({ cmesh: { tdx: true, floor: 'TdxLocal' } as any }).value.cmesh.tdx, true)
  })

  it('only its requester can sign it', () => {
    assert.throws(() => signRecord(CcrfpType, rfpFields(), eve), refusedWith('RECORD_BAD_SIGNATURE'))
    assert.throws(() => decodeRecord(signMap(wireMap(rfp.bytes), eve), [CcrfpType]), refusedWith('RECORD_BAD_SIGNATURE'))
  })

  it('bid deadline and numeric resources', () => {
    assert.equal(bidDeadline(rfp.value), T0 + 30)
    assert.deepEqual(requestedResources(rfp.value), { cpus: 2, memMiB: 4096, diskGiB: 20, networkGiB: 500 })
    assert.deepEqual(requestedResources(makeRfp({ mem: '512M', disk: '1T', network: '500M' }).value), { cpus: 2, memMiB: 512, diskGiB: 1024, networkGiB: 1 })
  })
})
