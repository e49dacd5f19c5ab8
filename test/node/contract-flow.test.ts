/** The contract flow in one process: Alice buys, Bob and Eve bid, the policy engine chooses, Alice logs in. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { requireSsh, ssh, writeKnownHosts, writePrivateKey } from '../helpers/ssh.js'
import { openReceipt } from '../../src/market/sealed-receipt.js'
import { cidForBytes } from '../../src/market/cbor.js'
import type { CmeshNode } from '../../src/node/node.js'

const card = (feeWei: string, cpuHourWei: string) => ({
  schemesSupported: ['vm.ssh'],
  attestationLevel: 'Software' as const,
  capacityPerSecond: 1,
  feePerPartialWei: feeWei,
  backends: [{ name: 'local', kind: 'local' as const, regions: ['local'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 20, tdx: false }],
  rates: [{ backend: 'local', cpuHourWei, memoryGiBHourWei: '1000', diskGiBHourWei: '10' }]
})

describe('contract flow (in-process)', () => {
  const mesh = new TestMesh()
  let dir: string | undefined
  after(async () => {
    await mesh.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  const rfpOf = (userData: string, over: Record<string, unknown> = {}) => ({
    cpus: 1, mem: '512M', disk: '1G', network: '1G', role: 'default',
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software' as const, priceCapWei: 10n ** 18n, durationSecs: 600, bidWindowSecs: 3 },
    userData: new TextEncoder().encode(userData),
    ...over
  })

  async function waitReady (alice: CmeshNode, id: string): Promise<any> {
    let status: any
    await waitFor('the RFP to end', async () => {
      status = await alice.services.requester.status(id)
      return ['ready', 'failed', 'no-bids'].includes(status?.state)
    }, 60_000, 100)
    return status
  }

  it('Alice vouches Bob and denounces Eve; Eve bids cheaper and is refused; Bob provisions; Alice opens the receipt and logs in', async (t) => {
    if (!requireSsh(t)) return
    const bob = await mesh.node({ roles: ['provider'], card: card('1000', '1000000') })
    const eve = await mesh.node({ roles: ['provider'], card: card('10', '10') })
    const alice = await mesh.node({ roles: ['requester'] })
    await mesh.connect(alice, bob)
    await mesh.connect(alice, eve)
    await waitFor('Alice holds both cards', () => alice.collection.cards(Math.floor(Date.now() / 1000)).length === 2)
    await alice.services.trust.sign('vouch', bob.identity.did)
    await alice.services.trust.sign('denounce', eve.identity.did)

    const rfp = await alice.services.requester.create(rfpOf('echo "hello from user_data" > hello.txt\n'))
    const status = await waitReady(alice, rfp.cid.toString())
    assert.equal(status.state, 'ready', JSON.stringify(status))
    assert.equal(status.bids.length, 2, 'both bid')
    assert.equal(status.chosen.provider, bob.identity.did)
    assert.deepEqual(status.refused.map((r: any) => [r.provider, r.code]), [[eve.identity.did, 'DENOUNCED']])
    assert.deepEqual(status.progress, ['dialing', 'attesting', 'provisioning', 'booting', 'user-data', 'booted', 'sealing', 'ready'])
    const evesBid = status.bids.find((b: any) => b.provider === eve.identity.did)
    assert.ok(BigInt(evesBid.costWei) < BigInt(status.chosen.costWei), 'Eve was cheaper')

    // The receipt opens with Alice's key only, and logs in to the machine Bob provisioned.
    const r = await alice.services.requester.receipt(rfp.cid.toString())
    assert.ok(r !== undefined)
    const receipt = await openReceipt({ enc: r.enc, ct: r.ct }, r.receiptKey, cidForBytes(r.ccr).bytes)
    dir = await mkdtemp(join(tmpdir(), 'cmesh-flow-'))
    const target = { port: receipt.port, keyFile: await writePrivateKey(dir, 'grant', receipt.privateKey), knownHosts: await writeKnownHosts(dir, receipt.port, receipt.hostKey), user: receipt.user }
    const login = await ssh(target, ['cat', 'hello.txt'])
    assert.equal(login.code, 0, login.stderr)
    assert.equal(login.stdout, 'hello from user_data\n')

    // Eve was told she was not chosen: her reservation is gone.
    await waitFor('Eve released her reservation', () => (eve.services.provider as any).ledger.holds().length === 0)
    const bobContracts = await bob.services.requester.list()
    assert.deepEqual(bobContracts.map((c) => [c.role, c.state]), [['provider', 'ready']])

    // A restarted requester still holds its receipt, and it still opens.
    const dataDir = alice.config.dataDir
    await mesh.stopNode(alice)
    const again = await mesh.node({ roles: ['requester'] }, { dataDir })
    const kept = await again.services.requester.receipt(rfp.cid.toString())
    assert.ok(kept !== undefined, 'receipt kept across the restart')
    assert.equal((await openReceipt({ enc: kept.enc, ct: kept.ct }, kept.receiptKey, cidForBytes(kept.ccr).bytes)).port, receipt.port)
    assert.equal((await again.services.requester.status(rfp.cid.toString()))?.state, 'ready')
  })
})
