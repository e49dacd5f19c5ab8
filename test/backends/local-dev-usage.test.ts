/**
 * LocalDevBackend.usage: the grant's memory, and the CPU time of its SSH sessions read from /proc
 * while they run and kept once they end; a machine that has ended has no usage.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { utf8 } from '../../src/market/bytes.js'
import { createLogger } from '../../src/node/logger.js'
import { BackendError } from '../../src/backends/backend.js'
import { LocalDevBackend } from '../../src/backends/local-dev.js'
import { Fleet } from '../../src/backends/fleet.js'
import { generateGrantKeyPair } from '../../src/backends/ssh-keys.js'
import { keyscan, requireSsh, ssh, writeKnownHosts, writePrivateKey } from '../helpers/ssh.js'

describe('LocalDevBackend usage', () => {
  let root: string
  let backend: LocalDevBackend
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'cmesh-usage-test-'))
    backend = new LocalDevBackend({ log: createLogger('test', 'silent'), workRoot: root })
  })
  after(async () => {
    await backend.stopAll()
    await rm(root, { recursive: true, force: true })
  })

  it('reports memory allocated and CPU time used, keeps a finished session\'s time, and refuses once the machine is gone', async (t) => {
    if (!requireSsh(t)) return
    const keys = generateGrantKeyPair('cmesh-usage')
    const fleet = new Fleet([backend], () => [{ backend: 'local-dev', cpuHourWei: 1n, memoryGiBHourWei: 1n, diskGiBHourWei: 1n }])
    const grant = { id: `usage-${process.pid}`, cpus: 1, memMiB: 384, diskGiB: 1, region: 'local', tdx: false, userData: utf8('true\n'), validToUnixSecs: Math.floor(Date.now() / 1000) + 600, authorizedKey: keys.authorizedKey }
    const instance = await fleet.provision(grant, 600)
    const first = await backend.usage(instance)
    assert.equal(first.memMiB, 384)
    if (!existsSync('/proc/self/stat')) return
    assert.equal(typeof first.cpuMillis, 'number')

    const target = { port: instance.port, keyFile: await writePrivateKey(root, 'grant', keys.privateKey), knownHosts: await writeKnownHosts(root, instance.port, await keyscan(instance.port)) }
    // Two seconds of the shell's own arithmetic: the session's group leader itself is busy.
    const busy = ssh(target, ['end=$(( $(date +%s) + 2 )); while [ "$(date +%s)" -lt "$end" ]; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done'])
    let during = 0
    let done = false
    void busy.finally(() => { done = true })
    while (!done) {
      during = Math.max(during, (await backend.usage(instance)).cpuMillis ?? 0)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.equal((await busy).code, 0)
    assert.ok(during >= 200, `CPU time read while the session ran: ${during} ms`)
    const after = await fleet.usage(grant.id)
    assert.ok((after?.cpuMillis ?? 0) >= during, `the ended session's time is kept (${after?.cpuMillis} ≥ ${during})`)

    await fleet.terminate(grant.id)
    await assert.rejects(backend.usage(instance), (err: unknown) => err instanceof BackendError && err.code === 'BACKEND_UNKNOWN_INSTANCE')
    assert.equal(await fleet.usage(grant.id), undefined, 'the fleet holds no machine for it any more')
  })
})
