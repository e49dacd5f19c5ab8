import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeRecord, signRecord, strongRefTo, ContractError, LifecycleError, RecordError,
  HeartbeatType, TerminationType, HEARTBEAT_NSID, TERMINATION_NSID, TERMINATION_REASONS, MAX_TERMINATION_DETAIL_CHARS,
  MAX_HEARTBEAT_BYTES, MAX_TERMINATION_BYTES, LIFECYCLE_ERROR_CODES,
  contractParties, checkHeartbeat, checkTermination,
  type Heartbeat, type Termination, type Identity
} from '../../src/market/index.js'
import { alice, bob, eve, makeCcb, makeCcba, makeRfp, refusedWith, signMap, wireMap } from './contract-fixtures.js'
import { T0 } from '../helpers/cards.js'

const rfp = makeRfp()
const ccb = makeCcb(rfp)
const ccba = makeCcba(rfp, ccb)
const parties = contractParties(ccba, ccb)
const NOW = T0 + 600

function heartbeat (over: Partial<Heartbeat> = {}, by: Identity = bob) {
  return signRecord(HeartbeatType, { contract: strongRefTo(ccba), provider: by.did, seq: 1, atUnixSecs: NOW, periodSecs: 30, usage: { uptimeSecs: 540, cpuMillis: 1234, memMiB: 4096 }, ...over }, by)
}

function termination (over: Partial<Termination> = {}, by: Identity = bob) {
  return signRecord(TerminationType, { contract: strongRefTo(ccba), by: by.did, reason: 'EXPIRED', detail: 'valid-to reached', atUnixSecs: NOW, usage: { uptimeSecs: 3600 }, ...over }, by)
}

const contractCode = (code: string) => (err: unknown) => err instanceof ContractError && err.code === code
const lifecycleCode = (code: string) => (err: unknown) => err instanceof LifecycleError && err.code === code
const recordCode = (code: string) => (err: unknown) => err instanceof RecordError && err.code === code

describe('lifecycle records', () => {
  it('have our names, stable reasons and codes', () => {
    assert.equal(HEARTBEAT_NSID, 'org.computemesh.contract.heartbeat')
    assert.equal(TERMINATION_NSID, 'org.computemesh.contract.termination')
    assert.deepEqual([...TERMINATION_REASONS], ['EXPIRED', 'REQUESTER', 'PROVIDER_FAULT', 'PAYMENT_MISSING', 'PROVIDER_SHUTDOWN'])
    assert.ok(LIFECYCLE_ERROR_CODES.includes('LIFECYCLE_SEQ_REPLAYED'))
  })

  it('a heartbeat round-trips, names the CCBA by its wire strongRef, and stays well under its cap', () => {
    const hb = heartbeat()
    const back = decodeRecord(hb.bytes, [HeartbeatType])
    assert.deepEqual(back.value, hb.value)
    assert.equal(back.author, bob.did)
    assert.deepEqual(wireMap(hb.bytes).contract, { uri: ccba.uri, cid: ccba.cid.toString() })
    assert.ok(hb.bytes.length < MAX_HEARTBEAT_BYTES / 2, `${hb.bytes.length} bytes`)
    // Usage fields the backend could not measure are left out, not zero.
    const bare = heartbeat({ usage: { uptimeSecs: 1 } })
    assert.deepEqual(wireMap(bare.bytes).usage, { uptimeSecs: 1 })
  })

  it('a termination round-trips every reason, with and without usage, and the longest detail fits its cap', () => {
    for (const reason of TERMINATION_REASONS) {
      const t = termination({ reason, detail: 'é'.repeat(MAX_TERMINATION_DETAIL_CHARS) })
      assert.deepEqual(decodeRecord(t.bytes, [TerminationType]).value, t.value)
      assert.ok(t.bytes.length <= MAX_TERMINATION_BYTES)
    }
    const { usage: _u, ...request } = termination({ reason: 'REQUESTER' }, alice).value
    const asked = signRecord(TerminationType, request, alice)
    assert.equal('usage' in wireMap(asked.bytes), false)
  })

  it('the schemas refuse bad seqs, periods, reasons, details, fractional usage, unknown fields and a reference to anything but a CCBA', () => {
    const hb = wireMap(heartbeat().bytes)
    for (const variant of [
      { ...hb, seq: 0 },
      { ...hb, periodSecs: 0 },
      { ...hb, periodSecs: 3601 },
      { ...hb, usage: { ...hb.usage, cpuMillis: -1 } },
      { ...hb, usage: { ...hb.usage, cpuSecs: 1 } },
      { ...hb, contract: { uri: ccb.uri, cid: ccb.cid.toString() } },
      { ...hb, extra: true }
    ]) assert.throws(() => decodeRecord(signMap(variant, bob), [HeartbeatType]), refusedWith('RECORD_SCHEMA'))
    assert.throws(() => decodeRecord(signMap({ ...hb, usage: { ...hb.usage, cpuMillis: 1.5 } }, bob), [HeartbeatType]), (err: unknown) => err instanceof RecordError)
    const t = wireMap(termination().bytes)
    for (const variant of [
      { ...t, reason: 'BORED' },
      { ...t, reason: 'expired' },
      { ...t, detail: 'x'.repeat(MAX_TERMINATION_DETAIL_CHARS + 1) },
      { ...t, contract: { uri: rfp.uri, cid: rfp.cid.toString() } }
    ]) assert.throws(() => decodeRecord(signMap(variant, bob), [TerminationType]), refusedWith('RECORD_SCHEMA'))
    assert.throws(() => decodeRecord(signMap(hb, eve), [HeartbeatType]), refusedWith('RECORD_BAD_SIGNATURE'))
    assert.throws(() => decodeRecord(heartbeat().bytes, [TerminationType]), refusedWith('RECORD_UNKNOWN_TYPE'))
  })

  it('the parties are the bid\'s provider and the accept\'s requester', () => {
    assert.equal(parties.provider, bob.did)
    assert.equal(parties.requester, alice.did)
    assert.equal(parties.ccba.uri, ccba.uri)
    const other = makeCcb(rfp, { createdAtUnixSecs: T0 + 6 })
    assert.throws(() => contractParties(ccba, other), contractCode('CONTRACT_REF_MISMATCH'))
  })

  it('checkHeartbeat: this contract, its provider, a growing seq, ±300 s of now', () => {
    checkHeartbeat(heartbeat(), parties, undefined, NOW)
    checkHeartbeat(heartbeat({ seq: 8 }), parties, 7, NOW + 300)
    checkHeartbeat(heartbeat(), parties, undefined, NOW - 300)
    const another = makeCcba(rfp, ccb, { createdAtUnixSecs: T0 + 41 })
    assert.throws(() => checkHeartbeat(heartbeat({ contract: strongRefTo(another) }), parties, undefined, NOW), contractCode('CONTRACT_REF_MISMATCH'))
    // Same uri, another cid: a forged reference.
    assert.throws(() => checkHeartbeat(heartbeat({ contract: { uri: ccba.uri, cid: another.cid } }), parties, undefined, NOW), contractCode('CONTRACT_REF_MISMATCH'))
    assert.throws(() => checkHeartbeat(heartbeat({}, eve), parties, undefined, NOW), contractCode('CONTRACT_WRONG_AUTHOR'))
    assert.throws(() => checkHeartbeat(heartbeat({}, alice), parties, undefined, NOW), contractCode('CONTRACT_WRONG_AUTHOR'))
    assert.throws(() => checkHeartbeat(heartbeat({ seq: 7 }), parties, 7, NOW), lifecycleCode('LIFECYCLE_SEQ_REPLAYED'))
    assert.throws(() => checkHeartbeat(heartbeat({ seq: 3 }), parties, 7, NOW), lifecycleCode('LIFECYCLE_SEQ_REPLAYED'))
    assert.throws(() => checkHeartbeat(heartbeat(), parties, undefined, NOW - 301), recordCode('RECORD_FROM_FUTURE'))
    assert.throws(() => checkHeartbeat(heartbeat(), parties, undefined, NOW + 301), recordCode('RECORD_STALE'))
  })

  it('checkTermination: the provider ends with any reason; the requester only asks, REQUESTER and no usage', () => {
    for (const reason of TERMINATION_REASONS) checkTermination(termination({ reason }), parties, 'provider', NOW)
    const { usage: _u, ...ask } = termination({ reason: 'REQUESTER' }, alice).value
    checkTermination(signRecord(TerminationType, ask, alice), parties, 'requester', NOW)
    assert.throws(() => checkTermination(termination({ reason: 'REQUESTER' }, alice), parties, 'requester', NOW), lifecycleCode('LIFECYCLE_REASON_INVALID'))
    assert.throws(() => checkTermination(signRecord(TerminationType, { ...ask, reason: 'PROVIDER_FAULT' }, alice), parties, 'requester', NOW), lifecycleCode('LIFECYCLE_REASON_INVALID'))
    // The wrong party for the place: the requester's request is not the provider's record, and the reverse.
    assert.throws(() => checkTermination(signRecord(TerminationType, ask, alice), parties, 'provider', NOW), contractCode('CONTRACT_WRONG_AUTHOR'))
    assert.throws(() => checkTermination(termination({ reason: 'REQUESTER', usage: undefined } as Partial<Termination>), parties, 'requester', NOW), contractCode('CONTRACT_WRONG_AUTHOR'))
    assert.throws(() => checkTermination(termination({}, eve), parties, 'provider', NOW), contractCode('CONTRACT_WRONG_AUTHOR'))
    assert.throws(() => checkTermination(termination({ contract: strongRefTo(makeCcba(rfp, ccb, { createdAtUnixSecs: T0 + 41 })) }), parties, 'provider', NOW), contractCode('CONTRACT_REF_MISMATCH'))
  })

  it('checkTermination\'s clock: fresh is ±300 s; a re-sent record may be old, but not from before its contract nor from the future', () => {
    assert.throws(() => checkTermination(termination(), parties, 'provider', NOW + 301), recordCode('RECORD_STALE'))
    assert.throws(() => checkTermination(termination(), parties, 'provider', NOW - 301), recordCode('RECORD_FROM_FUTURE'))
    checkTermination(termination(), parties, 'provider', NOW + 86_400, { fresh: false })
    assert.throws(() => checkTermination(termination(), parties, 'provider', NOW - 301, { fresh: false }), recordCode('RECORD_FROM_FUTURE'))
    const accepted = ccba.value.createdAtUnixSecs
    checkTermination(termination({ atUnixSecs: accepted - 300 }), parties, 'provider', NOW, { fresh: false })
    assert.throws(() => checkTermination(termination({ atUnixSecs: accepted - 301 }), parties, 'provider', NOW, { fresh: false }), recordCode('RECORD_STALE'))
  })
})
