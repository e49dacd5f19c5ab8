/**
 * BareMetalBackend against a real OpenSSH server (sshd on 127.0.0.1, run as root): a grant becomes
 * a Unix user whose user_data ran as itself, the real ssh client logs in as that user with the
 * per-grant key and the pinned host key, and terminate() leaves neither the user nor its processes.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { utf8 } from '../../src/market/bytes.js'
import { createLogger } from '../../src/node/logger.js'
import { BackendError, type Grant, type ProvisionProgress } from '../../src/backends/backend.js'
import { BareMetalBackend, grantUserName, parseGrantMarker, grantMarker, type BareMetalHost } from '../../src/backends/bare-metal.js'
import { generateGrantKeyPair } from '../../src/backends/ssh-keys.js'
import { ssh, sshKeygenFingerprint, until, writeKnownHosts, writePrivateKey, probe } from '../helpers/ssh.js'
import { requireSshd, sshdAvailable, startSshd, type Sshd } from '../helpers/sshd.js'

const quiet = createLogger('test', 'silent')
let seq = 0
/** Every grant user a test may have made: removed in after() whatever happened. */
const madeUsers = new Set<string>()

function makeGrant (authorizedKey: string, script: string, overrides: Partial<Grant> = {}): Grant {
  const grant: Grant = {
    // ':' and ' ' cannot go into a passwd GECOS as is: the marker escapes them.
    id: `bafy:bm test/${process.pid}-${++seq}`,
    cpus: 1,
    memMiB: 256,
    diskGiB: 1,
    region: 'local',
    tdx: false,
    userData: utf8(script),
    validToUnixSecs: Math.floor(Date.now() / 1000) + 3600,
    authorizedKey,
    ...overrides
  }
  madeUsers.add(grantUserName(grant.id))
  return grant
}

function passwd (user: string): string[] | undefined {
  const r = spawnSync('getent', ['passwd', user], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim().split(':') : undefined
}

function userExists (user: string): boolean {
  return spawnSync('id', [user]).status === 0
}

/** Live processes whose real uid is `uid` (from /proc: no procps needed), with their command names. */
async function processesOf (uid: number): Promise<Array<{ pid: number, comm: string }>> {
  const out: Array<{ pid: number, comm: string }> = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '')
    const real = /^Uid:\s+(\d+)/m.exec(status)?.[1]
    if (real === String(uid) && !/^State:\s+Z/m.test(status)) out.push({ pid: Number(entry), comm: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '' })
  }
  return out
}

/** Running (not a zombie awaiting a reaper that this container's PID 1 may never be). */
async function alive (pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  return status !== '' && !/^State:\s+Z/m.test(status)
}

async function typed (p: Promise<unknown>, code: string): Promise<BackendError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof BackendError, `expected BackendError ${code}, got ${String(err)}`)
  assert.equal(err.code, code, err.message)
  return err
}

function hostConfig (overrides: Partial<BareMetalHost> = {}): BareMetalHost {
  const admin = generateGrantKeyPair('admin')
  const hostKey = generateGrantKeyPair('host').authorizedKey
  return { name: 'h', address: '127.0.0.1', port: 22, user: 'root', privateKey: admin.privateKey, hostKey, regions: ['local'], maxCpu: 2, maxMemoryMiB: 1024, maxDiskGiB: 10, tdx: false, ...overrides }
}

describe('BareMetalBackend', () => {
  let sshd: Sshd | undefined
  let root: string
  let shared: string

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'cmesh-bm-test-'))
    shared = join(root, 'shared')
    await mkdir(shared)
    await chmod(root, 0o711)
    await chmod(shared, 0o1777) // grant users leave pid files here
    if (sshdAvailable()) sshd = await startSshd()
  })

  after(async () => {
    for (const user of madeUsers) {
      const entry = passwd(user)
      if (entry === undefined || entry[4]?.startsWith('cmesh-grant=') !== true) continue
      spawnSync('usermod', ['-e', '1', user], { stdio: 'ignore' })
      for (const p of await processesOf(Number(entry[2]))) { try { process.kill(p.pid, 'SIGKILL') } catch { /* gone */ } }
      await new Promise((resolve) => setTimeout(resolve, 300))
      spawnSync('userdel', ['-r', '-f', user], { stdio: 'ignore' })
    }
    await sshd?.stop()
    await rm(root, { recursive: true, force: true })
  })

  function localHost (overrides: Partial<BareMetalHost> = {}): BareMetalHost {
    const s = sshd as Sshd
    return { name: 'lo', address: '127.0.0.1', port: s.port, user: 'root', privateKey: s.adminKey.privateKey, hostKey: s.hostKey, regions: ['local'], maxCpu: 2, maxMemoryMiB: 1024, maxDiskGiB: 10, tdx: false, ...overrides }
  }

  function backendFor (hosts: BareMetalHost[], extra: { userDataTimeoutMs?: number, now?: () => number } = {}): BareMetalBackend {
    return new BareMetalBackend({ name: 'bm-test', hosts, log: quiet, connectTimeoutMs: 20_000, userDataTimeoutMs: 30_000, ...extra })
  }

  it('capabilities are the union of its hosts; canSatisfy needs one host with all of it', () => {
    const backend = new BareMetalBackend({
      name: 'bm',
      log: quiet,
      hosts: [
        hostConfig({ name: 'a', regions: ['eu'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 50 }),
        hostConfig({ name: 'b', regions: ['us', 'eu'], maxCpu: 8, maxMemoryMiB: 2048, maxDiskGiB: 100, tdx: true })
      ]
    })
    assert.equal(backend.kind, 'bare-metal')
    assert.deepEqual(backend.capabilities(), { regions: ['eu', 'us'], maxCpu: 8, maxMemoryMiB: 4096, maxDiskGiB: 100, tdx: true })
    const { authorizedKey } = generateGrantKeyPair('x')
    assert.deepEqual(backend.canSatisfy(makeGrant(authorizedKey, 'true', { region: 'eu', tdx: true, cpus: 8, memMiB: 2048 })), { ok: true })
    const cases: Array<[Partial<Grant>, RegExp]> = [
      [{ region: 'eu', cpus: 8, memMiB: 4096 }, /no single host/],
      [{ region: 'eu', tdx: true, memMiB: 4096 }, /no single host/],
      [{ region: 'ap' }, /region/],
      [{ region: 'eu', cpus: 9 }, /CPUs/],
      [{ region: 'eu', authorizedKey: 'ssh-ed25519 not-base64!' }, /authorized key/],
      [{ region: 'eu', id: 'x'.repeat(201) }, /grant id/],
      [{ region: 'eu', userData: new Uint8Array(64 * 1024 + 1) }, /user_data/]
    ]
    for (const [overrides, reason] of cases) {
      const verdict = backend.canSatisfy(makeGrant(authorizedKey, 'true', overrides))
      assert.ok(!verdict.ok && reason.test(verdict.reason), JSON.stringify(verdict))
    }
    assert.deepEqual(backend.freeCapacity(), [{ host: 'a', cpus: 4, memMiB: 4096, diskGiB: 50 }, { host: 'b', cpus: 8, memMiB: 2048, diskGiB: 100 }])

    assert.throws(() => new BareMetalBackend({ name: 'x', log: quiet, hosts: [hostConfig({ name: 'a' }), hostConfig({ name: 'a' })] }), /twice/)
    assert.throws(() => new BareMetalBackend({ name: 'x', log: quiet, hosts: [hostConfig({ name: 'a/b' })] }), /host name/)
    assert.throws(() => new BareMetalBackend({ name: 'x', log: quiet, hosts: [hostConfig({ hostKey: 'ssh-ed25519 AAAA' })] }), (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_BAD_KEY')

    // The marker: the grant id survives a round trip, and nothing in it can end the GECOS field.
    const marker = grantMarker({ id: 'a:b, c\nd%é', validToUnixSecs: 5, cpus: 1, memMiB: 2, diskGiB: 3 }, 'ff')
    assert.doesNotMatch(marker, /[:,\n]/)
    assert.deepEqual(parseGrantMarker(marker), { grantId: 'a:b, c\nd%é', validToUnixSecs: 5, cpus: 1, memMiB: 2, diskGiB: 3 })
    assert.match(grantUserName('anything'), /^cm[0-9a-f]{12}$/)
  })

  it('provisions a grant user: user_data ran as it, the real ssh client logs in with the pinned host key; terminate removes user and processes', async (t) => {
    if (!requireSshd(t)) return
    const s = sshd as Sshd
    const backend = backendFor([localHost()])
    const keys = generateGrantKeyPair('cmesh-test-grant')
    const grant = makeGrant(keys.authorizedKey, [
      'echo "hello from $(id -un)" > hello.txt',
      'sleep 600 >/dev/null 2>&1 &',
      'echo $! > sleep.pid',
      'cat .cmesh/wif-credential > credential.seen',
      'echo user_data ran'
    ].join('\n'), { cpus: 2, files: [{ path: '.cmesh/wif-credential', content: utf8('credential-for-this-grant\n'), mode: 0o600 }, { path: '.cmesh/wif-url', content: utf8('http://127.0.0.1:1/wif/token\n'), mode: 0o644 }] })
    const user = grantUserName(grant.id)
    const events: ProvisionProgress[] = []
    const instance = await backend.provision(grant, { onProgress: (e) => events.push(e) })
    assert.deepEqual(events.map((e) => e.type), ['provision:starting', 'provision:booting', 'provision:user-data', 'provision:ready'])
    assert.deepEqual(events[3]?.detail, instance)
    assert.deepEqual(instance, {
      grantId: grant.id,
      backend: 'bm-test',
      host: '127.0.0.1',
      port: s.port,
      user,
      hostKeyFingerprint: instance.hostKeyFingerprint,
      hostKey: s.hostKey,
      ipv4: '127.0.0.1',
      handle: `lo/${user}`
    })

    // The per-grant user, marked, with the key installed as sshd's StrictModes wants it.
    const entry = passwd(user)
    assert.ok(entry !== undefined)
    const [, , uidText, , gecos = '', home = '', shell] = entry
    const uid = Number(uidText)
    assert.ok(uid > 0)
    assert.equal(shell, '/bin/sh')
    assert.equal(parseGrantMarker(gecos)?.grantId, grant.id)
    const ak = await stat(join(home, '.ssh', 'authorized_keys'))
    assert.equal(ak.mode & 0o777, 0o600)
    assert.equal(ak.uid, uid)
    assert.equal((await readFile(join(home, '.ssh', 'authorized_keys'), 'utf8')), `${keys.authorizedKey.split(' ').slice(0, 2).join(' ')}\n`)
    assert.equal(await readFile(join(home, '.cmesh', 'user-data.log'), 'utf8'), 'user_data ran\n')
    // The grant's files (workload identity) were in the home, the user's own, before user_data ran.
    const credential = await stat(join(home, '.cmesh', 'wif-credential'))
    assert.equal(credential.mode & 0o777, 0o600)
    assert.equal(credential.uid, uid)
    assert.equal((await stat(join(home, '.cmesh', 'wif-url'))).mode & 0o777, 0o644)
    assert.equal(await readFile(join(home, 'credential.seen'), 'utf8'), 'credential-for-this-grant\n')
    const sleepPid = Number(await readFile(join(home, 'sleep.pid'), 'utf8'))
    assert.ok(await alive(sleepPid))

    // The requester's view: the per-grant key, known_hosts holding only the promised host key.
    const knownHosts = await writeKnownHosts(root, s.port, instance.hostKey)
    assert.equal(await sshKeygenFingerprint(knownHosts), instance.hostKeyFingerprint)
    const target = { port: s.port, user, keyFile: await writePrivateKey(root, 'id-grant', keys.privateKey), knownHosts }
    const r = await ssh(target, ['cat hello.txt; id -u'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `hello from ${user}\n${uid}\n`)
    // Another key does not get in as this user, nor as root.
    const other = generateGrantKeyPair('intruder')
    const otherFile = await writePrivateKey(root, 'id-other', other.privateKey)
    assert.equal((await ssh({ ...target, keyFile: otherFile }, ['true'])).code, 255)
    assert.equal((await ssh({ ...target, user: 'root' }, ['true'])).code, 255)

    // Found by listGrantUsers; the host is full now (2 CPUs), so a second grant does not fit.
    const listed = await backend.listGrantUsers()
    assert.equal(listed.length, 1)
    assert.ok(listed[0]?.ok === true)
    const found = listed[0].users.find((u) => u.user === user)
    assert.deepEqual(found, { host: 'lo', user, uid, grantId: grant.id, validToUnixSecs: grant.validToUnixSecs, cpus: 2, memMiB: 256, diskGiB: 1, tracked: true })
    const next = makeGrant(keys.authorizedKey, 'true')
    assert.match(JSON.stringify(backend.canSatisfy(next)), /free capacity/)
    assert.deepEqual(backend.freeCapacity(), [{ host: 'lo', cpus: 0, memMiB: 768, diskGiB: 9 }])

    // A session the requester left running dies with the grant too.
    const hanging = ssh(target, ['sleep 600'])
    await until(async () => (await processesOf(uid)).filter((p) => p.comm === 'sleep').length === 2, 20_000, 'ssh session sleeping')

    const exited = backend.watchUntilExit(instance)
    await backend.terminate(instance)
    await exited
    assert.equal(userExists(user), false, `${user} still exists`)
    assert.equal(await stat(home).then(() => true, () => false), false, 'home removed')
    await until(async () => !(await alive(sleepPid)), 20_000, 'user_data daemon killed')
    assert.deepEqual(await processesOf(uid), [])
    assert.notEqual((await hanging).code, 0)
    assert.equal((await ssh(target, ['true'])).code, 255)
    const after = await backend.listGrantUsers()
    assert.ok(after[0]?.ok === true && !after[0].users.some((u) => u.user === user))
    assert.deepEqual(backend.canSatisfy(next), { ok: true })

    // Again, and from a fresh backend that never knew it (a restart): a user already gone is fine.
    await backend.terminate(instance)
    await backendFor([localHost()]).terminate(instance)
  })

  it('refuses a host whose key is not the pinned one, and a host that refuses connections; neither leaves anything', async (t) => {
    if (!requireSshd(t)) return
    const { authorizedKey } = generateGrantKeyPair('x')
    const impostor = backendFor([localHost({ hostKey: generateGrantKeyPair('other-host').authorizedKey })])
    const grant = makeGrant(authorizedKey, 'touch should-not-exist')
    const events: string[] = []
    const err = await typed(impostor.provision(grant, { onProgress: (e) => events.push(e.type) }), 'BACKEND_HOST_KEY_MISMATCH')
    assert.match(err.message, /pinned/)
    assert.deepEqual(events, ['provision:starting'])
    assert.equal(userExists(grantUserName(grant.id)), false)
    assert.deepEqual(impostor.canSatisfy(grant), { ok: true }, 'capacity released')

    const closedPort = await (async () => {
      const server = createServer().listen(0, '127.0.0.1')
      await new Promise((resolve) => server.once('listening', resolve))
      const port = (server.address() as { port: number }).port
      await new Promise((resolve) => server.close(resolve))
      return port
    })()
    assert.equal(await probe(closedPort), 'ECONNREFUSED')
    const refused = backendFor([localHost({ name: 'down', port: closedPort })])
    const grant2 = makeGrant(authorizedKey, 'true')
    const err2 = await typed(refused.provision(grant2, {}), 'BACKEND_UNREACHABLE')
    assert.equal(err2.meta.errno, 'ECONNREFUSED')
    assert.equal(userExists(grantUserName(grant2.id)), false)
    assert.deepEqual(refused.canSatisfy(grant2), { ok: true })

    // Health and listing report per host.
    const mixed = backendFor([localHost(), localHost({ name: 'down', port: closedPort }), localHost({ name: 'spoofed', hostKey: generateGrantKeyPair('o').authorizedKey })])
    const health = await mixed.checkHealth()
    assert.equal(health.ok, true, 'one host answering is enough')
    assert.match(health.reason ?? '', /down: BACKEND_UNREACHABLE.*spoofed: BACKEND_HOST_KEY_MISMATCH/)
    assert.deepEqual(health.hosts.map((h) => [h.host, h.ok, h.ok ? '' : h.code]), [['lo', true, ''], ['down', false, 'BACKEND_UNREACHABLE'], ['spoofed', false, 'BACKEND_HOST_KEY_MISMATCH']])
    const down = await refused.checkHealth()
    assert.equal(down.ok, false)
    assert.match(down.reason ?? '', /^down: BACKEND_UNREACHABLE/)
    const lists = await mixed.listGrantUsers()
    assert.deepEqual(lists.map((l) => [l.host, l.ok]), [['lo', true], ['down', false], ['spoofed', false]])
  })

  it('a failing or hanging user_data fails with a typed error and removes the user and its processes', async (t) => {
    if (!requireSshd(t)) return
    const { authorizedKey } = generateGrantKeyPair('x')
    const backend = backendFor([localHost()], { userDataTimeoutMs: 1500 })
    const failing = makeGrant(authorizedKey, 'echo partial > partial.txt\nexit 3\n')
    const err = await typed(backend.provision(failing, {}), 'BACKEND_USER_DATA_FAILED')
    assert.equal(err.meta.exitCode, 3)
    assert.equal(userExists(grantUserName(failing.id)), false)

    // The pid file is root's (the user may write it); what the user leaves in a shared temp dir goes with it.
    const pidFile = join(shared, 'hang.pid')
    const leftover = join(shared, 'leftover')
    await writeFile(pidFile, '', { mode: 0o666 })
    await chmod(pidFile, 0o666)
    const hanging = makeGrant(authorizedKey, `touch ${leftover}\nsleep 600 &\necho $! > ${pidFile}\nwait\n`)
    const events: string[] = []
    const err2 = await typed(backend.provision(hanging, { onProgress: (e) => events.push(e.type) }), 'BACKEND_USER_DATA_TIMEOUT')
    assert.equal(err2.meta.timeoutMs, 1500)
    assert.deepEqual(events, ['provision:starting', 'provision:booting', 'provision:user-data'])
    assert.equal(userExists(grantUserName(hanging.id)), false)
    const pid = Number(await readFile(pidFile, 'utf8'))
    await until(async () => !(await alive(pid)), 20_000, 'hanging user_data killed')
    assert.equal(await stat(leftover).then(() => true, () => false), false, 'the user\'s files in /tmp removed')
    assert.deepEqual(backend.freeCapacity(), [{ host: 'lo', cpus: 2, memMiB: 1024, diskGiB: 10 }])

    // Aborted mid-user_data: same cleanup.
    const controller = new AbortController()
    const aborted = makeGrant(authorizedKey, 'sleep 600\n')
    await typed(backend.provision(aborted, { signal: controller.signal, onProgress: (e) => { if (e.type === 'provision:user-data') setTimeout(() => { controller.abort() }, 300) } }), 'BACKEND_ABORTED')
    assert.equal(userExists(grantUserName(aborted.id)), false)
  })

  it('never removes a user it did not create: a second provision of the same grant (after a restart) fails and leaves the first', async (t) => {
    if (!requireSshd(t)) return
    const { authorizedKey } = generateGrantKeyPair('x')
    const grant = makeGrant(authorizedKey, 'true')
    const first = backendFor([localHost()])
    const instance = await first.provision(grant, {})
    const restarted = backendFor([localHost()])
    const err = await typed(restarted.provision(grant, {}), 'BACKEND_PROVISION_FAILED')
    assert.match(err.message, /already exists/)
    assert.equal(userExists(instance.user), true)
    const listed = await restarted.listGrantUsers()
    assert.ok(listed[0]?.ok === true && listed[0].users.some((u) => u.user === instance.user && u.grantId === grant.id && !u.tracked))
    // The restarted node cleans the orphan up by host and user name.
    await restarted.terminateGrantUser('lo', instance.user)
    assert.equal(userExists(instance.user), false)
    await first.terminate(instance)
  })

  it('ends the grant at valid-to', async (t) => {
    if (!requireSshd(t)) return
    const { authorizedKey } = generateGrantKeyPair('x')
    const offset = 1_000_000_000_000 - Date.now()
    // The admin key from a file this time.
    const keyFile = await writePrivateKey(root, 'admin-key', (sshd as Sshd).adminKey.privateKey)
    const backend = backendFor([{ ...localHost(), privateKey: undefined, privateKeyFile: keyFile }], { now: () => Date.now() + offset })
    const grant = makeGrant(authorizedKey, 'true', { validToUnixSecs: (Date.now() + offset + 2000) / 1000 })
    const instance = await backend.provision(grant, {})
    assert.equal(userExists(instance.user), true)
    await backend.watchUntilExit(instance)
    assert.equal(userExists(instance.user), false)
  })
})
