/**
 * AwsEc2Backend: the real @aws-sdk/client-ec2 against a real moto_server (EC2 API), plus a fault
 * proxy in front of moto for stalls, lost replies and API errors; and the pure parts (instance type
 * choice, cloud-init user data, console host key parsing) on their own.
 *
 * moto answers GetConsoleOutput with a fixed kernel log that has no SSH host key block, and cannot
 * be told otherwise. So against plain moto, provision must fail closed (BACKEND_HOST_KEY_UNKNOWN,
 * instance terminated); the success path uses the `consoleOutput` test seam to supply a cloud-init
 * console, and the parser is tested on a hand-written cloud-init console below.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { gunzipSync } from 'node:zlib'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import ssh2 from 'ssh2'
import {
  DescribeInstanceAttributeCommand, DescribeInstancesCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand,
  type Instance as Ec2Instance
} from '@aws-sdk/client-ec2'
import { createLogger } from '../../src/node/logger.js'
import { BackendError, type Grant, type ProvisionProgress } from '../../src/backends/backend.js'
import {
  AwsEc2Backend, BACKEND_TAG, DEFAULT_INSTANCE_TYPES, GRANT_TAG, MAX_EC2_USER_DATA_BYTES, buildUserData, chooseInstanceType,
  parseConsoleHostKey, parseUserDataExit, type AwsEc2BackendOptions
} from '../../src/backends/aws-ec2.js'
import { generateGrantKeyPair, hostKeyFingerprint, publicKeyBlob } from '../../src/backends/ssh-keys.js'
import { FAKE_CREDENTIALS, motoAvailable, requireMoto, startFaultProxy, startMoto, type FaultProxy, type Moto } from '../helpers/moto.js'

const quiet = createLogger('test', 'silent')
const REGION = 'us-east-1'
const IMAGE = 'ami-760aaa0f' // in moto's built-in catalogue (amzn-ami-hvm, root /dev/xvda)
const grantKey = generateGrantKeyPair('grant-key')
let seq = 0

function makeGrant (overrides: Partial<Grant> = {}): Grant {
  return {
    id: `grant-${process.pid}-${++seq}`,
    cpus: 2,
    memMiB: 1024,
    diskGiB: 10,
    region: REGION,
    tdx: false,
    userData: new TextEncoder().encode('#!/bin/sh\necho hello "$(id -u)" > /tmp/x\n'),
    validToUnixSecs: Math.floor(Date.now() / 1000) + 3600,
    authorizedKey: grantKey.authorizedKey,
    ...overrides
  }
}

async function typed (p: Promise<unknown>, code: string): Promise<BackendError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof BackendError, `expected BackendError ${code}, got ${String(err)}`)
  assert.equal(err.code, code, err.message)
  return err
}

function keyLine (publicKey: string): string {
  return publicKey.trim().split(/\s+/).slice(0, 2).join(' ')
}

// Real keys, so the parser's validation and fingerprints are exercised for real.
const ed = keyLine(ssh2.utils.generateKeyPairSync('ed25519').public)
const ecdsa = keyLine(ssh2.utils.generateKeyPairSync('ecdsa', { bits: 256 }).public)
const forged = keyLine(ssh2.utils.generateKeyPairSync('ed25519').public)

/** What an Amazon Linux 2023 / Ubuntu boot leaves on the serial console, trimmed (hand-written). */
function cloudInitConsole (opts: { prefix?: string, userDataExit?: number, forgedEarlier?: boolean } = {}): string {
  const p = opts.prefix ?? ''
  return [
    '[    0.000000] Linux version 6.1.61-85.141.amzn2023.x86_64 (mockbuild@ip-10-0-56-48) #1 SMP PREEMPT_DYNAMIC',
    '[    0.000000] Command line: BOOT_IMAGE=(hd0,gpt1)/boot/vmlinuz root=UUID=1b2c console=tty0 console=ttyS0,115200n8',
    '[   12.345678] cloud-init[1502]: Cloud-init v. 22.2.2 running \'modules:config\' at Mon, 01 Dec 2026 10:00:10 +0000.',
    ...(opts.forgedEarlier === true ? ['-----BEGIN SSH HOST KEY KEYS-----', forged, '-----END SSH HOST KEY KEYS-----'] : []),
    ...(opts.userDataExit !== undefined ? [`cmesh-user-data-exit=${opts.userDataExit}`] : []),
    `${p}#############################################################`,
    `${p}-----BEGIN SSH HOST KEY FINGERPRINTS-----`,
    `${p}256 ${hostKeyFingerprint(publicKeyBlob(ecdsa))} root@ip-172-31-20-7.ec2.internal (ECDSA)`,
    `${p}256 ${hostKeyFingerprint(publicKeyBlob(ed))} root@ip-172-31-20-7.ec2.internal (ED25519)`,
    `${p}-----END SSH HOST KEY FINGERPRINTS-----`,
    `${p}#############################################################`,
    `${p}-----BEGIN SSH HOST KEY KEYS-----`,
    `${p}${ecdsa} root@ip-172-31-20-7.ec2.internal`,
    `${p}${ed} root@ip-172-31-20-7.ec2.internal`,
    `${p}-----END SSH HOST KEY KEYS-----`,
    '[   20.123456] cloud-init[1603]: Cloud-init v. 22.2.2 finished at Mon, 01 Dec 2026 10:00:20 +0000. Datasource DataSourceEc2.  Up 20.10 seconds',
    ''
  ].join('\r\n')
}

describe('AwsEc2Backend (pure parts)', () => {
  it('chooses the smallest covering instance type', () => {
    assert.equal(chooseInstanceType(DEFAULT_INSTANCE_TYPES, 1, 512)?.type, 't3.micro')
    assert.equal(chooseInstanceType(DEFAULT_INSTANCE_TYPES, 2, 3000)?.type, 't3.medium')
    assert.equal(chooseInstanceType(DEFAULT_INSTANCE_TYPES, 3, 1024)?.type, 't3.xlarge')
    assert.equal(chooseInstanceType(DEFAULT_INSTANCE_TYPES, 10, 1024)?.type, 'm5.4xlarge')
    assert.equal(chooseInstanceType(DEFAULT_INSTANCE_TYPES, 97, 1024), undefined)
    assert.equal(chooseInstanceType([{ type: 'c5.large', cpus: 2, memMiB: 4096 }], 2, 4096)?.type, 'c5.large')
  })

  it('builds multipart cloud-init user data that keeps the requester\'s bytes apart', () => {
    const evil = new TextEncoder().encode("#!/bin/sh\n'; rm -rf / #\n--cmesh-part-boundary--\n$(reboot)\n")
    const key = generateGrantKeyPair('comment with spaces')
    const text = (buildUserData(key.authorizedKey, evil) as Buffer).toString('ascii')
    assert.match(text, /^Content-Type: multipart\/mixed; boundary="cmesh-part-boundary"/)
    assert.equal(text.match(/^--cmesh-part-boundary$/gm)?.length, 2)
    assert.match(text, /Content-Type: text\/cloud-config/)
    assert.match(text, /Content-Type: text\/x-shellscript/)
    assert.ok(text.includes(`      - ${JSON.stringify(keyLine(key.authorizedKey))}\n`), 'key re-serialised without its comment')
    assert.ok(!text.includes('comment with spaces'))
    assert.ok(!text.includes('rm -rf') && !text.includes('reboot'), 'user_data only appears base64-encoded')
    const b64 = /content: (\S+)/.exec(text)?.[1] as string
    assert.deepEqual(new Uint8Array(Buffer.from(b64, 'base64')), evil)
    assert.match(text, /\/bin\/sh \/var\/lib\/cmesh\/user-data /)
  })

  it('gzips large user data and refuses what EC2 cannot take', () => {
    const compressible = new Uint8Array(40_000).fill(0x61)
    const gz = buildUserData(grantKey.authorizedKey, compressible) as Buffer
    assert.ok(gz.length <= MAX_EC2_USER_DATA_BYTES)
    assert.match(gunzipSync(gz).toString('ascii'), /#cloud-config/)
    const random = new Uint8Array(20_000).map(() => Math.floor(Math.random() * 256))
    assert.equal(buildUserData(grantKey.authorizedKey, random), undefined)
  })

  it('reads the host key from a cloud-init console, preferring ed25519', () => {
    for (const prefix of ['', 'ec2: ', '<14>Dec  1 10:00:20 cloud-init: ']) {
      const got = parseConsoleHostKey(cloudInitConsole({ prefix }))
      assert.deepEqual(got, { hostKey: ed, fingerprint: hostKeyFingerprint(publicKeyBlob(ed)) }, `prefix ${JSON.stringify(prefix)}`)
    }
    // The genuine block is printed last (keys-to-console runs after user_data): an earlier look-alike loses.
    assert.equal(parseConsoleHostKey(cloudInitConsole({ forgedEarlier: true }))?.hostKey, ed)
    const ecdsaOnly = cloudInitConsole().split('\r\n').filter((l) => !l.startsWith('ssh-ed25519')).join('\n')
    assert.equal(parseConsoleHostKey(ecdsaOnly)?.hostKey, ecdsa)
  })

  it('finds no host key in an incomplete, garbled or key-less console', () => {
    const full = cloudInitConsole()
    assert.equal(parseConsoleHostKey(full.slice(0, full.indexOf('-----END SSH HOST KEY KEYS'))), undefined, 'block not finished')
    assert.equal(parseConsoleHostKey('Linux version 2.6.16-xenU\nKernel command line: root=/dev/sda1 ro 4\n'), undefined, "moto's canned console")
    const garbled = ['-----BEGIN SSH HOST KEY KEYS-----', 'ssh-ed25519 AAAAnotakey', '-----END SSH HOST KEY KEYS-----'].join('\n')
    assert.equal(parseConsoleHostKey(garbled), undefined)
    assert.equal(parseUserDataExit(cloudInitConsole({ userDataExit: 3 })), 3)
    assert.equal(parseUserDataExit(full), undefined)
  })
})

describe('AwsEc2Backend against moto_server', () => {
  let moto: Moto | undefined
  let direct: EC2Client
  const backends: AwsEc2Backend[] = []
  const proxies: FaultProxy[] = []
  const stalls: Array<() => Promise<void>> = []

  before(async () => {
    if (!motoAvailable()) {
      if (process.env.CI === 'true') throw new Error('moto_server missing on CI (pip install "moto[server]")')
      return // each test skips itself through requireMoto
    }
    moto = await startMoto()
    direct = new EC2Client({ region: REGION, endpoint: moto.endpoint, credentials: FAKE_CREDENTIALS })
  })

  after(async () => {
    for (const b of backends) b.destroy()
    direct?.destroy()
    for (const p of proxies) await p.close()
    for (const s of stalls) await s()
    await moto?.stop()
  })

  function backend (options: Partial<AwsEc2BackendOptions> = {}): AwsEc2Backend {
    const b = new AwsEc2Backend({
      name: 'aws-test',
      regions: [{ region: REGION, imageId: IMAGE }],
      maxCpu: 16,
      maxMemoryMiB: 65536,
      maxDiskGiB: 100,
      endpoint: moto?.endpoint,
      credentials: FAKE_CREDENTIALS,
      log: quiet,
      pollIntervalMs: 50,
      provisionTimeoutMs: 20_000,
      terminateTimeoutMs: 20_000,
      ...options
    })
    backends.push(b)
    return b
  }

  async function byGrant (grantId: string): Promise<Ec2Instance[]> {
    const out = await direct.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${GRANT_TAG}`, Values: [grantId] }] }))
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? [])
  }

  function assertNoneLive (instances: Ec2Instance[]): void {
    for (const i of instances) assert.ok(['shutting-down', 'terminated'].includes(i.State?.Name ?? ''), `${i.InstanceId} is ${i.State?.Name}`)
  }

  async function proxy (): Promise<FaultProxy> {
    const p = await startFaultProxy((moto as Moto).endpoint)
    proxies.push(p)
    return p
  }

  it('provisions a tagged, running instance and terminates it', async (t) => {
    if (!requireMoto(t)) return
    const seenConsole: string[] = []
    const b = backend({ consoleOutput: async (id) => { seenConsole.push(id); return cloudInitConsole({ prefix: 'ec2: ', userDataExit: 0 }) } })
    const credential = new TextEncoder().encode('workload-credential-of-this-grant\n')
    const grant = makeGrant({ files: [{ path: '.cmesh/wif-credential', content: credential, mode: 0o600 }] })
    assert.deepEqual(b.canSatisfy(grant), { ok: true })
    const events: ProvisionProgress[] = []
    const instance = await b.provision(grant, { onProgress: (e) => events.push(e) })
    assert.deepEqual(events.map((e) => e.type), ['provision:starting', 'provision:booting', 'provision:user-data', 'provision:ready'])
    assert.equal(instance.backend, 'aws-test')
    assert.equal(instance.user, 'cmesh')
    assert.equal(instance.port, 22)
    assert.equal(instance.hostKey, ed)
    assert.equal(instance.hostKeyFingerprint, hostKeyFingerprint(publicKeyBlob(ed)))
    assert.match(instance.handle ?? '', /^i-[0-9a-f]+$/)
    assert.deepEqual(seenConsole, [instance.handle])
    assert.deepEqual(b.canSatisfy(grant), { ok: false, reason: 'grant already provisioned' })

    const [ec2] = await byGrant(grant.id)
    assert.ok(ec2 !== undefined)
    assert.equal(ec2.InstanceId, instance.handle)
    assert.equal(ec2.State?.Name, 'running')
    assert.equal(ec2.InstanceType, 't3.micro')
    assert.equal(ec2.ImageId, IMAGE)
    assert.equal(ec2.Tags?.find((x) => x.Key === BACKEND_TAG)?.Value, 'aws-test')
    assert.equal(instance.ipv4, ec2.PublicIpAddress ?? ec2.PrivateIpAddress)
    assert.equal(instance.host, instance.ipv4)
    assert.ok(instance.host.length > 0)
    const attr = await direct.send(new DescribeInstanceAttributeCommand({ InstanceId: instance.handle, Attribute: 'userData' }))
    const userData = Buffer.from(attr.UserData?.Value ?? '', 'base64').toString('ascii')
    assert.match(userData, /#cloud-config/)
    // The root-run script places the grant's files in cmesh's home (owned by it), then runs the requester's user_data.
    const script = Buffer.from(/content: (\S+)/.exec(userData)?.[1] ?? '', 'base64').toString('utf8')
    assert.ok(script.includes(`printf '%s' '${Buffer.from(credential).toString('base64')}' | base64 -d > '.cmesh/wif-credential'`), script)
    assert.ok(script.includes("chown cmesh: '.cmesh/wif-credential'") && script.includes("cd '/home/cmesh'"))
    assert.ok(script.includes(Buffer.from(grant.userData).toString('base64')))
    assert.ok(!userData.includes('workload-credential-of-this-grant'), 'never as text')
    assert.deepEqual(await b.findOrphans(), [], 'a live, held instance is no orphan')

    await b.terminate(instance)
    const [gone] = await byGrant(grant.id)
    assert.ok(['shutting-down', 'terminated'].includes(gone?.State?.Name ?? ''), gone?.State?.Name)
    await b.terminate(instance) // idempotent
    assert.deepEqual(b.canSatisfy(grant), { ok: true })
    assert.deepEqual(await b.checkHealth(), { ok: true, regions: [{ region: REGION, ok: true }] })
  })

  it('fails closed when the console shows no host key (moto\'s canned console), leaving no instance', async (t) => {
    if (!requireMoto(t)) return
    const b = backend({ provisionTimeoutMs: 1500 })
    const grant = makeGrant()
    const started = Date.now()
    await typed(b.provision(grant, {}), 'BACKEND_HOST_KEY_UNKNOWN')
    assert.ok(Date.now() - started < 15_000)
    const left = await byGrant(grant.id)
    assert.equal(left.length, 1, 'it did start one')
    assertNoneLive(left)
  })

  it('fails with the user_data exit status and terminates the instance', async (t) => {
    if (!requireMoto(t)) return
    const b = backend({ consoleOutput: async () => cloudInitConsole({ userDataExit: 7 }) })
    const grant = makeGrant()
    const err = await typed(b.provision(grant, {}), 'BACKEND_USER_DATA_FAILED')
    assert.equal((err.meta as { exitCode?: number }).exitCode, 7)
    assertNoneLive(await byGrant(grant.id))
  })

  it('findOrphans reports tagged live instances it does not hold, not terminated ones', async (t) => {
    if (!requireMoto(t)) return
    const b = backend()
    const run = async (grantId: string, backendName = 'aws-test'): Promise<string> => {
      const out = await direct.send(new RunInstancesCommand({
        ImageId: IMAGE,
        InstanceType: 't3.micro',
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: GRANT_TAG, Value: grantId }, { Key: BACKEND_TAG, Value: backendName }] }]
      }))
      return out.Instances?.[0]?.InstanceId as string
    }
    const live = await run('orphan-live')
    const dead = await run('orphan-dead')
    const foreign = await run('orphan-foreign', 'someone-else')
    await direct.send(new TerminateInstancesCommand({ InstanceIds: [dead] }))
    const orphans = await b.findOrphans()
    assert.deepEqual(orphans.filter((o) => o.grantId.startsWith('orphan-')).map(({ grantId, instanceId, region }) => ({ grantId, instanceId, region })),
      [{ grantId: 'orphan-live', instanceId: live, region: REGION }])
    await direct.send(new TerminateInstancesCommand({ InstanceIds: [live, foreign] }))
    assert.deepEqual((await b.findOrphans()).filter((o) => o.grantId.startsWith('orphan-')), [])
  })

  it('times out against an endpoint that accepts and never answers', async (t) => {
    if (!requireMoto(t)) return
    const sockets = new Set<Socket>()
    const stall = createServer((s) => { sockets.add(s); s.on('error', () => {}) })
    stall.listen(0, '127.0.0.1')
    await once(stall, 'listening')
    stalls.push(async () => { for (const s of sockets) s.destroy(); await new Promise((resolve) => stall.close(resolve)) })
    const port = (stall.address() as { port: number }).port
    const b = backend({ endpoint: `http://127.0.0.1:${port}`, provisionTimeoutMs: 1500, terminateTimeoutMs: 1500 })
    const started = Date.now()
    await typed(b.provision(makeGrant({ diskGiB: 0 }), {}), 'BACKEND_TIMEOUT')
    // The provision budget, then a bounded cleanup attempt (which also stalls); generous for a busy machine.
    assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`)
    const health = await b.checkHealth(AbortSignal.timeout(500))
    assert.equal(health.ok, false)
  })

  it('a RunInstances whose reply is lost: typed timeout, and the instance it made is found by tag and terminated', async (t) => {
    if (!requireMoto(t)) return
    const p = await proxy()
    p.faults.set('RunInstances', 'forward-then-stall')
    const b = backend({ endpoint: p.endpoint, provisionTimeoutMs: 2500 })
    const grant = makeGrant()
    const started = Date.now()
    await typed(b.provision(grant, {}), 'BACKEND_TIMEOUT')
    assert.ok(Date.now() - started < 15_000, `${Date.now() - started} ms`)
    await p.settled()
    const made = await byGrant(grant.id)
    assert.equal(made.length, 1, 'moto did create the instance')
    assertNoneLive(made)
  })

  it('RunInstances succeeds but the wait fails on an API error: the instance is terminated', async (t) => {
    if (!requireMoto(t)) return
    const p = await proxy()
    p.faults.set('DescribeInstances', { status: 403, code: 'UnauthorizedOperation' })
    const b = backend({ endpoint: p.endpoint })
    const grant = makeGrant()
    const err = await typed(b.provision(grant, {}), 'BACKEND_PROVISION_FAILED')
    assert.match(err.message, /UnauthorizedOperation/)
    assert.ok(p.seen.includes('TerminateInstances'))
    const made = await byGrant(grant.id)
    assert.equal(made.length, 1)
    assertNoneLive(made)
  })

  it('RunInstances succeeds but the wait stalls until the caller aborts: the instance is terminated', async (t) => {
    if (!requireMoto(t)) return
    const p = await proxy()
    p.faults.set('DescribeInstances', 'stall')
    const b = backend({ endpoint: p.endpoint })
    const grant = makeGrant()
    const controller = new AbortController()
    const aborted = typed(b.provision(grant, { signal: controller.signal }), 'BACKEND_ABORTED')
    const deadline = Date.now() + 15_000
    while (!p.seen.includes('DescribeInstances') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    controller.abort()
    await aborted
    const made = await byGrant(grant.id)
    assert.equal(made.length, 1)
    assertNoneLive(made)
  })

  it('watchUntilExit resolves when the instance is terminated elsewhere, and ends it at valid-to', async (t) => {
    if (!requireMoto(t)) return
    const b = backend({ consoleOutput: async () => cloudInitConsole() })
    const external = makeGrant()
    const first = await b.provision(external, {})
    const watched = b.watchUntilExit(first, external.validToUnixSecs)
    await direct.send(new TerminateInstancesCommand({ InstanceIds: [first.handle as string] }))
    await watched

    const short = makeGrant({ validToUnixSecs: Math.floor(Date.now() / 1000) + 2 })
    const second = await b.provision(short, {})
    await b.watchUntilExit(second, short.validToUnixSecs)
    assert.ok(Date.now() >= (short.validToUnixSecs - 1) * 1000)
    assertNoneLive(await byGrant(short.id))
  })

  it('refuses what it cannot host', () => {
    const b = backend()
    assert.equal(b.canSatisfy(makeGrant({ region: 'eu-west-1' })).ok, false)
    assert.equal(b.canSatisfy(makeGrant({ tdx: true })).ok, false)
    assert.equal(b.canSatisfy(makeGrant({ authorizedKey: 'not a key' })).ok, false)
    assert.equal(b.kind, 'aws-ec2')
    assert.deepEqual(b.capabilities(), { regions: [REGION], maxCpu: 16, maxMemoryMiB: 65536, maxDiskGiB: 100, tdx: false })
  })
})
