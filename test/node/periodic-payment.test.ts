/**
 * Per-period and postpaid bids on anvil: the requester pays each period by the schedule, the
 * token moves by exactly cost × periods, a requester that stops paying has its contract ended
 * with PAYMENT_MISSING (machine gone), and a postpaid contract runs before it is paid and is paid
 * period by period, its last period after it ends.
 */
import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { startLocalChain, type LocalChain } from '../helpers/anvil.js'
import { decodeRecord } from '../../src/market/record.js'
import { CcbType } from '../../src/market/ccb.js'
import { CcbapType } from '../../src/market/ccbap.js'
import { TerminationType } from '../../src/market/termination.js'
import { userDataRef, type Ccrfp } from '../../src/market/ccrfp.js'
import { contractKey, decodeContract, type StoredContract } from '../../src/node/contract-state.js'
import type { CmeshNode } from '../../src/node/node.js'

const nowSecs = (): number => Math.floor(Date.now() / 1000)
const USER_DATA = new TextEncoder().encode('true\n')
const PERIOD = 20

function request (): Omit<Ccrfp, 'requester' | 'createdAtUnixSecs' | 'user_data'> & { userData: Uint8Array } {
  return {
    cpus: 1, mem: '256M', disk: '1G', network: '1G', role: 'default', userData: USER_DATA,
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 60, bidWindowSecs: 2 }
  }
}

const stored = async (node: CmeshNode, role: 'requester' | 'provider', id: string): Promise<StoredContract> =>
  decodeContract(await (node as any).parts.components.store.get('contracts', contractKey(role, id)))

describe('per-period and postpaid payments on anvil', () => {
  const mesh = new TestMesh()
  let chain: LocalChain
  const payment = () => ({ chainId: chain.chainId, rpcUrl: chain.rpcUrl, asset: chain.token.address, assetName: chain.token.name, windowSecs: 10 })
  before(async () => { chain = await startLocalChain() })
  after(async () => {
    await mesh.cleanup()
    await chain?.stop()
  })

  async function pair (providerPayment: Record<string, unknown>): Promise<{ provider: CmeshNode, requester: CmeshNode }> {
    const provider = await mesh.node({ roles: ['provider'], payment: { ...payment(), ...providerPayment }, lifecycle: { heartbeatSecs: 2, unresponsiveAfterPeriods: 3 } })
    const requester = await mesh.node({ roles: ['requester'], payment: payment() })
    await chain.mint(requester.services.payments.address as `0x${string}`, 10n ** 15n)
    await chain.publicClient.request({ method: 'anvil_setBalance' as any, params: [provider.services.payments.address, `0x${(10n ** 19n).toString(16)}`] as any })
    await mesh.connect(requester, provider)
    await waitFor('the requester holds the provider\'s card', () => requester.collection.get(provider.identity.did, nowSecs())?.value.payment !== undefined)
    return { provider, requester }
  }

  async function buy (requester: CmeshNode): Promise<string> {
    const rfp = await requester.services.requester.create(request())
    let status: any
    await waitFor('the contract is ready', async () => {
      status = await requester.services.requester.status(rfp.cid.toString())
      return ['ready', 'failed', 'no-bids'].includes(status.state)
    }, 60_000)
    assert.equal(status.state, 'ready', JSON.stringify(status))
    return rfp.cid.toString()
  }

  it('prepaid per period: every period paid before it starts, exactly cost × periods; one who stops paying is cut off with PAYMENT_MISSING', async () => {
    const [paying, stopping] = await Promise.all([pair({ frequency: 'per-period', periodSecs: PERIOD, prepay: true }), pair({ frequency: 'per-period', periodSecs: PERIOD, prepay: true })])
    const payer = paying.requester.services.payments.address as `0x${string}`
    const before = await chain.balanceOf(payer)
    const [id, cutId] = await Promise.all([buy(paying.requester), buy(stopping.requester)])
    // The second requester pays the first period (before provisioning), then stops paying.
    stopping.requester.services.periodicPayer.stop()

    const held = await stored(paying.requester, 'requester', id)
    const ccb = decodeRecord(held.ccb as Uint8Array, [CcbType])
    assert.equal(ccb.value.bid.frequency, 'per-period')
    assert.equal(ccb.value.cmesh.periodSecs, PERIOD)
    assert.equal(ccb.value.bid.prepay, true)
    const periods = Math.ceil(60 / PERIOD)

    await waitFor('every later period is paid', async () => ((await stored(paying.requester, 'requester', id)).periodPayments ?? []).length === periods - 1, 70_000)
    const mine = await stored(paying.requester, 'requester', id)
    assert.deepEqual(mine.periodPayments?.map((p) => p.index).sort(), [1, 2])
    for (const p of mine.periodPayments ?? []) {
      const ccbap = decodeRecord(p.ccbap as Uint8Array, [CcbapType])
      assert.equal(ccbap.value.txid, p.txid)
      assert.ok(ccbap.value.embed.cid.equals(ccb.cid))
    }
    assert.equal(await chain.balanceOf(payer), before - ccb.value.bid.cost * BigInt(periods), 'exactly cost × periods')
    // The provider keeps the contract under the first accept's CID (the one the first payment paid for).
    const grant = decodeRecord(mine.ccbap as Uint8Array, [CcbapType]).value.cmesh.ccba.cid.toString()
    const theirs = await stored(paying.provider, 'provider', grant)
    assert.deepEqual(theirs.periodPayments?.map((p) => p.txid).sort(), mine.periodPayments?.map((p) => p.txid).sort(), 'the provider recorded the same settlements')

    // Cut off: period 2 was due at start + 20 s and the provider waited its 10 s window.
    await waitFor('the unpaid contract ends', async () => (await stored(stopping.requester, 'requester', cutId)).state === 'ended', 60_000)
    const cut = await stored(stopping.requester, 'requester', cutId)
    const record = decodeRecord(cut.termination as Uint8Array, [TerminationType])
    assert.equal(record.value.reason, 'PAYMENT_MISSING')
    assert.equal(record.value.by, stopping.provider.identity.did)
    const cutGrant = decodeRecord(cut.ccbap as Uint8Array, [CcbapType]).value.cmesh.ccba.cid.toString()
    assert.equal(stopping.provider.services.fleet.fleet.owner(cutGrant)?.instance, undefined, 'its machine is gone')
  })

  it('postpaid per period: the machine runs before anything is paid; each period is paid when it ends, the last after the contract ends', async () => {
    // A longer window than the other test: the last period is paid after the contract ends, and on a busy machine that payment may take a while.
    const { provider, requester } = await pair({ frequency: 'per-period', periodSecs: PERIOD, prepay: false, windowSecs: 30 })
    const payer = requester.services.payments.address as `0x${string}`
    const before = await chain.balanceOf(payer)
    const id = await buy(requester)
    const held = await stored(requester, 'requester', id)
    assert.equal(held.payment, undefined, 'nothing paid to get the machine')
    assert.equal(await chain.balanceOf(payer), before)
    const ccb = decodeRecord(held.ccb as Uint8Array, [CcbType])
    assert.equal(ccb.value.bid.prepay, false)
    await waitFor('all three periods are paid', async () => ((await stored(requester, 'requester', id)).periodPayments ?? []).length === 3, 120_000)
    assert.equal(await chain.balanceOf(payer), before - ccb.value.bid.cost * 3n)
    const grant = (await requester.services.contractWatch.show(id) as any).accept as string
    await waitFor('the provider recorded all three', async () => ((await stored(provider, 'provider', grant)).periodPayments ?? []).length === 3, 30_000)
    // The last period is paid as the contract ends: its EXPIRED record may be written a moment before or after.
    await waitFor('the contract ran to its end', async () => (await stored(provider, 'provider', grant)).termination !== undefined, 30_000)
    assert.equal(decodeRecord((await stored(provider, 'provider', grant)).termination as Uint8Array, [TerminationType]).value.reason, 'EXPIRED')
  })
})
