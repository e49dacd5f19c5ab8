/**
 * A contract after its receipt, in one process: Bob provides (local backend, heartbeats every
 * second, a clock the test can move), Alice buys. Heartbeats reach Alice with usage; Alice ends a
 * contract early through the CLI; a silent Bob is marked unresponsive and ready again when he
 * speaks; strangers and replays are refused; a contract ends by itself at valid-to, with the same
 * EXPIRED record on both sides and the machine gone; a machine lost under Bob ends as
 * PROVIDER_FAULT, and one his restart ended as PROVIDER_SHUTDOWN.
 */
import '../../src/node/polyfills.js'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { runCli } from '../helpers/cli.js'
import { openReceipt } from '../../src/market/sealed-receipt.js'
import { cidForBytes } from '../../src/market/cbor.js'
import { signRecord, decodeRecord } from '../../src/market/record.js'
import { HeartbeatType } from '../../src/market/heartbeat.js'
import { TerminationType } from '../../src/market/termination.js'
import { CcbaType } from '../../src/market/ccba.js'
import { strongRefTo } from '../../src/market/strong-ref.js'
import { LifecycleError } from '../../src/market/lifecycle-error.js'
import type { CmeshNode } from '../../src/node/node.js'
import type { NodeStore } from '../../src/node/store.js'
import { contractKey, decodeContract, type StoredContract } from '../../src/node/contract-state.js'

const card = {
  schemesSupported: ['vm.ssh'],
  attestationLevel: 'Software' as const,
  capacityPerSecond: 1,
  feePerPartialWei: '1000',
  backends: [{ name: 'local', kind: 'local' as const, regions: ['local'], maxCpu: 8, maxMemoryMiB: 8192, maxDiskGiB: 40, tdx: false }],
  rates: [{ backend: 'local', cpuHourWei: '1000', memoryGiBHourWei: '1000', diskGiBHourWei: '10' }]
}
const lifecycle = { heartbeatSecs: 1, unresponsiveAfterPeriods: 2 }

function storeOf (node: CmeshNode): NodeStore {
  return (node as any).parts.components.store as NodeStore
}

async function stored (node: CmeshNode, role: 'requester' | 'provider', id: string): Promise<StoredContract> {
  const bytes = await storeOf(node).get('contracts', contractKey(role, id))
  assert.ok(bytes !== undefined, `${role} contract ${id} stored`)
  return decodeContract(bytes)
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
async function listening (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

describe('contract lifecycle (in-process)', () => {
  const mesh = new TestMesh()
  /** Bob's clock runs this far ahead of the wall clock; the expiry test moves it. */
  let skewMs = 0
  let bob: CmeshNode
  let alice: CmeshNode
  let eve: CmeshNode

  before(async () => {
    bob = await mesh.node({ roles: ['provider'], card, lifecycle }, { now: () => Date.now() + skewMs })
    alice = await mesh.node({ roles: ['requester'], lifecycle }, { api: true })
    eve = await mesh.node({ roles: ['requester'] })
    await mesh.connect(alice, bob)
    await mesh.connect(eve, alice)
    await mesh.connect(eve, bob)
    await waitFor('Alice holds Bob\'s card', () => alice.collection.cards(Math.floor(Date.now() / 1000)).length === 1)
  })
  after(async () => { await mesh.cleanup() })

  /** Alice buys a machine from Bob; returns her contract id, Bob's, and the machine's SSH port. */
  async function buy (durationSecs: number): Promise<{ id: string, grant: string, port: number }> {
    const rfp = await alice.services.requester.create({
      cpus: 1, mem: '256M', disk: '1G', network: '1G', role: 'default',
      cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs, bidWindowSecs: 3 },
      userData: new TextEncoder().encode('echo up > up.txt\n')
    })
    const id = rfp.cid.toString()
    let status: any
    await waitFor('the contract is ready', async () => {
      status = await alice.services.requester.status(id)
      return ['ready', 'failed', 'no-bids'].includes(status?.state)
    }, 60_000, 100)
    assert.equal(status.state, 'ready', JSON.stringify(status))
    const r = await alice.services.requester.receipt(id)
    assert.ok(r !== undefined)
    const receipt = await openReceipt({ enc: r.enc, ct: r.ct }, r.receiptKey, cidForBytes(r.ccr).bytes)
    return { id, grant: receipt.grantId, port: receipt.port }
  }

  async function heartbeatSeen (id: string, after = 0): Promise<any> {
    let view: any
    await waitFor(`a heartbeat above seq ${after} for ${id}`, async () => {
      view = await alice.services.contractWatch.show(id)
      return (view?.heartbeat?.seq ?? 0) > after
    }, 20_000, 100)
    return view
  }

  it('heartbeats reach the requester with usage; the requester ends the contract early through the CLI; the machine is gone', async () => {
    const { id, grant, port } = await buy(600)
    assert.ok(await listening(port), 'the machine listens')
    const view = await heartbeatSeen(id)
    assert.equal(view.state, 'ready')
    assert.equal(view.accept, grant, 'Alice\'s contract names the accept Bob keeps it under')
    assert.equal(view.heartbeat.periodSecs, 1)
    assert.equal(view.heartbeat.usage.memMiB, 256)
    assert.equal(typeof view.heartbeat.usage.cpuMillis, 'number', 'the local backend measures CPU time')
    assert.ok(view.heartbeat.usage.uptimeSecs >= 0)
    assert.ok(view.validToUnixSecs > Math.floor(Date.now() / 1000) + 500, 'valid-to learned from the receipt')

    const cli = await runCli(['contracts', 'terminate', id, '--json', '--data', alice.config.dataDir], alice.config.dataDir)
    assert.equal(cli.code, 0, cli.stderr)
    const printed = JSON.parse(cli.stdout)
    assert.equal(printed.state, 'ended')
    assert.equal(printed.termination.reason, 'REQUESTER')
    assert.equal(printed.termination.by, bob.identity.did, 'the record kept is the one the provider signed')

    const mine = await alice.services.contractWatch.show(id) as any
    assert.equal(mine.state, 'ended')
    assert.deepEqual(mine.error, { code: 'REQUESTER', detail: mine.termination.detail })
    const theirs = await bob.services.contractWatch.show(grant) as any
    assert.equal(theirs.state, 'ended')
    assert.equal(theirs.termination.reason, 'REQUESTER')
    assert.equal(theirs.termination.cid, mine.termination.cid, 'one record on both sides')
    assert.equal(theirs.termination.usage.memMiB, 256)
    assert.equal(bob.services.fleet.fleet.owner(grant)?.instance, undefined, 'the fleet holds no machine for it')
    assert.equal(await listening(port), false, 'the machine no longer listens')
    const holds = () => ((bob.services.provider as any).ledger.toJSON().holds as Array<{ id: string }>).length
    await waitFor('Bob\'s capacity comes back now, not at valid-to', () => holds() === 0, 10_000)
    const status = await alice.services.requester.status(id) as any
    assert.equal(status.state, 'ended', '`cmesh rfp status` shows the contract\'s life, not the flow\'s last step')

    // Asked again: the same record, nothing else happens.
    const again = await alice.services.contractWatch.terminate(id)
    assert.equal(again.cid.toString(), mine.termination.cid)
    assert.equal((await alice.metrics.terminations.get()).values.find((v) => v.labels.reason === 'REQUESTER')?.value, 1)
    assert.ok(((await bob.metrics.heartbeats.get()).values.find((v) => v.labels.direction === 'sent' && v.labels.outcome === 'ok')?.value ?? 0) >= 1)
  })

  it('refuses a heartbeat from anyone but the contract\'s provider, a replayed one, and a stranger\'s request to end it', async () => {
    const { id, grant } = await buy(600)
    await heartbeatSeen(id)
    const held = await stored(alice, 'requester', id)
    const bobs = held.heartbeat as Uint8Array
    const refusedWith = (code: string) => (err: unknown) => err instanceof LifecycleError && err.code === 'LIFECYCLE_REFUSED' && err.meta.code === code

    // Bob's own heartbeat, sent by Eve: the connection's peer is not the contract's provider.
    await assert.rejects(eve.services.contractWatch.client.sendHeartbeat(alice.libp2p.peerId, bobs), refusedWith('LIFECYCLE_UNKNOWN_CONTRACT'))
    // Eve's heartbeat for Alice's contract, on her own connection: still not the provider.
    const ccba = decodeRecord(held.ccba as Uint8Array, [CcbaType])
    const forged = signRecord(HeartbeatType, { contract: strongRefTo(ccba), provider: eve.identity.did, seq: 1_000_000, atUnixSecs: Math.floor(Date.now() / 1000), periodSecs: 1, usage: { uptimeSecs: 1 } }, eve.identity)
    await assert.rejects(eve.services.contractWatch.client.sendHeartbeat(alice.libp2p.peerId, forged.bytes), refusedWith('LIFECYCLE_UNKNOWN_CONTRACT'))
    // Bob replaying a heartbeat Alice already has.
    const seq = decodeRecord(bobs, [HeartbeatType]).value.seq
    await waitFor('a newer heartbeat', async () => ((await alice.services.contractWatch.show(id)) as any).heartbeat.seq > seq, 10_000, 100)
    await assert.rejects(bob.services.contractLifecycle.protocol.sendHeartbeat(alice.libp2p.peerId, bobs), refusedWith('LIFECYCLE_SEQ_REPLAYED'))
    // Junk is refused with its record code, not a reset.
    await assert.rejects(bob.services.contractLifecycle.protocol.sendHeartbeat(alice.libp2p.peerId, new Uint8Array([0xa0])), refusedWith('RECORD_UNKNOWN_TYPE'))

    // Eve asks Bob to end Alice's contract, with a request she signed: Bob does not know her as its requester.
    const request = signRecord(TerminationType, { contract: strongRefTo(ccba), by: eve.identity.did, reason: 'REQUESTER', detail: 'mine now', atUnixSecs: Math.floor(Date.now() / 1000) }, eve.identity)
    await assert.rejects(eve.services.contractWatch.client.requestTermination(bob.libp2p.peerId, request.bytes), refusedWith('LIFECYCLE_UNKNOWN_CONTRACT'))
    assert.equal(((await bob.services.contractWatch.show(grant)) as any).state, 'ready', 'still running')
    assert.ok(((await alice.metrics.heartbeats.get()).values.find((v) => v.labels.direction === 'received' && v.labels.outcome === 'LIFECYCLE_UNKNOWN_CONTRACT')?.value ?? 0) >= 2)
    await alice.services.contractWatch.terminate(id)
  })

  it('a silent provider is marked unresponsive, and ready again when its heartbeats resume', async () => {
    const { id } = await buy(600)
    await heartbeatSeen(id)
    await bob.services.contractLifecycle.stop()
    try {
      await waitFor('Alice marks the contract unresponsive', async () => ((await alice.services.contractWatch.show(id)) as any).state === 'unresponsive', 20_000, 100)
      assert.equal((await alice.metrics.contractsUnresponsive.get()).values[0]?.value, 1)
      assert.equal((await alice.services.requester.list()).find((c) => c.id === id)?.state, 'unresponsive', 'cmesh contracts shows it')
    } finally {
      await bob.services.contractLifecycle.start()
    }
    await waitFor('heartbeats resume and the contract is ready again', async () => ((await alice.services.contractWatch.show(id)) as any).state === 'ready', 20_000, 100)
    assert.equal((await alice.metrics.contractsUnresponsive.get()).values[0]?.value, 0)
    await alice.services.contractWatch.terminate(id)
  })

  it('a machine that vanishes under the provider ends the contract as PROVIDER_FAULT', async () => {
    const { id, grant, port } = await buy(600)
    await heartbeatSeen(id)
    const instance = bob.services.fleet.fleet.owner(grant)?.instance
    assert.ok(instance !== undefined)
    // Behind the lifecycle's back: the backend ends the machine itself.
    await bob.services.fleet.fleet.get('local')?.terminate(instance)
    await waitFor('Alice holds the termination', async () => ((await alice.services.contractWatch.show(id)) as any).state === 'ended', 20_000, 100)
    const mine = await alice.services.contractWatch.show(id) as any
    assert.equal(mine.termination.reason, 'PROVIDER_FAULT')
    assert.match(mine.termination.detail, /gone/)
    assert.equal(((await bob.services.contractWatch.show(grant)) as any).termination.cid, mine.termination.cid)
    assert.equal(await listening(port), false)
  })

  it('a provider restart that ended a local machine tells the requester PROVIDER_SHUTDOWN once it is back', async () => {
    const { id, grant } = await buy(600)
    await heartbeatSeen(id)
    const dataDir = bob.config.dataDir
    await mesh.stopNode(bob)
    bob = await mesh.node({ roles: ['provider'], card, lifecycle }, { dataDir, now: () => Date.now() + skewMs })
    await mesh.connect(alice, bob)
    await waitFor('Alice holds the termination', async () => ((await alice.services.contractWatch.show(id)) as any).state === 'ended', 20_000, 100)
    const mine = await alice.services.contractWatch.show(id) as any
    assert.equal(mine.termination.reason, 'PROVIDER_SHUTDOWN')
    const theirs = await bob.services.contractWatch.show(grant) as any
    assert.equal(theirs.state, 'ended')
    assert.equal(theirs.termination.cid, mine.termination.cid)
    assert.deepEqual(theirs.error, { code: 'PROVIDER_SHUTDOWN', detail: theirs.termination.detail })
  })

  it('a contract ends at valid-to with the same EXPIRED record on both sides, and the machine is gone', async () => {
    const { id, grant, port } = await buy(60)
    await heartbeatSeen(id)
    assert.ok(await listening(port))
    // Bob's clock reaches valid-to (the shortest contract is 60 s; the test does not wait for it).
    skewMs += 61_000
    await waitFor('Alice holds the termination', async () => ((await alice.services.contractWatch.show(id)) as any).state === 'ended', 20_000, 100)
    const mine = await alice.services.contractWatch.show(id) as any
    const theirs = await bob.services.contractWatch.show(grant) as any
    assert.equal(mine.termination.reason, 'EXPIRED')
    assert.equal(mine.termination.by, bob.identity.did)
    assert.equal(theirs.state, 'ended')
    assert.equal(theirs.termination.cid, mine.termination.cid)
    assert.ok(theirs.termination.usage.uptimeSecs >= 60, `uptime ${theirs.termination.usage.uptimeSecs} s on Bob's clock`)
    assert.equal(bob.services.fleet.fleet.owner(grant)?.instance, undefined)
    assert.equal(await listening(port), false)
    assert.equal((await bob.metrics.terminations.get()).values.find((v) => v.labels.reason === 'EXPIRED')?.value, 1)
  })
})
