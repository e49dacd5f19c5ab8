/**
 * Alice, Bob and Eve, end to end: Alice and Bob are `cmesh start` processes driven through the
 * CLI; Eve is a node in this process whose every decrypted inbound byte is recorded. Alice vouches
 * for Bob and denounces Eve, publishes an RFP, both bid, Bob wins, Alice opens the sealed receipt
 * and logs in with the real OpenSSH client; Eve, who saw all the gossip and bid herself, never
 * received a byte of Alice's user_data or of the keys in the receipt.
 */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startBobAndAlice, apiStatus, stopNodeProcess, type NodeProcess } from '../helpers/processes.js'
import { TestMesh, waitFor, testNetwork } from '../helpers/mesh.js'
import { runCli, spawnCli } from '../helpers/cli.js'
import { requireSsh, run } from '../helpers/ssh.js'
import { fromHex } from '../../src/market/bytes.js'

function contains (haystack: Buffer, needle: Uint8Array): boolean {
  return needle.length > 0 && haystack.indexOf(Buffer.from(needle)) >= 0
}

describe('Alice, Bob and Eve (processes, real ssh)', () => {
  const procs: NodeProcess[] = []
  const mesh = new TestMesh()
  after(async () => {
    await Promise.all(procs.map(async (p) => await stopNodeProcess(p)))
    await mesh.cleanup()
  })

  it('Alice buys from Bob, logs in, and Eve learns nothing of what Alice runs', async (t) => {
    if (!requireSsh(t)) return
    const network = testNetwork()
    const { bob, bobAddr, alice, aliceAddr } = await startBobAndAlice(procs, network)

    // Eve: a provider on the same network, cheaper than Bob, connected to both; her tap keeps every byte.
    const heard: Buffer[] = []
    const eve = await (Object.assign(mesh, { network }) as TestMesh).node({
      roles: ['provider'],
      gossipHeartbeatMs: 200,
      card: { schemesSupported: ['vm.ssh'], capacityPerSecond: 1, feePerPartialWei: '1', backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 20 }], rates: [{ backend: 'local', cpuHourWei: '1', memoryGiBHourWei: '1', diskGiBHourWei: '1' }] }
    }, { wireTap: (chunk) => { heard.push(Buffer.from(chunk)) } })
    await eve.libp2p.dial([(await import('@multiformats/multiaddr')).multiaddr(bobAddr)])
    await eve.libp2p.dial([(await import('@multiformats/multiaddr')).multiaddr(aliceAddr)])

    const bobDid = (await apiStatus(bob)).did as string
    await waitFor('Alice holds Bob\'s and Eve\'s cards (she has none of her own)', async () => (await apiStatus(alice))?.collection?.shown === 2, 60_000, 250)

    const cli = async (args: string[]) => await runCli([...args, '--data', alice.dataDir], alice.dataDir)
    assert.equal((await cli(['trust', 'vouch', bobDid])).code, 0)
    assert.equal((await cli(['trust', 'denounce', eve.identity.did])).code, 0)

    // What Alice runs: a secret nobody else may see, written where she will read it over ssh.
    const secret = `alice-secret-${randomBytes(16).toString('hex')}`
    await writeFile(join(alice.dataDir, 'user-data.sh'), `echo ${secret} > secret.txt\n`)
    const created = await spawnCli(['rfp', 'create', '--cpus', '1', '--mem', '512M', '--disk', '1G', '--user-data', join(alice.dataDir, 'user-data.sh'), '--window', '5', '--wait', '--json', '--data', alice.dataDir], alice.dataDir)
    assert.equal(created.code, 0, created.stderr + created.stdout)
    const status = JSON.parse(created.stdout)
    assert.equal(status.state, 'ready')
    assert.equal(status.chosen.provider, bobDid)
    assert.ok(status.bids.some((b: any) => b.provider === eve.identity.did), 'Eve bid too')
    assert.deepEqual(status.refused.map((r: any) => [r.provider, r.code]), [[eve.identity.did, 'DENOUNCED']])

    const opened = await cli(['receipt', 'open', status.id, '--json'])
    assert.equal(opened.code, 0, opened.stderr)
    const receipt = JSON.parse(opened.stdout)
    assert.equal(((await import('node:fs')).statSync(receipt.keyFile).mode & 0o777), 0o600)
    const login = await run(receipt.ssh[0], [...receipt.ssh.slice(1), '-o', 'BatchMode=yes', 'cat', 'secret.txt'])
    assert.equal(login.code, 0, login.stderr)
    assert.equal(login.stdout.trim(), secret)

    // Eve heard the gossip and the bid exchange, and not one byte of the secret or of the keys.
    const raw = await (await fetch(`${JSON.parse(await readFile(join(alice.dataDir, 'api.json'), 'utf8')).url}/v1/contracts/${status.id}/receipt`, { headers: { authorization: `Bearer ${JSON.parse(await readFile(join(alice.dataDir, 'api.json'), 'utf8')).token}` } })).json() as { receiptKey: string }
    const sshKey = await readFile(receipt.keyFile, 'utf8')
    const keyBody = sshKey.split('\n').filter((l) => !l.startsWith('-----')).join('')
    const everything = Buffer.concat(heard)
    assert.ok(everything.length > 10_000, `Eve's tap recorded traffic (${everything.length} bytes)`)
    assert.ok(contains(everything, new TextEncoder().encode(status.id.slice(0, 20))) || everything.includes(Buffer.from('com.publicdomainrelay.temp.ccrfp')), 'Eve did see the RFP itself')
    assert.equal(contains(everything, new TextEncoder().encode(secret)), false, 'the user_data secret')
    assert.equal(contains(everything, fromHex(raw.receiptKey)), false, 'Alice\'s receipt key')
    assert.equal(contains(everything, new TextEncoder().encode(keyBody.slice(20, 60))), false, 'the SSH key in the receipt')
    assert.equal(contains(everything, Buffer.from(keyBody, 'base64').subarray(0, 64)), false, 'the SSH key bytes')
  })
})
