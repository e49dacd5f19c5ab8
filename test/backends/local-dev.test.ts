/**
 * LocalDevBackend against the real OpenSSH client: the per-grant key logs in, the host key is the
 * one the Instance promised, everything else is refused, and the machine ends on terminate(),
 * at valid-to, or when its user_data hangs.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import type { ParsedKey } from 'ssh2'
import { utf8 } from '../../src/market/bytes.js'
import { createLogger } from '../../src/node/logger.js'
import { generateReceiptKeyPair, openReceipt, sealReceipt } from '../../src/market/sealed-receipt.js'
import { BackendError, type Grant, type Instance, type ProvisionProgress } from '../../src/backends/backend.js'
import { LocalDevBackend } from '../../src/backends/local-dev.js'
import { generateGrantKeyPair, hostKeyFingerprint, parsePublicKey, publicKeyBlob } from '../../src/backends/ssh-keys.js'
import {
  keyscan, probe, requireSsh, ssh, sshKeygenFingerprint, until, writeKnownHosts, writePrivateKey, type SshTarget
} from '../helpers/ssh.js'

const quiet = createLogger('test', 'silent')
let seq = 0

function makeGrant (authorizedKey: string, script: string, overrides: Partial<Grant> = {}): Grant {
  return {
    id: `grant-${process.pid}-${++seq}`,
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
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function typed (p: Promise<unknown>, code: string): Promise<BackendError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof BackendError, `expected BackendError ${code}, got ${String(err)}`)
  assert.equal(err.code, code, err.message)
  return err
}

describe('LocalDevBackend', () => {
  let root: string
  let workRoot: string
  let backend: LocalDevBackend

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'cmesh-local-test-'))
    workRoot = join(root, 'work')
    await mkdir(workRoot)
    backend = new LocalDevBackend({ log: quiet, workRoot, userDataTimeoutMs: 20_000 })
  })

  after(async () => {
    await backend.stopAll()
    await rm(root, { recursive: true, force: true })
  })

  /** Provisions a grant and pins its host key the way a requester does: fetch it, check the promised fingerprint. */
  async function provisionForSsh (script: string): Promise<{ instance: Instance, target: SshTarget, privateKey: string }> {
    const keys = generateGrantKeyPair('cmesh-test-grant')
    const instance = await backend.provision(makeGrant(keys.authorizedKey, script), {})
    const hostLine = await keyscan(instance.port)
    assert.equal(hostKeyFingerprint(publicKeyBlob(hostLine)), instance.hostKeyFingerprint)
    const knownHosts = await writeKnownHosts(root, instance.port, hostLine)
    assert.equal(await sshKeygenFingerprint(knownHosts), instance.hostKeyFingerprint, 'ours matches ssh-keygen -lf')
    const keyFile = await writePrivateKey(root, `id-${instance.grantId}`, keys.privateKey)
    return { instance, target: { port: instance.port, keyFile, knownHosts }, privateKey: keys.privateKey }
  }

  it('refuses grants it cannot host', async () => {
    const { authorizedKey } = generateGrantKeyPair('x')
    const cases: Array<[Partial<Grant>, RegExp]> = [
      [{ tdx: true }, /TDX/],
      [{ region: 'eu-west-1' }, /region/],
      [{ cpus: 100_000 }, /CPUs/],
      [{ validToUnixSecs: Math.floor(Date.now() / 1000) - 1 }, /expired/],
      [{ authorizedKey: 'ssh-ed25519 not-base64!' }, /authorized key/],
      [{ userData: new Uint8Array(64 * 1024 + 1) }, /user_data/]
    ]
    for (const [overrides, reason] of cases) {
      const grant = makeGrant(authorizedKey, 'true', overrides)
      const verdict = backend.canSatisfy(grant)
      assert.ok(!verdict.ok && reason.test(verdict.reason), JSON.stringify(verdict))
      await typed(backend.provision(grant, {}), 'BACKEND_CANNOT_SATISFY')
    }
    assert.deepEqual(await readdir(workRoot), [])
  })

  it('runs user_data, then the real ssh client logs in with the per-grant key and a pinned host key', async (t) => {
    if (!requireSsh(t)) return
    const keys = generateGrantKeyPair('cmesh-test-grant')
    const events: ProvisionProgress[] = []
    const grant = makeGrant(keys.authorizedKey, 'echo "hello from user_data" > hello.txt\necho ran\n')
    const instance = await backend.provision(grant, { onProgress: (e) => events.push(e) })
    assert.deepEqual(events.map((e) => e.type), ['provision:starting', 'provision:booting', 'provision:user-data', 'provision:ready'])
    assert.deepEqual(events[3]?.detail, instance)
    assert.equal(instance.user, 'cmesh')
    assert.equal(instance.host, '127.0.0.1')
    assert.equal(instance.backend, backend.name)
    assert.match(instance.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/)
    assert.equal(await readFile(join(instance.handle as string, 'user-data.log'), 'utf8'), 'ran\n')
    await backend.terminate(instance)

    const { instance: inst, target } = await provisionForSsh('echo "hello from user_data" > hello.txt\n')
    const cat = await ssh(target, ['cat', 'hello.txt'])
    assert.equal(cat.code, 0, cat.stderr)
    assert.equal(cat.stdout, 'hello from user_data\n')

    const status = await ssh(target, ['echo out; echo err >&2; exit 7'])
    assert.deepEqual([status.code, status.stdout, status.stderr], [7, 'out\n', 'err\n'])

    const env = await ssh(target, ['pwd; echo "$HOME $USER"; env | wc -l'])
    const [pwd, homeUser, envCount] = env.stdout.trim().split('\n')
    assert.equal(pwd, inst.handle)
    assert.equal(homeUser, `${inst.handle} cmesh`)
    assert.ok(Number(envCount) <= 10, `minimal env: ${envCount} variables`)

    // stdin reaches the command; a shell session works without a pty.
    const piped = await ssh(target, ['wc', '-c'], { input: 'twelve bytes' })
    assert.equal(piped.stdout.trim(), '12')
    const shell = await ssh(target, [], { input: 'echo in-shell; exit 3\n', extra: ['-T'] })
    assert.equal(shell.code, 3, shell.stderr)
    assert.match(shell.stdout, /in-shell/)

    // Nothing else: no forwarding either way, no sftp.
    const direct = await ssh(target, [], { extra: ['-W', '127.0.0.1:9'] })
    assert.equal(direct.code, 255)
    assert.match(direct.stderr, /forwarding failed|open failed|prohibited/)
    const remote = await ssh(target, [], { extra: ['-N', '-R', '127.0.0.1:0:127.0.0.1:9', '-o', 'ExitOnForwardFailure=yes'] })
    assert.equal(remote.code, 255)
    assert.match(remote.stderr, /forwarding failed/)
    const sftp = await ssh(target, ['sftp'], { extra: ['-s'] })
    assert.notEqual(sftp.code, 0)
    assert.match(sftp.stderr, /subsystem request failed/)
    await backend.terminate(inst)
  })

  it('refuses another key, another user, a forged signature and passwords', async (t) => {
    if (!requireSsh(t)) return
    const { instance, target, privateKey } = await provisionForSsh('true')
    const other = generateGrantKeyPair('intruder')
    const otherFile = await writePrivateKey(root, 'id-other', other.privateKey)
    const wrongKey = await ssh({ ...target, keyFile: otherFile }, ['true'])
    assert.equal(wrongKey.code, 255)
    assert.match(wrongKey.stderr, /Permission denied \(publickey\)/)

    const wrongUser = await ssh({ ...target, user: 'root' }, ['true'])
    assert.equal(wrongUser.code, 255)

    // Even asked for password or keyboard-interactive, the server offers publickey only.
    const password = await ssh({ ...target, keyFile: otherFile }, ['true'], { extra: ['-o', 'PreferredAuthentications=password,keyboard-interactive', '-o', 'PubkeyAuthentication=no'] })
    assert.equal(password.code, 255)
    assert.match(password.stderr, /Permission denied \(publickey\)/)
    const ssh2Password = await ssh2Login(instance.port, { password: 'cmesh' })
    assert.match(ssh2Password, /authentication methods failed/)

    // The right public key signed by another key: the signature check, not the key match, refuses it.
    const granted = parsePublicKey(privateKey)
    const intruder = parsePublicKey(other.privateKey)
    assert.equal(await ssh2Login(instance.port, { agent: fakeAgent(granted, granted) }), 'ready')
    assert.match(await ssh2Login(instance.port, { agent: fakeAgent(granted, intruder) }), /authentication methods failed/)

    // A host key other than the promised one is refused by the client.
    const wrongHostFile = join(root, 'known_hosts-wrong')
    await writeFile(wrongHostFile, `[127.0.0.1]:${instance.port} ${other.authorizedKey.split(' ').slice(0, 2).join(' ')}\n`)
    const spoofed = await ssh({ ...target, knownHosts: wrongHostFile }, ['true'])
    assert.equal(spoofed.code, 255)
    assert.match(spoofed.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/)
    await backend.terminate(instance)
  })

  it('terminate() ends sessions, closes the port and removes the workspace; again is a no-op', async (t) => {
    if (!requireSsh(t)) return
    const daemonPid = join(root, 'daemon.pid')
    const { instance, target } = await provisionForSsh(`sleep 300 >/dev/null 2>&1 &\necho $! > ${daemonPid}\n`)
    const workspace = instance.handle as string
    assert.ok(await exists(workspace))
    assert.equal(await probe(instance.port), 'connected')
    const ended = backend.watchUntilExit(instance)
    const hanging = ssh(target, ['touch started; sleep 300'])
    await until(async () => await exists(join(workspace, 'started')), 20_000, 'ssh session')
    const start = Date.now()
    await backend.terminate(instance)
    await ended
    const r = await hanging
    assert.notEqual(r.code, 0)
    assert.ok(Date.now() - start < 10_000)
    assert.equal(await probe(instance.port), 'ECONNREFUSED')
    assert.equal(await exists(workspace), false)
    // What user_data left running died with the instance.
    const pid = Number(await readFile(daemonPid, 'utf8'))
    await until(() => !alive(pid), 20_000, 'user_data daemon killed')
    await backend.terminate(instance)
  })

  it('ends the instance at valid-to', async () => {
    const { authorizedKey } = generateGrantKeyPair('short')
    const now = Date.now()
    // The injected clock says valid-to is 1.5 s away.
    const clockBackend = new LocalDevBackend({ log: quiet, workRoot, now: () => Date.now() - now + 1_000_000_000_000 })
    const validToUnixSecs = (1_000_000_000_000 + 1500) / 1000
    const instance = await clockBackend.provision(makeGrant(authorizedKey, 'true', { validToUnixSecs }), {})
    assert.equal(await probe(instance.port), 'connected')
    await until(async () => !(await exists(instance.handle as string)), 20_000, 'valid-to teardown')
    await clockBackend.watchUntilExit(instance)
    assert.equal(await probe(instance.port), 'ECONNREFUSED')
  })

  it('kills user_data that hangs at the timeout, whole process group, with a typed error', async () => {
    const { authorizedKey } = generateGrantKeyPair('hang')
    const pidFile = join(root, 'hang.pid')
    const hangBackend = new LocalDevBackend({ log: quiet, workRoot, userDataTimeoutMs: 500 })
    const events: string[] = []
    const err = await typed(hangBackend.provision(makeGrant(authorizedKey, `sleep 300 &\necho $! > ${pidFile}\nwait\n`), { onProgress: (e) => events.push(e.type) }), 'BACKEND_USER_DATA_TIMEOUT')
    assert.equal(err.meta.timeoutMs, 500)
    assert.deepEqual(events, ['provision:starting', 'provision:booting', 'provision:user-data'])
    const pid = Number(await readFile(pidFile, 'utf8'))
    await until(() => !alive(pid), 20_000, 'sleep killed')
    assert.deepEqual(await readdir(workRoot), [])
  })

  it('fails on a failing user_data and stops on abort', async () => {
    const { authorizedKey } = generateGrantKeyPair('fail')
    const err = await typed(backend.provision(makeGrant(authorizedKey, 'exit 3\n'), {}), 'BACKEND_USER_DATA_FAILED')
    assert.equal(err.meta.exitCode, 3)
    const controller = new AbortController()
    const pending = backend.provision(makeGrant(authorizedKey, 'sleep 300\n'), { signal: controller.signal, onProgress: (e) => { if (e.type === 'provision:booting') setTimeout(() => { controller.abort() }, 200) } })
    await typed(pending, 'BACKEND_ABORTED')
    await typed(backend.provision(makeGrant(authorizedKey, 'true'), { signal: AbortSignal.abort() }), 'BACKEND_ABORTED')
    assert.deepEqual(await readdir(workRoot), [])
  })

  it('a sealed receipt is all a requester needs to log in', async (t) => {
    if (!requireSsh(t)) return
    const receiptKey = await generateReceiptKeyPair()
    const grantKey = generateGrantKeyPair('receipt')
    const grant = makeGrant(grantKey.authorizedKey, 'echo sealed > proof.txt\n')
    const instance = await backend.provision(grant, {})
    const aad = utf8('cid-of-the-ccr')
    const sealed = await sealReceipt({
      host: instance.host, port: instance.port, user: instance.user, privateKey: grantKey.privateKey,
      hostKeyFingerprint: instance.hostKeyFingerprint, hostKey: instance.hostKey, grantId: grant.id, validToUnixSecs: grant.validToUnixSecs
    }, receiptKey.publicKey, aad)

    const receipt = await openReceipt(sealed, receiptKey.privateKey, aad)
    const hostLine = await keyscan(receipt.port)
    assert.equal(hostKeyFingerprint(publicKeyBlob(hostLine)), receipt.hostKeyFingerprint)
    const target = { port: receipt.port, user: receipt.user, keyFile: await writePrivateKey(root, 'id-receipt', receipt.privateKey), knownHosts: await writeKnownHosts(root, receipt.port, hostLine) }
    const r = await ssh(target, ['cat', 'proof.txt'])
    assert.equal(r.stdout, 'sealed\n', r.stderr)
    await backend.terminate(instance)
  })
})

/** A key agent offering `offered` but signing with `signer`: tests the server's signature check. */
function fakeAgent (offered: ParsedKey, signer: ParsedKey): ssh2.BaseAgent {
  return new (class extends ssh2.BaseAgent {
    override getIdentities (cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void { cb(undefined, [offered]) }
    override sign (_pub: ParsedKey, data: Buffer, options: unknown, cb?: (err: Error | undefined, sig?: Buffer) => void): void {
      const done = typeof options === 'function' ? options as typeof cb : cb
      done?.(undefined, signer.sign(data))
    }
  })()
}

/** 'ready', or the ssh2 client's error message. */
async function ssh2Login (port: number, auth: { password?: string, agent?: ssh2.BaseAgent }): Promise<string> {
  const client = new ssh2.Client()
  return await new Promise((resolve) => {
    client.once('ready', () => { client.end(); resolve('ready') })
    client.once('error', (err) => { client.end(); resolve(err.message) })
    client.connect({ host: '127.0.0.1', port, username: 'cmesh', hostVerifier: () => true, tryKeyboard: false, readyTimeout: 20_000, ...auth })
  })
}
