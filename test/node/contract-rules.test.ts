/** What the contract flow refuses, and what a provider restart does to a grant. */
import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Connection } from '@libp2p/interface'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { decodeRecord, signRecord } from '../../src/market/record.js'
import { CcbType, type SignedCcb } from '../../src/market/ccb.js'
import { CcbaType } from '../../src/market/ccba.js'
import { CcrfpType, userDataRef, type Ccrfp, type SignedCcrfp } from '../../src/market/ccrfp.js'
import { DeclineType } from '../../src/market/decline.js'
import { strongRefTo } from '../../src/market/strong-ref.js'
import { generateReceiptKeyPair, sealBytes, USER_DATA_INFO } from '../../src/market/sealed-receipt.js'
import { contractKey, decodeContract, encodeContract } from '../../src/node/contract-state.js'
import { BidError } from '../../src/protocols/bid.js'
import type { Identity } from '../../src/market/identity.js'
import type { CmeshNode } from '../../src/node/node.js'
import { testIdentity } from '../helpers/cards.js'

const nowSecs = (): number => Math.floor(Date.now() / 1000)
const USER_DATA = new TextEncoder().encode('echo ok > ok.txt\n')

function rfpFields (over: Partial<Ccrfp['cmesh']> & { location?: Ccrfp['location'], cpus?: number } = {}): Omit<Ccrfp, 'requester' | 'createdAtUnixSecs'> {
  const { location, cpus, ...cmesh } = over
  return {
    cpus: cpus ?? 1, mem: '512M', disk: '1G', network: '1G', role: 'default', user_data: userDataRef(USER_DATA),
    ...(location !== undefined ? { location } : {}),
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 600, bidWindowSecs: 3, ...cmesh }
  }
}

describe('contract rules', () => {
  const mesh = new TestMesh()
  let alice: CmeshNode
  let bob: CmeshNode
  let conn: Connection
  before(async () => {
    bob = await mesh.node({ roles: ['provider'] })
    alice = await mesh.node({ roles: ['requester'] })
    await mesh.connect(alice, bob)
    await waitFor('Alice holds Bob\'s card', () => alice.collection.get(bob.identity.did, nowSecs()) !== undefined)
    conn = alice.libp2p.getConnections(bob.libp2p.peerId)[0] as Connection
  })
  after(async () => { await mesh.cleanup() })

  const bid = () => alice.services.provider.bid

  async function ask (rfp: SignedCcrfp): Promise<{ ccb?: SignedCcb, code?: string }> {
    const answer = await bid().requestBid(conn, rfp.bytes)
    if ('ccb' in answer) return { ccb: decodeRecord(answer.ccb, [CcbType]) }
    return { code: decodeRecord(answer.decline, [DeclineType]).value.code }
  }

  async function ccbaFor (rfp: SignedCcrfp, ccb: SignedCcb, signer: Identity = alice.identity) {
    const key = await generateReceiptKeyPair()
    return signRecord(CcbaType, {
      embed: strongRefTo(rfp), bid: strongRefTo(ccb), requester: signer.did, createdAtUnixSecs: nowSecs(),
      cmesh: { receiptKey: key.publicKey, userData: await sealBytes(USER_DATA, ccb.value.cmesh.sealKey, USER_DATA_INFO, ccb.cid.bytes) }
    }, signer)
  }

  it('a bid on a connection without a bond is refused before the provider reads it', async () => {
    const rfp = await alice.services.requester.publishRfp(rfpFields())
    await assert.rejects(bid().requestBid(conn, rfp.bytes), (err: unknown) => err instanceof BidError && err.code === 'BID_NOT_BONDED')
    await alice.services.attestation.attest.attest(conn)
  })

  it('the same request twice in the same second is two RFPs, two bids and two contracts', async () => {
    const [first, second] = await Promise.all([
      alice.services.requester.create({ ...rfpFields(), userData: USER_DATA }),
      alice.services.requester.create({ ...rfpFields(), userData: USER_DATA })
    ])
    assert.equal(first.value.createdAtUnixSecs, second.value.createdAtUnixSecs, 'made in the same second')
    assert.ok(!first.cid.equals(second.cid), 'two records')
    for (const rfp of [first, second]) {
      let status: any
      await waitFor('the contract is ready', async () => {
        status = await alice.services.requester.status(rfp.cid.toString())
        return ['ready', 'failed', 'no-bids'].includes(status.state)
      }, 30_000)
      assert.equal(status.state, 'ready', JSON.stringify(status))
      await alice.services.contractWatch.terminate(rfp.cid.toString())
    }
  })

  it('every decline code the provider can give reaches the requester, through the flow and on the wire', async () => {
    // Through the requester's flow: the status lists each decline with Bob's reason.
    const viaFlow: Array<[string, Parameters<typeof rfpFields>[0]]> = [
      ['SCHEME_UNSUPPORTED', { scheme: 'vm.gpu' }],
      ['REGION_UNSERVED', { location: { region: 'mars' } }],
      ['MEASUREMENTS_MISMATCH', { expectedMeasurements: new Uint8Array(randomBytes(32)) }],
      ['NO_CAPACITY', { cpus: 64 }],
      ['PRICE_BELOW_RATE', { priceCapWei: 1n }]
    ]
    for (const [code, over] of viaFlow) {
      const rfp = await alice.services.requester.create({ ...rfpFields(over), userData: USER_DATA })
      let status: any
      await waitFor(`the ${code} RFP to end`, async () => { status = await alice.services.requester.status(rfp.cid.toString()); return status?.state === 'no-bids' }, 30_000, 50)
      assert.deepEqual(status.declines.map((d: any) => [d.provider, d.code]), [[bob.identity.did, code]], JSON.stringify(status))
    }
    // On the wire (the flow's own checks stop these earlier): a floor above what Bob proves, a closed window, a relayed RFP.
    assert.equal((await ask(await alice.services.requester.publishRfp(rfpFields({ floor: 'TdxPlusReproducibleBuild' })))).code, 'FLOOR_NOT_MET')
    const closed = signRecord(CcrfpType, { ...rfpFields({ bidWindowSecs: 1 }), requester: alice.identity.did, createdAtUnixSecs: nowSecs() - 120 }, alice.identity)
    assert.equal((await ask(closed)).code, 'RFP_CLOSED')
    const relayed = signRecord(CcrfpType, { ...rfpFields(), requester: testIdentity(41).did, createdAtUnixSecs: nowSecs() }, testIdentity(41))
    assert.equal((await ask(relayed)).code, 'POLICY_REFUSED')
    // A TDX request to a provider without TDX backends (Bob proves simulated TDX, so the bond holds).
    await alice.services.attestation.attest.attest(conn, { require: 'TdxLocal' })
    assert.equal((await ask(await alice.services.requester.publishRfp(rfpFields({ tdx: true, floor: 'TdxLocal' })))).code, 'TDX_UNAVAILABLE')
  })

  it('a tampered or misdirected CCBA is refused with its code, and nothing is provisioned', async () => {
    const rfp = await alice.services.requester.publishRfp(rfpFields())
    const { ccb } = await ask(rfp)
    assert.ok(ccb !== undefined)
    assert.ok((await ask(rfp)).ccb?.cid.equals(ccb.cid), 'asked twice about one RFP: the same bid, one hold')
    const other = await alice.services.requester.publishRfp(rfpFields({ durationSecs: 601 }))
    const otherBid = (await ask(other)).ccb as SignedCcb
    const failure = async (bytes: Uint8Array): Promise<string | undefined> => {
      try {
        await bid().accept(conn, bytes)
        return 'ACCEPTED'
      } catch (err) {
        assert.ok(err instanceof BidError, String(err))
        return err.meta.code ?? err.code
      }
    }
    // Signed by someone else than the RFP's requester.
    assert.equal(await failure((await ccbaFor(rfp, ccb, testIdentity(42))).bytes), 'CONTRACT_WRONG_AUTHOR')
    // Embeds one RFP but names the bid for another.
    const crossed = signRecord(CcbaType, { ...(await ccbaFor(rfp, ccb)).value, bid: strongRefTo(otherBid) }, alice.identity)
    assert.match(String(await failure(crossed.bytes)), /^CONTRACT_/)
    // A receipt key nobody could seal to (a low-order point): refused before any machine exists.
    const zeroKey = signRecord(CcbaType, { ...(await ccbaFor(rfp, ccb)).value, cmesh: { ...(await ccbaFor(rfp, ccb)).value.cmesh, receiptKey: new Uint8Array(32) } }, alice.identity)
    assert.equal(await failure(zeroKey.bytes), 'RECEIPT_KEY_INVALID')
    // A flipped byte in the signature.
    const good = await ccbaFor(rfp, ccb)
    const flipped = Uint8Array.from(good.bytes)
    flipped[flipped.length - 2] = (flipped[flipped.length - 2] as number) ^ 1
    assert.equal(await failure(flipped), 'RECORD_BAD_SIGNATURE')
    assert.equal((await bob.services.requester.list()).filter((c) => c.state === 'ready').length, 0, 'nothing provisioned')
  })

  it('an accept sent twice provisions once; a grant caught mid-provisioning by a restart is never provisioned again', async () => {
    const rfp = await alice.services.requester.publishRfp(rfpFields())
    const { ccb } = await ask(rfp)
    assert.ok(ccb !== undefined)
    const ccba = await ccbaFor(rfp, ccb)
    const provisioned = async (): Promise<number> => Number((await bob.metrics.registry.getSingleMetricAsString('cmesh_provision_duration_seconds')).match(/_count\{[^}]*outcome="ready"[^}]*\} (\d+)/)?.[1] ?? 0)
    const before = await provisioned()
    const first = await bid().accept(conn, ccba.bytes)
    const again = await bid().accept(conn, ccba.bytes)
    assert.ok('ccr' in first && 'ccr' in again, 'an unsettled (wei) bid needs no payment')
    assert.deepEqual(again.ccr, first.ccr, 'the stored answer, not a second machine')
    assert.equal(await provisioned(), before + 1)

    // A crash between "provisioning" on disk and the receipt: the store says provisioning.
    const store = (bob as any).parts.components.store
    const crashed = { ...decodeContract(await store.get('contracts', contractKey('provider', ccba.cid.toString()))), id: 'crash-test', state: 'provisioning' as const }
    await store.put('contracts', contractKey('provider', 'crash-test'), encodeContract(crashed))
    const dataDir = bob.config.dataDir
    const network = mesh.network
    await mesh.stopNode(bob)
    const reborn = await mesh.node({ roles: ['provider'], network }, { dataDir })
    const list = await reborn.services.requester.list()
    assert.equal(list.find((c) => c.id === 'crash-test')?.state, 'interrupted')
    assert.equal(list.find((c) => c.id === ccba.cid.toString())?.state, 'ended', 'the local dev instance ended with the node')
    bob = reborn
  })
})
