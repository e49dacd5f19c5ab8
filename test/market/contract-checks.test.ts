import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  checkCcb, checkCcba, checkCcr, datetimeFromUnixSecs, checkDecline, checkCcbAnswers, signRecord, strongRefTo, ContractError, DeclineType, CONTRACT_ERROR_CODES,
  type ContractErrorCode
} from '../../src/market/index.js'
import { T0 } from '../helpers/cards.js'
import { alice, bob, carol, eve, declineFields, makeCcb, makeCcba, makeCcr, makeRfp } from './contract-fixtures.js'

function failsWith (code: ContractErrorCode) {
  return (err: unknown) => err instanceof ContractError && err.code === code
}

describe('contract cross-checks', () => {
  const rfp = makeRfp()
  const otherRfp = makeRfp({ createdAtUnixSecs: T0 + 1 })
  // Same author, same second: the same at:// address, a different record. Only the cid tells them apart.
  const twin = makeRfp({ cpus: 3 })
  const ccb = makeCcb(rfp)
  const ccba = makeCcba(rfp, ccb)
  const ccr = makeCcr(rfp, ccb, ccba)

  it('a well-formed chain passes', () => {
    assert.deepEqual([...CONTRACT_ERROR_CODES].sort(), ['CONTRACT_BAD_ARGUMENT', 'CONTRACT_EXPIRED', 'CONTRACT_PAYMENT_MISMATCH', 'CONTRACT_REF_MISMATCH', 'CONTRACT_TERMS_MISMATCH', 'CONTRACT_WRONG_AUTHOR'])
    assert.equal(twin.uri, rfp.uri)
    assert.ok(!twin.cid.equals(rfp.cid))
    checkCcb(ccb, rfp, T0 + 10)
    checkCcba(ccba, ccb, rfp, T0 + 40)
    checkCcr(ccr, ccba, ccb, rfp)
    checkDecline(signRecord(DeclineType, declineFields(rfp), bob), rfp)
  })

  describe('CCB → CCRFP', () => {
    it('refuses a strongRef with the wrong uri, or the right uri and the wrong cid (CONTRACT_REF_MISMATCH)', () => {
      const wrongUri = makeCcb(rfp, { embed: { uri: otherRfp.uri, cid: rfp.cid } })
      assert.throws(() => checkCcb(wrongUri, rfp, T0 + 10), failsWith('CONTRACT_REF_MISMATCH'))
      const wrongCid = makeCcb(rfp, { embed: { uri: rfp.uri, cid: twin.cid } })
      assert.throws(() => checkCcb(wrongCid, rfp, T0 + 10), failsWith('CONTRACT_REF_MISMATCH'))
      assert.throws(() => checkCcb(ccb, twin, T0 + 10), failsWith('CONTRACT_REF_MISMATCH'))
    })

    it('refuses a CCB of another RFP (CONTRACT_REF_MISMATCH)', () => {
      assert.throws(() => checkCcb(makeCcb(otherRfp), rfp, T0 + 10), failsWith('CONTRACT_REF_MISMATCH'))
    })

    it('refuses an expired bid at now (CONTRACT_EXPIRED)', () => {
      checkCcb(ccb, rfp, T0 + 89)
      assert.throws(() => checkCcb(ccb, rfp, T0 + 90), failsWith('CONTRACT_EXPIRED'))
      checkCcbAnswers(ccb, rfp) // time is not its concern
    })

    it('refuses terms that do not answer the RFP (CONTRACT_TERMS_MISMATCH)', () => {
      const regional = makeRfp({ location: { region: 'eu-west-1' }, cmesh: { floor: 'TdxLocal', tdx: true } as any })
      const fine = makeCcb(regional, { cmesh: { region: 'eu-west-1', level: 'TdxRemote' } as any })
      checkCcb(fine, regional, T0 + 10)
      for (const cmesh of [
        { region: 'eu-west-1', level: 'TdxRemote', cpus: 1 },
        { region: 'eu-west-1', level: 'TdxRemote', memMiB: 4095 },
        { region: 'eu-west-1', level: 'TdxRemote', diskGiB: 19 },
        { region: 'eu-west-1', level: 'TdxRemote', durationSecs: 3599 },
        { region: 'us-east-1', level: 'TdxRemote' },
        { region: 'eu-west-1', level: 'Software' }
      ]) assert.throws(() => checkCcb(makeCcb(regional, { cmesh } as any), regional, T0 + 10), failsWith('CONTRACT_TERMS_MISMATCH'), JSON.stringify(cmesh))
      // More than asked is fine.
      checkCcb(makeCcb(regional, { cmesh: { region: 'eu-west-1', level: 'TdxRemote', cpus: 4, memMiB: 8192 } } as any), regional, T0 + 10)
    })
  })

  describe('CCBA → CCRFP, CCB', () => {
    it('refuses a CCBA by someone other than the RFP\'s requester (CONTRACT_WRONG_AUTHOR)', () => {
      assert.throws(() => checkCcba(makeCcba(rfp, ccb, {}, eve), ccb, rfp, T0 + 40), failsWith('CONTRACT_WRONG_AUTHOR'))
    })

    it('refuses wrong embed or bid references (CONTRACT_REF_MISMATCH)', () => {
      assert.throws(() => checkCcba(makeCcba(rfp, ccb, { embed: strongRefTo(otherRfp) }), ccb, rfp, T0 + 40), failsWith('CONTRACT_REF_MISMATCH'))
      assert.throws(() => checkCcba(makeCcba(rfp, ccb, { embed: { uri: rfp.uri, cid: twin.cid } }), ccb, rfp, T0 + 40), failsWith('CONTRACT_REF_MISMATCH'))
      const carolsBid = makeCcb(rfp, {}, carol)
      assert.throws(() => checkCcba(makeCcba(rfp, carolsBid), ccb, rfp, T0 + 40), failsWith('CONTRACT_REF_MISMATCH'))
      assert.throws(() => checkCcba(makeCcba(rfp, ccb, { bid: { uri: ccb.uri, cid: carolsBid.cid } }), ccb, rfp, T0 + 40), failsWith('CONTRACT_REF_MISMATCH'))
    })

    it('refuses a CCBA naming a CCB that was for another RFP (CONTRACT_REF_MISMATCH)', () => {
      const strayBid = makeCcb(otherRfp)
      assert.throws(() => checkCcba(makeCcba(rfp, strayBid), strayBid, rfp, T0 + 40), failsWith('CONTRACT_REF_MISMATCH'))
    })

    it('refuses an accept that arrives after the bid expired (CONTRACT_EXPIRED)', () => {
      assert.throws(() => checkCcba(ccba, ccb, rfp, T0 + 90), failsWith('CONTRACT_EXPIRED'))
    })
  })

  describe('CCR → CCRFP, CCB, CCBA', () => {
    it('refuses a CCR by someone other than the bidder (CONTRACT_WRONG_AUTHOR)', () => {
      assert.throws(() => checkCcr(makeCcr(rfp, ccb, ccba, {}, carol), ccba, ccb, rfp), failsWith('CONTRACT_WRONG_AUTHOR'))
      assert.throws(() => checkCcr(makeCcr(rfp, ccb, ccba, {}, alice), ccba, ccb, rfp), failsWith('CONTRACT_WRONG_AUTHOR'))
    })

    it('refuses each wrong reference (CONTRACT_REF_MISMATCH)', () => {
      const otherAccept = makeCcba(rfp, ccb, { createdAtUnixSecs: T0 + 41 })
      for (const overrides of [
        { rfp: strongRefTo(otherRfp) },
        { rfp: { uri: rfp.uri, cid: twin.cid } },
        { bid: strongRefTo(makeCcb(rfp, {}, carol)) },
        { ccba: strongRefTo(otherAccept) },
        { ccba: { uri: ccba.uri, cid: otherAccept.cid } }
      ]) assert.throws(() => checkCcr(makeCcr(rfp, ccb, ccba, overrides), ccba, ccb, rfp), failsWith('CONTRACT_REF_MISMATCH'), Object.keys(overrides)[0])
      // The chain under it is checked too: an accept signed by someone else.
      const evesAccept = makeCcba(rfp, ccb, {}, eve)
      assert.throws(() => checkCcr(makeCcr(rfp, ccb, evesAccept), evesAccept, ccb, rfp), failsWith('CONTRACT_WRONG_AUTHOR'))
    })

    it('does not expire: provisioning may end after the bid did', () => {
      const late = makeCcr(rfp, ccb, ccba, { createdAtUnixSecs: T0 + 600, createdAt: datetimeFromUnixSecs(T0 + 600) })
      assert.ok(late.value.createdAtUnixSecs > ccb.value.cmesh.expiresAtUnixSecs)
      checkCcr(late, ccba, ccb, rfp)
    })
  })

  it('a decline must name the RFP (CONTRACT_REF_MISMATCH)', () => {
    assert.throws(() => checkDecline(signRecord(DeclineType, declineFields(otherRfp), bob), rfp), failsWith('CONTRACT_REF_MISMATCH'))
  })
})
