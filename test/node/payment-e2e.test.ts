/**
 * x402 on a real local chain (anvil, an EIP-3009 test token): a paid bid is provisioned only
 * after its payment settles, the token moves by exactly the bid's cost, and a replayed or
 * under-paid authorization, a CCBAP naming a transaction that is not on chain, or one naming a
 * real transaction that is not this accept's settlement, are all refused.
 */
import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Connection } from '@libp2p/interface'
import { privateKeyToAccount } from 'viem/accounts'
import { x402Client } from '@x402/core/client'
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from '@x402/core/http'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { toClientEvmSigner } from '@x402/evm'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { startLocalChain, type LocalChain } from '../helpers/anvil.js'
import { decodeRecord, signRecord } from '../../src/market/record.js'
import { CcbType, type SignedCcb } from '../../src/market/ccb.js'
import { CcbaType, type SignedCcba } from '../../src/market/ccba.js'
import { CcbapType } from '../../src/market/ccbap.js'
import { CcrType } from '../../src/market/ccr.js'
import { DeclineType } from '../../src/market/decline.js'
import { userDataRef, type Ccrfp, type SignedCcrfp } from '../../src/market/ccrfp.js'
import { strongRefTo } from '../../src/market/strong-ref.js'
import { assetId } from '../../src/market/payment.js'
import { generateReceiptKeyPair, sealBytes, USER_DATA_INFO } from '../../src/market/sealed-receipt.js'
import { contractKey, decodeContract } from '../../src/node/contract-state.js'
import { BidError } from '../../src/protocols/bid.js'
import type { CmeshNode } from '../../src/node/node.js'

const storeOf = (node: CmeshNode) => (node as any).parts.components.store
const nowSecs = (): number => Math.floor(Date.now() / 1000)
const USER_DATA = new TextEncoder().encode('echo paid > paid.txt\n')

function rfpFields (): Omit<Ccrfp, 'requester' | 'createdAtUnixSecs'> {
  return {
    cpus: 1, mem: '512M', disk: '1G', network: '1G', role: 'default', user_data: userDataRef(USER_DATA),
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 600, bidWindowSecs: 3 }
  }
}

describe('x402 payment on anvil', () => {
  const mesh = new TestMesh()
  let chain: LocalChain
  let alice: CmeshNode
  let bob: CmeshNode
  let conn: Connection
  let aliceAddress: `0x${string}`
  let bobAddress: `0x${string}`
  before(async () => {
    chain = await startLocalChain()
    const payment = { chainId: chain.chainId, rpcUrl: chain.rpcUrl, asset: chain.token.address, assetName: chain.token.name, assetVersion: chain.token.version, windowSecs: 60 }
    bob = await mesh.node({ roles: ['provider'], payment })
    alice = await mesh.node({ roles: ['requester'], payment })
    aliceAddress = alice.services.payments.address as `0x${string}`
    bobAddress = bob.services.payments.address as `0x${string}`
    await chain.mint(aliceAddress, 10n ** 15n)
    // Bob settles (his facilitator sends transferWithAuthorization): he pays the gas, so he needs ether.
    await chain.publicClient.request({ method: 'anvil_setBalance' as any, params: [bobAddress, `0x${(10n ** 19n).toString(16)}`] as any })
    await mesh.connect(alice, bob)
    await waitFor('Alice holds Bob\'s card, with its payment terms', () => alice.collection.get(bob.identity.did, nowSecs())?.value.payment !== undefined)
    conn = alice.libp2p.getConnections(bob.libp2p.peerId)[0] as Connection
  })
  after(async () => {
    await mesh.cleanup()
    await chain?.stop()
  })

  const bid = () => alice.services.provider.bid

  it('Bob\'s card names his network, token and pay-to address', () => {
    const card = alice.collection.get(bob.identity.did, nowSecs())?.value
    assert.deepEqual(card?.payment, { network: chain.network, asset: chain.token.address.toLowerCase(), payTo: bobAddress })
  })

  it('the whole flow: the requester pays exactly the bid\'s cost on chain, then gets its machine', async () => {
    const [aliceBefore, bobBefore] = [await chain.balanceOf(aliceAddress), await chain.balanceOf(bobAddress)]
    const rfp = await alice.services.requester.create({ ...rfpFields(), userData: USER_DATA })
    let status: any
    await waitFor('the contract is ready', async () => {
      status = await alice.services.requester.status(rfp.cid.toString())
      return status.state === 'ready' || status.state === 'failed' || status.state === 'no-bids'
    }, 60_000)
    assert.equal(status.state, 'ready', JSON.stringify(status))
    assert.ok(status.progress.includes('paying') && status.progress.includes('paid'), status.progress.join(','))
    const cost = BigInt(status.chosen.costWei)
    assert.ok(cost > 0n)
    assert.equal(await chain.balanceOf(aliceAddress), aliceBefore - cost, 'the requester paid exactly the bid\'s cost')
    assert.equal(await chain.balanceOf(bobAddress), bobBefore + cost, 'the provider received exactly the bid\'s cost')
    // The records: the CCB settles in the token, the CCBA names the CCBAP, the CCR names that CCBA.
    const held = decodeContract(await storeOf(alice).get('contracts', contractKey('requester', rfp.cid.toString())) as Uint8Array)
    const ccb = decodeRecord(held.ccb as Uint8Array, [CcbType])
    assert.equal(ccb.value.bid.currency, assetId(chain.network, chain.token.address))
    assert.equal(ccb.value.bid.prepay, true)
    const ccba = decodeRecord(held.ccba as Uint8Array, [CcbaType])
    const ccbap = decodeRecord(held.ccbap as Uint8Array, [CcbapType])
    assert.ok(ccba.value.payment !== undefined && ccba.value.payment.cid.equals(ccbap.cid), 'the CCBA\'s payment points at the CCBAP')
    assert.equal(ccbap.value.txid, held.payment?.txid)
    assert.ok(ccbap.value.embed.cid.equals(ccb.cid))
    const ccr = decodeRecord(held.ccr as Uint8Array, [CcrType])
    assert.ok(ccr.value.ccba.cid.equals(ccba.cid), 'the CCR names the paid CCBA')
    const receipt = await chain.publicClient.getTransactionReceipt({ hash: ccbap.value.txid as `0x${string}` })
    assert.equal(receipt.status, 'success')
    // Ended now: Bob's capacity (two 1-cpu grants) is for the next test's accepts.
    await alice.services.contractWatch.terminate(rfp.cid.toString())
  })

  it('refuses to provision before payment, refuses a txid not on chain, an under-paid and a replayed authorization', async () => {
    await alice.services.attestation.attest.attest(conn).catch(() => {})
    const { rfp, ccb, ccba } = await acceptedBid()
    const answer = await bid().accept(conn, ccba.bytes)
    assert.ok('payment' in answer, 'a paid bid answers the accept with where to pay')
    const url = answer.payment.url
    assert.equal((await storedState(bob, ccba)).state, 'awaiting-payment')
    const instancesBefore = bob.services.fleet.fleet.used('local').instances

    // A CCBAP naming a transaction that is not on chain: refused, nothing provisioned.
    const fake = await paidAccept(ccb, ccba, `0x${randomBytes(32).toString('hex')}`)
    await assert.rejects(bid().paid(conn, fake), (err: unknown) => err instanceof BidError && err.meta.code === 'PAYMENT_NOT_ON_CHAIN')
    // A real transaction that is not this accept's settlement (the token mint): refused.
    const mintTx = await mintTxHash()
    await assert.rejects(bid().paid(conn, await paidAccept(ccb, ccba, mintTx)), (err: unknown) => err instanceof BidError && err.meta.code === 'PAYMENT_MISMATCH')
    assert.equal(bob.services.fleet.fleet.used('local').instances, instancesBefore, 'nothing provisioned before payment')
    assert.equal((await storedState(bob, ccba)).state, 'awaiting-payment')

    // The resource answers 402 with exactly the bid's terms.
    const unpaid = await fetch(url)
    assert.equal(unpaid.status, 402)
    const required = decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED') as string)
    const asked = required.accepts[0] as any
    assert.equal(asked.amount, ccb.value.bid.cost.toString())
    assert.equal(asked.payTo.toLowerCase(), bobAddress)
    assert.equal(asked.asset.toLowerCase(), chain.token.address.toLowerCase())

    const aliceBefore = await chain.balanceOf(aliceAddress)
    // Under-paid: an authorization for one unit less is refused and moves nothing.
    const under = await signedPayment({ ...required, accepts: [{ ...asked, amount: (ccb.value.bid.cost - 1n).toString() }] })
    const refusedUnder = await fetch(url, { headers: { 'PAYMENT-SIGNATURE': under } })
    assert.equal(refusedUnder.status, 402)
    assert.equal(await chain.balanceOf(aliceAddress), aliceBefore)

    // Paid exactly: settled on chain; asking again returns the same settlement, no second payment.
    const exact = await signedPayment(required)
    const paid = await fetch(url, { headers: { 'PAYMENT-SIGNATURE': exact } })
    assert.equal(paid.status, 200, await paid.clone().text())
    const settled = await paid.json() as { txid: string }
    assert.equal(await chain.balanceOf(aliceAddress), aliceBefore - ccb.value.bid.cost)
    const again = await fetch(url, { headers: { 'PAYMENT-SIGNATURE': exact } })
    assert.equal(again.status, 200)
    assert.equal(((await again.json()) as { txid: string }).txid, settled.txid)
    assert.equal(await chain.balanceOf(aliceAddress), aliceBefore - ccb.value.bid.cost, 'paid once')
    assert.equal((await storedState(bob, ccba)).state, 'paid')

    // Replayed: the same authorization offered for another accept of the same cost is refused (its nonce is spent).
    const second = await acceptedBid()
    const secondAnswer = await bid().accept(conn, second.ccba.bytes)
    assert.ok('payment' in secondAnswer)
    const replay = await fetch(secondAnswer.payment.url, { headers: { 'PAYMENT-SIGNATURE': exact } })
    assert.equal(replay.status, 402)
    const replayBody = await replay.json() as { error?: string }
    assert.match(String(replayBody.error), /refused|failed/)
    assert.equal(await chain.balanceOf(aliceAddress), aliceBefore - ccb.value.bid.cost, 'a replay moves nothing')

    // With the real settlement named, the grant is provisioned.
    const done = await bid().paid(conn, await paidAccept(ccb, ccba, settled.txid))
    const ccr = decodeRecord(done.ccr, [CcrType])
    assert.equal(ccr.value.rfp.cid.toString(), rfp.cid.toString())
    assert.equal((await storedState(bob, ccba)).state, 'ready')
    assert.equal(bob.services.fleet.fleet.used('local').instances, instancesBefore + 1)
  })

  it('an accept nobody pays for fails PAYMENT_MISSING when its window closes, and its capacity goes back', async () => {
    const carol = await mesh.node({ roles: ['provider'], payment: { chainId: chain.chainId, rpcUrl: chain.rpcUrl, asset: chain.token.address, assetName: chain.token.name, windowSecs: 10 } })
    await mesh.connect(alice, carol)
    await waitFor('Alice holds Carol\'s card', () => alice.collection.get(carol.identity.did, nowSecs())?.value.payment !== undefined)
    const toCarol = alice.libp2p.getConnections(carol.libp2p.peerId)[0] as Connection
    await alice.services.attestation.attest.attest(toCarol).catch(() => {})
    const { ccba } = await acceptedBid(toCarol)
    const due = await bid().accept(toCarol, ccba.bytes)
    assert.ok('payment' in due)
    const held = () => ((carol.services.provider as any).ledger.toJSON().holds as unknown[]).length
    assert.equal(held(), 1, 'the accepted bid holds its capacity while it waits')
    await waitFor('the payment window closes', async () => (await storedState(carol, ccba)).state === 'failed', 30_000)
    assert.equal((await storedState(carol, ccba)).error?.code, 'PAYMENT_MISSING')
    assert.equal(held(), 0, 'its capacity went back')
    assert.equal((await fetch(due.payment.url)).status, 404, 'nothing left to pay')
    assert.equal(carol.services.fleet.fleet.used('local').instances, 0)
  })

  async function storedState (node: CmeshNode, ccba: SignedCcba) {
    return decodeContract(await storeOf(node).get('contracts', contractKey('provider', ccba.cid.toString())) as Uint8Array)
  }

  async function acceptedBid (to: Connection = conn): Promise<{ rfp: SignedCcrfp, ccb: SignedCcb, ccba: SignedCcba }> {
    const rfp = await alice.services.requester.publishRfp(rfpFields())
    const answer = await bid().requestBid(to, rfp.bytes)
    assert.ok('ccb' in answer, `Bob bids (${'decline' in answer ? decodeRecord(answer.decline, [DeclineType]).value.code : ''})`)
    const ccb = decodeRecord(answer.ccb, [CcbType])
    const key = await generateReceiptKeyPair()
    const ccba = signRecord(CcbaType, {
      embed: strongRefTo(rfp), bid: strongRefTo(ccb), requester: alice.identity.did, createdAtUnixSecs: nowSecs(),
      cmesh: { receiptKey: key.publicKey, userData: await sealBytes(USER_DATA, ccb.value.cmesh.sealKey, USER_DATA_INFO, ccb.cid.bytes) }
    }, alice.identity)
    return { rfp, ccb, ccba }
  }

  async function paidAccept (ccb: SignedCcb, ccba: SignedCcba, txid: string): Promise<{ ccba: Uint8Array, ccbap: Uint8Array }> {
    const ccbap = signRecord(CcbapType, {
      embed: strongRefTo(ccb), txid, requester: alice.identity.did, createdAtUnixSecs: nowSecs(),
      cmesh: { ccba: strongRefTo(ccba), network: chain.network, payer: aliceAddress, amount: ccb.value.bid.cost.toString() }
    }, alice.identity)
    const paid = signRecord(CcbaType, { ...ccba.value, payment: strongRefTo(ccbap) }, alice.identity)
    return { ccba: paid.bytes, ccbap: ccbap.bytes }
  }

  async function signedPayment (required: any): Promise<string> {
    const key = (await readFile(join(resolve(alice.config.dataDir), 'evm.key'), 'utf8')).trim() as `0x${string}`
    const account = privateKeyToAccount(key)
    const client = new x402Client()
      .register(chain.network, new ExactEvmScheme(toClientEvmSigner({ address: account.address, signTypedData: async (m) => await account.signTypedData(m as any) })))
      .setSpendControls(false as any)
    return encodePaymentSignatureHeader(await client.createPaymentPayload(required))
  }

  async function mintTxHash (): Promise<string> {
    const block = await chain.publicClient.getBlock({ blockTag: 'latest', includeTransactions: true })
    for (let n = block.number; n >= 0n; n--) {
      const b = await chain.publicClient.getBlock({ blockNumber: n, includeTransactions: true })
      for (const tx of b.transactions) if (typeof tx !== 'string' && tx.to?.toLowerCase() === chain.token.address.toLowerCase()) return tx.hash
    }
    throw new Error('no token transaction found')
  }
})
