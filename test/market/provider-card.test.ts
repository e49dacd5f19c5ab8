import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  ATTESTATION_LEVELS, meets, minLevel, isAttestationLevel, capabilityUnion, isEligible, isEligibleFor,
  cardDigest, bytesEqual, type ComputeRequirements
} from '../../src/market/index.js'
import { cardFields, makeCard, testIdentity, T0 } from '../helpers/cards.js'

describe('attestation ladder', () => {
  it('is totally ordered, lowest first, and meets() is >=', () => {
    assert.deepEqual(ATTESTATION_LEVELS, ['Software', 'TdxLocal', 'TdxRemote', 'TdxRaTlsBidirectional', 'TdxPlusReproducibleBuild'])
    for (const [i, a] of ATTESTATION_LEVELS.entries()) {
      for (const [j, b] of ATTESTATION_LEVELS.entries()) {
        assert.equal(meets(a, b), i >= j, `${a} meets ${b}`)
        assert.equal(minLevel(a, b), i <= j ? a : b)
      }
    }
    assert.equal(isAttestationLevel('TdxLocal'), true)
    assert.equal(isAttestationLevel('tdxlocal'), false)
  })
})

describe('provider card', () => {
  const alice = testIdentity(1)
  const card = makeCard(alice, { attestationLevel: 'TdxRemote', schemesSupported: ['vm.ssh', 'vm.tdx'] })

  it('cardDigest folds every field: any change is a new digest', () => {
    const base = cardFields(alice)
    const digest = cardDigest(makeCard(alice))
    const variants = [
      { capacityPerSecond: 11 }, { feePerPartialWei: 1n }, { committedAtUnixSecs: T0 + 1 }, { expiresAtUnixSecs: T0 + 1 },
      { listenAddrs: [] }, { schemesSupported: ['vm.tdx'] }, { successor: testIdentity(2).did },
      { backends: [{ ...base.backends[0]!, maxCpu: 5 }] , rates: base.rates.filter((r) => r.backend === 'local') }
    ]
    for (const v of variants) assert.ok(!bytesEqual(cardDigest(makeCard(alice, v as any)), digest), JSON.stringify(Object.keys(v)))
    assert.ok(bytesEqual(cardDigest(makeCard(alice)), digest), 'same fields, same digest')
  })

  it('unions capabilities across backends', () => {
    const u = capabilityUnion(card.value)
    assert.deepEqual(u.regions, ['eu-west-1', 'local', 'us-east-1'])
    assert.deepEqual(u.tdxRegions, ['eu-west-1', 'us-east-1'])
    assert.equal(u.maxCpu, 64)
    assert.equal(u.tdx, true)
    assert.deepEqual(u.backendKinds, ['aws-ec2', 'local'])
  })

  it('isEligible = meets floor AND serves the scheme, claimed level unless a verified one is given', () => {
    assert.equal(isEligible(card.value, 'vm.ssh', 'TdxRemote'), true)
    assert.equal(isEligible(card.value, 'vm.ssh', 'TdxRaTlsBidirectional'), false)
    assert.equal(isEligible(card.value, 'frost-ed25519', 'Software'), false)
    assert.equal(isEligible(card.value, 'vm.ssh', 'TdxLocal', 'Software'), false, 'verified level overrides the claim')
  })

  it('isEligibleFor needs one backend to serve region, TDX and resources together', () => {
    const req: ComputeRequirements = { scheme: 'vm.ssh', floor: 'Software', cpu: 2, memoryMiB: 4096, diskGiB: 20, tdx: false }
    assert.deepEqual(isEligibleFor(card.value, req), { eligible: true, backend: 'local' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, scheme: 'x' }), { eligible: false, reason: 'SCHEME_UNSUPPORTED' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, floor: 'TdxPlusReproducibleBuild' }), { eligible: false, reason: 'FLOOR_NOT_MET' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, region: 'ap-south-1' }), { eligible: false, reason: 'REGION_UNSERVED' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, region: 'local', tdx: true }), { eligible: false, reason: 'TDX_UNAVAILABLE' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, region: 'local', cpu: 8 }), { eligible: false, reason: 'RESOURCES_EXCEEDED' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, cpu: 8, tdx: true }), { eligible: true, backend: 'aws' })
    assert.deepEqual(isEligibleFor(card.value, { ...req, cpu: 65 }), { eligible: false, reason: 'RESOURCES_EXCEEDED' })
  })
})
