/** A paid bid's record rules, and checkPaidAccept: the accept updated to name its CCBAP, and nothing else changed. */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  signRecord, strongRefTo, checkPaidAccept, isPaidBid, ContractError, RecordError, CcbapType, CcbaType, CcbType,
  assetId, parseAssetId, x402ResourceUrl, x402PaymentUrl, paymentCount, paymentSchedule, periodCost, totalCost, sameRequirements, exactRequirements, fillWifSubject, subjectMatches,
  type Ccbap, type ContractErrorCode, type SignedCcb, type SignedCcba
} from '../../src/market/index.js'
import { T0 } from '../helpers/cards.js'
import { alice, bob, eve, makeCcb, makeCcba, makeRfp, ccbFields } from './contract-fixtures.js'

const NETWORK = 'eip155:31337'
const TOKEN = '0x5fbdb2315678afecb367f032d93f642f64180aa3'
const TXID = `0x${'ab'.repeat(32)}`
const PAYER = `0x${'11'.repeat(20)}`

function failsWith (code: ContractErrorCode) {
  return (err: unknown) => err instanceof ContractError && err.code === code
}

describe('paid bids and paid accepts', () => {
  const rfp = makeRfp()
  const paidBid = (over: Partial<Parameters<typeof makeCcb>[1]> = {}): SignedCcb => makeCcb(rfp, {
    bid: { cost: 1_000_000n, currency: assetId(NETWORK, TOKEN), frequency: 'one-time', prepay: true, x402: { base_url: 'http://127.0.0.1:9/x402' } },
    ...over
  })
  const ccb = paidBid()
  const unpaid = makeCcba(rfp, ccb)
  const ccbapOf = (over: Partial<Ccbap> = {}, cmesh: Partial<Ccbap['cmesh']> = {}, by = alice) => signRecord(CcbapType, {
    embed: strongRefTo(ccb), txid: TXID, requester: by.did, createdAtUnixSecs: T0 + 45,
    cmesh: { ccba: strongRefTo(unpaid), network: NETWORK, payer: PAYER, amount: '1000000', ...cmesh },
    ...over
  }, by)
  const paidOf = (ccbap: { uri: string, cid: any }, base: SignedCcba = unpaid): SignedCcba => signRecord(CcbaType, { ...base.value, payment: strongRefTo(ccbap as any) }, alice)

  it('a paid bid names a CAIP-19 asset and an http(s) x402 endpoint; an unsettled one names no endpoint and is one-time, not prepaid; only per-period bids have a period', () => {
    assert.ok(isPaidBid(ccb))
    assert.deepEqual(parseAssetId(ccb.value.bid.currency), { network: NETWORK, asset: TOKEN })
    const refused = (fn: () => unknown) => assert.throws(fn, (err: unknown) => err instanceof RecordError && err.code === 'RECORD_SEMANTIC')
    refused(() => paidBid({ bid: { ...ccb.value.bid, x402: { base_url: '' } } }))
    paidBid({ bid: { ...ccb.value.bid, prepay: false } })
    const perPeriod = paidBid({ bid: { ...ccb.value.bid, frequency: 'per-period' }, cmesh: { ...ccb.value.cmesh, periodSecs: 600 } })
    assert.equal(perPeriod.value.cmesh.periodSecs, 600)
    refused(() => paidBid({ bid: { ...ccb.value.bid, frequency: 'per-period' } }))
    refused(() => paidBid({ cmesh: { ...ccb.value.cmesh, periodSecs: 600 } }))
    refused(() => makeCcb(rfp, { bid: { ...ccbFields(rfp).bid, prepay: true } }))
    refused(() => makeCcb(rfp, { bid: { ...ccbFields(rfp).bid, frequency: 'per-period' }, cmesh: { ...ccbFields(rfp).cmesh, periodSecs: 600 } }))
    refused(() => makeCcb(rfp, { bid: { ...ccbFields(rfp).bid, x402: { base_url: 'http://127.0.0.1/x402' } } }))
    assert.throws(() => paidBid({ bid: { ...ccb.value.bid, currency: `eip155:1/erc20:${TOKEN.toUpperCase().replace('0X', '0x')}` } }), RecordError, 'addresses are lower-case in records')
    assert.throws(() => signRecord(CcbType, { ...ccb.value, bid: { ...ccb.value.bid, currency: 'USDC' } }, bob), RecordError)
  })

  it('the accept updated with its payment passes', () => {
    const ccbap = ccbapOf()
    const paid = paidOf(ccbap)
    assert.equal(paid.uri, unpaid.uri, 'same at:// address: an update')
    checkPaidAccept(paid, unpaid, ccbap, ccb)
  })

  it('refuses an accept that changed beyond its payment, or names another CCBAP', () => {
    const ccbap = ccbapOf()
    const changed = signRecord(CcbaType, { ...unpaid.value, cmesh: { ...unpaid.value.cmesh, wifAudience: 'https://elsewhere' }, payment: strongRefTo(ccbap) }, alice)
    assert.throws(() => checkPaidAccept(changed, unpaid, ccbap, ccb), failsWith('CONTRACT_PAYMENT_MISMATCH'))
    const later = signRecord(CcbaType, { ...unpaid.value, createdAtUnixSecs: T0 + 41, payment: strongRefTo(ccbap) }, alice)
    assert.throws(() => checkPaidAccept(later, unpaid, ccbap, ccb), failsWith('CONTRACT_PAYMENT_MISMATCH'))
    assert.throws(() => checkPaidAccept(paidOf(ccbapOf({ txid: `0x${'cd'.repeat(32)}` })), unpaid, ccbap, ccb), failsWith('CONTRACT_REF_MISMATCH'))
    assert.throws(() => checkPaidAccept(unpaid, unpaid, ccbap, ccb), failsWith('CONTRACT_PAYMENT_MISMATCH'))
  })

  it('refuses a CCBAP for another bid, another accept, another network, another amount, or by someone else', () => {
    const other = paidBid({ createdAtUnixSecs: T0 + 2 })
    const cases: Array<[ReturnType<typeof ccbapOf>, ContractErrorCode]> = [
      [ccbapOf({ embed: strongRefTo(other) }), 'CONTRACT_REF_MISMATCH'],
      [ccbapOf({}, { ccba: strongRefTo(makeCcba(rfp, ccb, { createdAtUnixSecs: T0 + 42 })) }), 'CONTRACT_REF_MISMATCH'],
      [ccbapOf({}, { network: 'eip155:1' }), 'CONTRACT_PAYMENT_MISMATCH'],
      [ccbapOf({}, { amount: '999999' }), 'CONTRACT_PAYMENT_MISMATCH'],
      [ccbapOf({ requester: eve.did }, {}, eve), 'CONTRACT_WRONG_AUTHOR']
    ]
    for (const [ccbap, code] of cases) assert.throws(() => checkPaidAccept(paidOf(ccbap), unpaid, ccbap, ccb), failsWith(code), code)
  })

  it('payment plans: counts, totals, schedules (prepaid at the start of each period, else at its end), per-period prices', () => {
    const plan = { cost: 10n, frequency: 'per-period' as const, prepay: true, periodSecs: 20, durationSecs: 50 }
    assert.equal(paymentCount(plan), 3)
    assert.equal(totalCost(plan), 30n)
    assert.deepEqual(paymentSchedule(plan, 1000), [{ index: 0, dueUnixSecs: 1000 }, { index: 1, dueUnixSecs: 1020 }, { index: 2, dueUnixSecs: 1040 }])
    assert.deepEqual(paymentSchedule({ ...plan, prepay: false }, 1000), [{ index: 0, dueUnixSecs: 1020 }, { index: 1, dueUnixSecs: 1040 }, { index: 2, dueUnixSecs: 1050 }])
    assert.deepEqual(paymentSchedule({ cost: 7n, frequency: 'one-time', prepay: false, durationSecs: 50 }, 1000), [{ index: 0, dueUnixSecs: 1050 }])
    assert.equal(totalCost({ cost: 7n, frequency: 'one-time', prepay: true, durationSecs: 50 }), 7n)
    assert.equal(periodCost(100n, 50, 20), 33n, 'rounded down: three payments never exceed the total')
    assert.equal(x402PaymentUrl('http://h/x402', 'at://a', 'c', 0), 'http://h/x402/ccr/at%3A%2F%2Fa/c')
    assert.equal(x402PaymentUrl('http://h/x402', 'at://a', 'c', 2), 'http://h/x402/ccr/at%3A%2F%2Fa/c/2')
  })

  it('x402 resource URLs, requirements and WIF subjects', () => {
    assert.equal(x402ResourceUrl('http://h:1/x402/', 'at://did:key:z/a.b/3k', 'bafy'), 'http://h:1/x402/ccr/at%3A%2F%2Fdid%3Akey%3Az%2Fa.b%2F3k/bafy')
    const asked = exactRequirements({ network: NETWORK, asset: TOKEN, payTo: PAYER }, 5n, { name: 'T', version: '1' }, 300)
    assert.ok(sameRequirements(asked, { ...asked, asset: TOKEN.toUpperCase().replace('0X', '0x') }))
    assert.ok(!sameRequirements(asked, { ...asked, amount: '4' }))
    assert.ok(!sameRequirements(asked, { ...asked, payTo: `0x${'22'.repeat(20)}` }))
    assert.ok(!sameRequirements(asked, { ...asked, extra: { name: 'T', version: '2' } }))
    assert.equal(fillWifSubject('actx:{ctx}:{did}:role:{role}', { ctx: 'c1', did: 'did:plc:abc', role: 'r' }), 'actx:c1:plc:abc:role:r')
    assert.ok(subjectMatches('actx:*:plc:abc:role:r', 'actx:c1:plc:abc:role:r'))
  })
})
