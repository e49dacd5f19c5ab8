/** Trust statements travel: a requester's policy follows vouches of others (depth) it heard by gossip. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestMesh, waitFor, waitForMesh } from '../helpers/mesh.js'
import { TrustBook } from '../../src/market/trust-book.js'
import { signRecord } from '../../src/market/record.js'
import { DenounceType, VouchType } from '../../src/market/trust.js'
import { testIdentity } from '../helpers/cards.js'

describe('trust statements', () => {
  const mesh = new TestMesh()
  after(async () => { await mesh.cleanup() })

  it('a trust book keeps the newest statement per truster and subject', () => {
    const [a, b] = [testIdentity(71), testIdentity(72)]
    const book = new TrustBook(1)
    const vouch = signRecord(VouchType, { truster: a.did, subject: b.did, createdAtUnixSecs: 100 }, a)
    const denounce = signRecord(DenounceType, { truster: a.did, subject: b.did, createdAtUnixSecs: 101 }, a)
    assert.equal(book.add(vouch), 'added')
    assert.equal(book.add(vouch), 'duplicate')
    assert.equal(book.add(denounce), 'replaced')
    assert.equal(book.add(vouch), 'stale')
    assert.equal(book.add(signRecord(VouchType, { truster: b.did, subject: a.did, createdAtUnixSecs: 100 }, b)), 'full')
    assert.deepEqual(book.all().map((r) => r.cid.toString()), [denounce.cid.toString()])
  })

  it('Alice (mode vouched, depth 2) buys from Dave because Carol, whom she vouches for, vouches for Dave', async () => {
    const dave = await mesh.node({ roles: ['provider'] })
    const carol = await mesh.node({ roles: ['auditor'] })
    const alice = await mesh.node({ roles: ['requester'], contracts: { mode: 'vouched', depth: 2, maxProviders: 5 } })
    await mesh.connect(alice, dave)
    await mesh.connect(carol, alice)
    await waitForMesh(carol, `cmesh/${mesh.network}/trust/1`, 1)
    await waitFor('Alice holds Dave\'s card', () => alice.collection.get(dave.identity.did, Math.floor(Date.now() / 1000)) !== undefined)
    const rfp = () => ({ cpus: 1, mem: '256M', disk: '1G', network: '1G', role: 'default', cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software' as const, priceCapWei: 10n ** 18n, durationSecs: 300, bidWindowSecs: 2 }, userData: new TextEncoder().encode('true\n') })
    const end = async (id: string): Promise<any> => {
      let s: any
      await waitFor('the RFP to end', async () => { s = await alice.services.requester.status(id); return ['ready', 'failed', 'no-bids'].includes(s?.state) }, 30_000, 50)
      return s
    }

    // Nobody Alice trusts vouches for Dave yet.
    const first = await end((await alice.services.requester.create(rfp())).cid.toString())
    assert.equal(first.state, 'no-bids')
    assert.deepEqual(first.refused.map((r: any) => r.code), ['NOT_TRUSTED'])

    await alice.services.trust.sign('vouch', carol.identity.did)
    await carol.services.trust.sign('vouch', dave.identity.did)
    await waitFor('Carol\'s vouch reached Alice by gossip', () => alice.services.trust.all().some((r) => r.value.truster === carol.identity.did && r.value.subject === dave.identity.did))
    assert.equal(alice.services.trust.list().length, 1, 'list shows Alice\'s own statements only')
    const second = await end((await alice.services.requester.create(rfp())).cid.toString())
    assert.equal(second.state, 'ready', JSON.stringify(second))
    assert.equal(second.chosen.provider, dave.identity.did)
  })
})
