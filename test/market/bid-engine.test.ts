import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  decideBid, contractCostWei, rateFor, reservationIdFor, CapacityLedger, BID_GRACE_SECS, DECLINE_CODES, rateTableDigest, utf8, bidDeadline,
  signRecord, CcbType, checkCcb, strongRefTo, ContractError,
  type BidInput, type BidDecision, type ProviderCard, type Rate, type Ccrfp
} from '../../src/market/index.js'
import { cardFields, T0 } from '../helpers/cards.js'
import { alice, bob, makeRfp } from './contract-fixtures.js'

const MINE = sha256(utf8('my measurements'))
const THEIRS = sha256(utf8('other measurements'))

function withRates (card: ProviderCard, rates: Rate[]): ProviderCard {
  return { ...card, rates, rateTableDigest: rateTableDigest(rates) }
}

const card = cardFields(bob)

function input (overrides: Partial<BidInput> & { rfp?: BidInput['rfp'] } = {}): BidInput {
  return {
    card,
    rfp: makeRfp(),
    capacity: CapacityLedger.fromCard(card),
    ownLevel: 'Software',
    ownMeasurements: MINE,
    now: T0 + 10,
    ...overrides
  }
}

function declined (d: BidDecision): string {
  return d.kind === 'decline' ? d.code : 'bid'
}

describe('bid engine', () => {
  it('prices from the rate table on the cheapest backend that fits, expiring a grace after the bid deadline', () => {
    const rfp = makeRfp()
    const d = decideBid(input({ rfp }))
    assert.equal(d.kind, 'bid')
    if (d.kind !== 'bid') return
    // local: (2 · 1000 + 4 GiB · 100 + 20 GiB · 10) · 3600 s / 3600 = 2600; aws eu-west-1 would be 5200.
    assert.deepEqual(d.offer, {
      backend: 'local', region: 'local', costWei: 2600n, expiresAtUnixSecs: bidDeadline(rfp.value) + BID_GRACE_SECS,
      cpus: 2, memMiB: 4096, diskGiB: 20, durationSecs: 3600, reservationId: reservationIdFor(rfp)
    })
    assert.equal(BID_GRACE_SECS, 60)
    // The offer makes a CCB that passes the cross-checks.
    const ccb = signRecord(CcbType, {
      embed: strongRefTo(rfp),
      bid: { cost: d.offer.costWei, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } },
      provider: bob.did,
      createdAtUnixSecs: T0 + 10,
      cmesh: { ...d.offer, level: 'Software', sealKey: new Uint8Array(32) }
    } as any, bob)
    checkCcb(ccb, rfp, T0 + 10)
  })

  it('computes ceil((cpus·cpu + memGiB·mem + diskGiB·disk) · secs / 3600) exactly', () => {
    const rate = { cpuHourWei: 1000n, memoryGiBHourWei: 100n, diskGiBHourWei: 10n }
    assert.equal(contractCostWei(rate, { cpus: 2, memMiB: 512, diskGiB: 20 }, 1800), 1125n) // (2000 + 50 + 200) / 2
    assert.equal(contractCostWei(rate, { cpus: 1, memMiB: 1, diskGiB: 1 }, 61), 18n) // 17.12 rounds up
    assert.equal(contractCostWei({ cpuHourWei: 10n ** 30n, memoryGiBHourWei: 0n, diskGiBHourWei: 0n }, { cpus: 4096, memMiB: 1, diskGiB: 1 }, 366 * 86400), 4096n * 10n ** 30n * 366n * 24n)
  })

  it('uses the region\'s own rate when the table has one, else the backend default; unpriced regions are not offered', () => {
    const rates: Rate[] = [
      { backend: 'aws', cpuHourWei: 3000n, memoryGiBHourWei: 0n, diskGiBHourWei: 0n },
      { backend: 'aws', region: 'us-east-1', cpuHourWei: 1000n, memoryGiBHourWei: 0n, diskGiBHourWei: 0n }
    ]
    assert.equal(rateFor(rates, 'aws', 'us-east-1')?.cpuHourWei, 1000n)
    assert.equal(rateFor(rates, 'aws', 'eu-west-1')?.cpuHourWei, 3000n)
    assert.equal(rateFor(rates, 'local', 'local'), undefined)
    const priced = withRates(card, rates)
    const eu = decideBid(input({ card: priced, rfp: makeRfp({ location: { region: 'eu-west-1' } }) }))
    assert.equal(eu.kind === 'bid' && eu.offer.costWei, 6000n)
    const any = decideBid(input({ card: priced }))
    assert.deepEqual(any.kind === 'bid' && [any.offer.backend, any.offer.region, any.offer.costWei], ['aws', 'us-east-1', 2000n], 'cheapest region of the cheapest backend; local has no rate')
    assert.equal(declined(decideBid(input({ card: priced, rfp: makeRfp({ location: { region: 'local' } }) }))), 'REGION_UNSERVED')
  })

  it('falls back to a dearer backend when the cheap one is full, and reuses its own hold on a re-decision', () => {
    const rfp = makeRfp()
    const ledger = CapacityLedger.fromCard(card)
    assert.equal(ledger.reserve('someone-else', 'local', { cpus: 3, memMiB: 0, diskGiB: 0 }, T0 + 1000), 'reserved')
    const d = decideBid(input({ rfp, capacity: ledger }))
    assert.ok(d.kind === 'bid' && d.offer.backend === 'aws' && d.offer.costWei === 5200n)

    const small = withRates({ ...card, backends: card.backends.filter((b) => b.name === 'local') }, card.rates.filter((r) => r.backend === 'local'))
    const l2 = CapacityLedger.fromCard(small)
    const first = decideBid(input({ card: small, rfp, capacity: l2 }))
    assert.ok(first.kind === 'bid')
    assert.equal(l2.reserve(first.offer.reservationId, first.offer.backend, first.offer, first.offer.expiresAtUnixSecs), 'reserved')
    assert.equal(l2.reserve('fill', 'local', { cpus: 2, memMiB: 0, diskGiB: 0 }, T0 + 1000), 'reserved')
    assert.equal(decideBid(input({ card: small, rfp, capacity: l2 })).kind, 'bid', 'its own hold is not a competitor')
    assert.equal(declined(decideBid(input({ card: small, rfp: makeRfp({ createdAtUnixSecs: T0 + 1 }), capacity: l2 }))), 'NO_CAPACITY')
  })

  it('reaches every decline code, each in its place in the check order', () => {
    const localOnly = withRates({ ...card, backends: card.backends.filter((b) => b.name === 'local') }, card.rates.filter((r) => r.backend === 'local'))
    const full = CapacityLedger.fromCard(card)
    full.reserve('full', 'aws', { cpus: 64, memMiB: 0, diskGiB: 0 }, T0 + 10_000)
    type Step = { rfp: Partial<Ccrfp>, rest: Partial<BidInput> }
    let s: Step = {
      rfp: { location: { region: 'ap-south-1' }, cmesh: { scheme: 'vm.gpu', tdx: true, floor: 'TdxRemote', expectedMeasurements: MINE, priceCapWei: 1n } as any },
      rest: { now: T0 + 30, ownLevel: 'TdxLocal', card: localOnly, ownMeasurements: THEIRS, capacity: full, policy: { refuse: [alice.did] } }
    }
    const fixes: Array<(s: Step) => Step> = [
      (s) => ({ ...s, rest: { ...s.rest, now: T0 + 29 } }),
      (s) => ({ ...s, rfp: { ...s.rfp, cmesh: { ...s.rfp.cmesh, scheme: 'vm.ssh' } as any } }),
      (s) => ({ ...s, rest: { ...s.rest, ownLevel: 'TdxRemote' } }),
      (s) => ({ ...s, rest: { ...s.rest, card } }),
      (s) => ({ ...s, rest: { ...s.rest, ownMeasurements: MINE } }),
      (s) => ({ ...s, rfp: { ...s.rfp, location: { country: 'IRL', region: 'eu-west-1' } } }),
      (s) => ({ ...s, rest: { ...s.rest, capacity: CapacityLedger.fromCard(card) } }),
      (s) => ({ ...s, rfp: { ...s.rfp, cmesh: { ...s.rfp.cmesh, priceCapWei: 10n ** 18n } as any } }),
      (s) => ({ ...s, rest: { ...s.rest, policy: {} } })
    ]
    const seen: string[] = []
    for (const fix of fixes) {
      const d = decideBid(input({ rfp: makeRfp(s.rfp), ...s.rest }))
      seen.push(declined(d))
      if (d.kind === 'decline') assert.ok(d.detail.length > 0 && d.detail.length <= 256)
      s = fix(s)
    }
    seen.push(declined(decideBid(input({ rfp: makeRfp(s.rfp), ...s.rest }))))
    assert.deepEqual(seen, [...DECLINE_CODES, 'bid'])
  })

  it('each decline on its own', () => {
    const tdxRfp = (extra: Partial<Ccrfp> = {}) => makeRfp({ ...extra, cmesh: { tdx: true, floor: 'TdxLocal' } as any })
    const localOnly = withRates({ ...card, backends: card.backends.filter((b) => b.name === 'local') }, card.rates.filter((r) => r.backend === 'local'))
    const cases: Array<[string, Partial<BidInput>]> = [
      ['RFP_CLOSED', { now: T0 + 30 }],
      ['SCHEME_UNSUPPORTED', { rfp: makeRfp({ cmesh: { scheme: 'frost-ed25519' } as any }) }],
      ['FLOOR_NOT_MET', { rfp: tdxRfp(), ownLevel: 'Software' }],
      ['TDX_UNAVAILABLE', { rfp: tdxRfp(), ownLevel: 'TdxRemote', card: localOnly }],
      ['MEASUREMENTS_MISMATCH', { rfp: makeRfp({ cmesh: { expectedMeasurements: THEIRS } as any }) }],
      ['REGION_UNSERVED', { rfp: makeRfp({ location: { region: 'ap-south-1' } }) }],
      ['REGION_UNSERVED', { rfp: tdxRfp({ location: { region: 'local' } }), ownLevel: 'TdxLocal' }],
      ['NO_CAPACITY', { rfp: makeRfp({ cpus: 65 }) }],
      ['PRICE_BELOW_RATE', { rfp: makeRfp({ cmesh: { priceCapWei: 2599n } as any }) }],
      ['POLICY_REFUSED', { policy: { refuse: [alice.did] } }],
      ['POLICY_REFUSED', { rfp: makeRfp({ cmesh: { priceCapWei: 2600n } as any }), policy: { minMarginWei: 1n } }],
      ['POLICY_REFUSED', { policy: { maxDurationSecs: 1800 } }]
    ]
    for (const [code, over] of cases) assert.equal(declined(decideBid(input(over))), code, code)
    // At the edges: a cap exactly at cost (plus margin) bids.
    assert.equal(declined(decideBid(input({ rfp: makeRfp({ cmesh: { priceCapWei: 2600n } as any }) }))), 'bid')
    const margin = decideBid(input({ rfp: makeRfp({ cmesh: { priceCapWei: 2700n } as any }), policy: { minMarginWei: 100n } }))
    assert.equal(margin.kind === 'bid' && margin.offer.costWei, 2700n)
    assert.equal(declined(decideBid(input({ rfp: makeRfp({ cmesh: { expectedMeasurements: MINE } as any }) }))), 'bid')
    assert.throws(() => decideBid(input({ policy: { minMarginWei: -1n } })), (e: unknown) => e instanceof ContractError && e.code === 'CONTRACT_BAD_ARGUMENT')
  })
})
