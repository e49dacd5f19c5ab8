/**
 * AWS EC2 backend: one grant = one EC2 instance, tagged `cmesh:grant` / `cmesh:backend`, booted from
 * a configured image with a cloud-init user data that creates user `cmesh` (the grant's key only)
 * and then runs the requester's user_data once, as root.
 *
 * Host key: EC2 never hands out an instance's SSH host key through its API. The only authenticated
 * channel is the instance's console output, where cloud-init's `keys-to-console` module prints a
 * `-----BEGIN SSH HOST KEY KEYS-----` block at the end of boot (after `scripts-user`, i.e. after the
 * requester's user_data). So provision waits for `running`, then polls GetConsoleOutput until that
 * block appears, and fails closed (BACKEND_HOST_KEY_UNKNOWN, instance terminated) if it never does:
 * an Instance without a pinned host key would let anyone on the path impersonate the machine.
 *
 * Credentials come from the options or the SDK's default chain (env, files, instance metadata);
 * they are handed to the SDK and never logged or echoed in errors.
 */
import { userDataWithFiles } from './grant-files.js'
import { randomUUID } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import {
  DescribeImagesCommand, DescribeInstancesCommand, EC2Client, GetConsoleOutputCommand, RunInstancesCommand,
  TerminateInstancesCommand, type EC2ClientConfig, type Instance as Ec2Instance, type RunInstancesCommandInput
} from '@aws-sdk/client-ec2'
import {
  BackendError, checkCapabilities, type Backend, type BackendCapabilities, type BackendErrorCode, type CanSatisfy,
  type Grant, type Instance, type ProvisionOptions, defaultBackendLogger, type BackendLogger } from './backend.js'
import { hostKeyFingerprint, parsePublicKey, publicKeyBlob } from './ssh-keys.js'
import { parseConsoleHostKey, type ConsoleHostKey } from './console-host-key.js'

export { parseConsoleHostKey, type ConsoleHostKey }

export const EC2_USER = 'cmesh'
export const GRANT_TAG = 'cmesh:grant'
export const BACKEND_TAG = 'cmesh:backend'
/** EC2's limit on user data, before base64. */
export const MAX_EC2_USER_DATA_BYTES = 16 * 1024
export const DEFAULT_PROVISION_TIMEOUT_MS = 15 * 60_000
export const DEFAULT_POLL_INTERVAL_MS = 5_000
export const DEFAULT_TERMINATE_TIMEOUT_MS = 5 * 60_000
const CALL_TIMEOUT_MS = 30_000
const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped']

export interface InstanceTypeSpec { type: string, cpus: number, memMiB: number }

/** Smallest first within each family; the chooser sorts anyway. */
export const DEFAULT_INSTANCE_TYPES: readonly InstanceTypeSpec[] = [
  { type: 't3.micro', cpus: 2, memMiB: 1024 },
  { type: 't3.small', cpus: 2, memMiB: 2048 },
  { type: 't3.medium', cpus: 2, memMiB: 4096 },
  { type: 't3.large', cpus: 2, memMiB: 8192 },
  { type: 't3.xlarge', cpus: 4, memMiB: 16384 },
  { type: 't3.2xlarge', cpus: 8, memMiB: 32768 },
  { type: 'm5.large', cpus: 2, memMiB: 8192 },
  { type: 'm5.xlarge', cpus: 4, memMiB: 16384 },
  { type: 'm5.2xlarge', cpus: 8, memMiB: 32768 },
  { type: 'm5.4xlarge', cpus: 16, memMiB: 65536 },
  { type: 'm5.8xlarge', cpus: 32, memMiB: 131072 },
  { type: 'm5.12xlarge', cpus: 48, memMiB: 196608 },
  { type: 'm5.16xlarge', cpus: 64, memMiB: 262144 },
  { type: 'm5.24xlarge', cpus: 96, memMiB: 393216 }
]

export interface AwsEc2RegionConfig {
  region: string
  imageId: string
  subnetId?: string
  securityGroupIds?: string[]
  instanceTypes?: InstanceTypeSpec[]
}

export interface AwsEc2BackendOptions {
  name: string
  regions: AwsEc2RegionConfig[]
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  /** Overrides the EC2 endpoint (tests: `http://127.0.0.1:<moto port>`). */
  endpoint?: string
  /** Explicit credentials; otherwise the SDK's default provider chain. Never logged. */
  credentials?: EC2ClientConfig['credentials']
  log?: BackendLogger
  /** Milliseconds since the epoch (Date.now's shape); injected by tests. */
  now?: () => number
  pollIntervalMs?: number
  /** Whole provision budget: RunInstances → running → user_data → host key on the console. */
  provisionTimeoutMs?: number
  terminateTimeoutMs?: number
  /**
   * TEST SEAM ONLY: replaces GetConsoleOutput (return the decoded console text, or undefined if
   * there is none yet). moto answers GetConsoleOutput with a fixed kernel log that has no host key
   * block and offers no way to set it, so the success path against moto needs this. Everything
   * else still goes through the real SDK. Never set it in production config.
   */
  consoleOutput?: (instanceId: string, region: string) => Promise<string | undefined>
}

export interface AwsOrphan { grantId: string, instanceId: string, region: string, state: string }

export interface AwsHealth { ok: boolean, regions: Array<{ region: string, ok: boolean, reason?: string }> }

interface Tracked { grantId: string, region: string, instanceId?: string }

export class AwsEc2Backend implements Backend {
  readonly kind = 'aws-ec2'
  readonly placesGrantFiles = true
  readonly name: string
  private readonly caps: BackendCapabilities
  private readonly regions: Map<string, AwsEc2RegionConfig>
  private readonly clients = new Map<string, EC2Client>()
  private readonly options: AwsEc2BackendOptions
  private readonly log: BackendLogger
  private readonly now: () => number
  private readonly pollIntervalMs: number
  private readonly provisionTimeoutMs: number
  private readonly terminateTimeoutMs: number
  /** Grants this process provisioned (or is provisioning) and has not terminated. */
  private readonly live = new Map<string, Tracked>()

  constructor (options: AwsEc2BackendOptions) {
    if (options.regions.length === 0) throw new TypeError('aws-ec2 backend needs at least one region')
    this.options = options
    this.name = options.name
    this.regions = new Map(options.regions.map((r) => [r.region, r]))
    this.caps = { regions: options.regions.map((r) => r.region), maxCpu: options.maxCpu, maxMemoryMiB: options.maxMemoryMiB, maxDiskGiB: options.maxDiskGiB, tdx: false }
    this.log = options.log ?? defaultBackendLogger('cmesh:backend:aws-ec2')
    this.now = options.now ?? Date.now
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS
    this.provisionTimeoutMs = options.provisionTimeoutMs ?? DEFAULT_PROVISION_TIMEOUT_MS
    this.terminateTimeoutMs = options.terminateTimeoutMs ?? DEFAULT_TERMINATE_TIMEOUT_MS
  }

  capabilities (): BackendCapabilities {
    return { ...this.caps, regions: [...this.caps.regions] }
  }

  canSatisfy (grant: Grant): CanSatisfy {
    const verdict = checkCapabilities(this.caps, grant, Math.floor(this.now() / 1000))
    if (!verdict.ok) return verdict
    if (this.live.has(grant.id)) return { ok: false, reason: 'grant already provisioned' }
    if (chooseInstanceType(this.instanceTypes(grant.region), grant.cpus, grant.memMiB) === undefined) {
      return { ok: false, reason: `no instance type in ${grant.region} with ${grant.cpus} CPUs and ${grant.memMiB} MiB` }
    }
    try { parsePublicKey(grant.authorizedKey) } catch { return { ok: false, reason: 'authorized key is not an OpenSSH public key' } }
    if (buildUserData(grant.authorizedKey, userDataWithFiles(grant.userData, grant.files ?? [], AWS_FILES_TARGET)) === undefined) return { ok: false, reason: `user_data does not fit EC2's ${MAX_EC2_USER_DATA_BYTES}-byte limit` }
    return { ok: true }
  }

  async provision (grant: Grant, { onProgress, signal }: ProvisionOptions = {}): Promise<Instance> {
    const verdict = this.canSatisfy(grant)
    if (!verdict.ok) throw fail('BACKEND_CANNOT_SATISFY', verdict.reason, grant.id)
    if (signal?.aborted === true) throw fail('BACKEND_ABORTED', 'provisioning aborted', grant.id)
    const tracked: Tracked = { grantId: grant.id, region: grant.region }
    this.live.set(grant.id, tracked) // claimed before the first await: one grant is never provisioned twice
    const timeout = AbortSignal.timeout(this.provisionTimeoutMs)
    const stop = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    const ec2 = this.client(grant.region)
    const config = this.regions.get(grant.region) as AwsEc2RegionConfig
    let runOutcomeUnknown = false
    let phase: 'starting' | 'booting' | 'host-key' = 'starting'
    try {
      onProgress?.({ type: 'provision:starting', detail: { grantId: grant.id } })
      const input = await this.runInput(ec2, config, grant, stop)
      runOutcomeUnknown = true // from here until RunInstances answers, an instance may exist that we have no id for
      const run = await ec2.send(new RunInstancesCommand(input), { abortSignal: callSignal(stop) })
      runOutcomeUnknown = false
      const instanceId = run.Instances?.[0]?.InstanceId
      if (instanceId === undefined) throw fail('BACKEND_PROVISION_FAILED', 'RunInstances returned no instance', grant.id)
      tracked.instanceId = instanceId
      this.log.info(`grant ${grant.id}: instance ${instanceId} (${input.InstanceType}) starting in ${grant.region}`)

      phase = 'booting'
      const described = await this.waitRunning(ec2, instanceId, stop)
      const ipv4 = described.PublicIpAddress ?? described.PrivateIpAddress
      const ipv6 = described.Ipv6Address ?? described.NetworkInterfaces?.[0]?.Ipv6Addresses?.[0]?.Ipv6Address
      const host = ipv4 ?? ipv6
      if (host === undefined) throw fail('BACKEND_PROVISION_FAILED', `instance ${instanceId} is running without an address`, grant.id)
      onProgress?.({ type: 'provision:booting', detail: { host, port: 22 } })

      phase = 'host-key'
      onProgress?.({ type: 'provision:user-data', detail: { bytes: grant.userData.length } })
      const shown = await this.waitConsoleHostKey(ec2, grant.region, instanceId, stop)
      if (shown.userDataExit !== undefined && shown.userDataExit !== 0) {
        throw fail('BACKEND_USER_DATA_FAILED', `user_data exited with ${shown.userDataExit}`, grant.id, { exitCode: shown.userDataExit })
      }
      const instance: Instance = {
        grantId: grant.id,
        backend: this.name,
        host,
        port: 22,
        user: EC2_USER,
        hostKey: shown.hostKey.hostKey,
        hostKeyFingerprint: shown.hostKey.fingerprint,
        ...(ipv4 !== undefined ? { ipv4 } : {}),
        ...(ipv6 !== undefined ? { ipv6 } : {}),
        handle: instanceId
      }
      this.log.info(`grant ${grant.id}: instance ${instanceId} ready at ${host}, valid to ${grant.validToUnixSecs}`)
      onProgress?.({ type: 'provision:ready', detail: instance })
      return instance
    } catch (err) {
      const reason = describeError(err)
      // Read before cleanup, which can take long enough for the provision timeout to fire after the fact.
      // (Not `signal?.aborted`: TypeScript keeps the narrowing from the check before the try.)
      const callerAborted = stop.aborted && !timeout.aborted
      const timedOut = timeout.aborted
      this.log.warn(`grant ${grant.id}: provisioning failed (${reason}); cleaning up`)
      await this.cleanUp(tracked, runOutcomeUnknown)
      this.live.delete(grant.id)
      if (callerAborted) throw fail('BACKEND_ABORTED', `provisioning aborted: ${reason}`, grant.id, {}, err)
      if (timedOut) {
        if (phase === 'host-key') throw fail('BACKEND_HOST_KEY_UNKNOWN', `no SSH host key on the instance console within ${this.provisionTimeoutMs} ms; instance terminated`, grant.id, { timeoutMs: this.provisionTimeoutMs }, err)
        throw fail('BACKEND_TIMEOUT', `instance not running within ${this.provisionTimeoutMs} ms (${phase}); anything started was terminated`, grant.id, { timeoutMs: this.provisionTimeoutMs }, err)
      }
      if (err instanceof BackendError) throw err
      throw fail('BACKEND_PROVISION_FAILED', `provisioning failed: ${reason}`, grant.id, {}, err)
    }
  }

  /** Resolves when the instance is gone, or at valid-to, when it ends the instance itself. */
  async watchUntilExit (instance: Instance, validToUnixSecs: number): Promise<void> {
    const instanceId = instance.handle
    if (instanceId === undefined) return
    const region = this.live.get(instance.grantId)?.region
    for (;;) {
      const left = validToUnixSecs * 1000 - this.now()
      if (left <= 0) { await this.terminate(instance); return }
      await sleep(Math.min(left, Math.max(this.pollIntervalMs, 1000)))
      if (region === undefined) continue
      try {
        const found = await this.describe(this.client(region), instanceId, AbortSignal.timeout(CALL_TIMEOUT_MS))
        const state = found?.State?.Name
        if (state === undefined || state === 'shutting-down' || state === 'terminated') { this.live.delete(instance.grantId); return }
      } catch (err) {
        this.log.debug(`watch ${instanceId}: ${describeError(err)}`)
      }
    }
  }

  /** TerminateInstances until EC2 reports shutting-down/terminated; retried with backoff; idempotent. */
  async terminate (instance: Instance): Promise<void> {
    const instanceId = instance.handle
    if (instanceId === undefined) throw fail('BACKEND_UNKNOWN_INSTANCE', 'instance has no EC2 instance id', instance.grantId)
    const known = this.live.get(instance.grantId)?.region
    const regions = known !== undefined ? [known] : this.caps.regions
    for (const region of regions) {
      if (await this.terminateIn(region, instanceId, AbortSignal.timeout(this.terminateTimeoutMs))) break
    }
    this.live.delete(instance.grantId)
  }

  /**
   * Instances tagged by this backend that are not terminated and that this process is not holding:
   * after a crash or restart, everything it started. The fleet decides what to end.
   */
  async findOrphans (signal?: AbortSignal): Promise<AwsOrphan[]> {
    const out: AwsOrphan[] = []
    for (const region of this.caps.regions) {
      const ec2 = this.client(region)
      let NextToken: string | undefined
      do {
        const page = await ec2.send(new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag-key', Values: [GRANT_TAG] },
            { Name: `tag:${BACKEND_TAG}`, Values: [this.name] },
            { Name: 'instance-state-name', Values: LIVE_STATES }
          ],
          NextToken
        }), { abortSignal: callSignal(signal) })
        for (const reservation of page.Reservations ?? []) {
          for (const i of reservation.Instances ?? []) {
            const grantId = i.Tags?.find((t) => t.Key === GRANT_TAG)?.Value
            if (grantId === undefined || i.InstanceId === undefined) continue
            if (this.live.get(grantId)?.instanceId === i.InstanceId) continue
            out.push({ grantId, instanceId: i.InstanceId, region, state: i.State?.Name ?? 'unknown' })
          }
        }
        NextToken = page.NextToken
      } while (NextToken !== undefined && NextToken !== '')
    }
    return out
  }

  /** One cheap authenticated call per region (DescribeInstances, MaxResults 5). */
  async checkHealth (signal?: AbortSignal): Promise<AwsHealth> {
    const regions = await Promise.all(this.caps.regions.map(async (region) => {
      try {
        await this.client(region).send(new DescribeInstancesCommand({ MaxResults: 5 }), { abortSignal: callSignal(signal) })
        return { region, ok: true }
      } catch (err) {
        return { region, ok: false, reason: describeError(err) }
      }
    }))
    return { ok: regions.every((r) => r.ok), regions }
  }

  /** Closes the SDK clients' sockets. */
  destroy (): void {
    for (const c of this.clients.values()) c.destroy()
    this.clients.clear()
  }

  private instanceTypes (region: string): readonly InstanceTypeSpec[] {
    return this.regions.get(region)?.instanceTypes ?? DEFAULT_INSTANCE_TYPES
  }

  private client (region: string): EC2Client {
    let c = this.clients.get(region)
    if (c === undefined) {
      c = new EC2Client({
        region,
        ...(this.options.endpoint !== undefined ? { endpoint: this.options.endpoint } : {}),
        ...(this.options.credentials !== undefined ? { credentials: this.options.credentials } : {})
      })
      this.clients.set(region, c)
    }
    return c
  }

  private async runInput (ec2: EC2Client, config: AwsEc2RegionConfig, grant: Grant, signal: AbortSignal): Promise<RunInstancesCommandInput> {
    const type = chooseInstanceType(this.instanceTypes(grant.region), grant.cpus, grant.memMiB) as InstanceTypeSpec
    const userData = buildUserData(grant.authorizedKey, userDataWithFiles(grant.userData, grant.files ?? [], AWS_FILES_TARGET)) as Buffer
    const tags = [{ Key: GRANT_TAG, Value: grant.id }, { Key: BACKEND_TAG, Value: this.name }]
    const input: RunInstancesCommandInput = {
      ImageId: config.imageId,
      InstanceType: type.type as RunInstancesCommandInput['InstanceType'],
      MinCount: 1,
      MaxCount: 1,
      // Per call, not per grant: makes the SDK's own retries of a lost reply idempotent without
      // pinning a grant id to one instance forever.
      ClientToken: randomUUID(),
      UserData: userData.toString('base64'),
      InstanceInitiatedShutdownBehavior: 'terminate',
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
      ...(config.subnetId !== undefined ? { SubnetId: config.subnetId } : {}),
      ...(config.securityGroupIds !== undefined ? { SecurityGroupIds: config.securityGroupIds } : {})
    }
    if (grant.diskGiB > 0) {
      const images = await ec2.send(new DescribeImagesCommand({ ImageIds: [config.imageId] }), { abortSignal: callSignal(signal) })
      const image = images.Images?.[0]
      const root = image?.RootDeviceName
      if (image === undefined || root === undefined) throw fail('BACKEND_PROVISION_FAILED', `image ${config.imageId} not found in ${grant.region}`, grant.id)
      const imageSize = image.BlockDeviceMappings?.find((m) => m.DeviceName === root)?.Ebs?.VolumeSize ?? 0
      input.BlockDeviceMappings = [{ DeviceName: root, Ebs: { VolumeSize: Math.max(grant.diskGiB, imageSize), VolumeType: 'gp3', DeleteOnTermination: true } }]
    }
    return input
  }

  private async waitRunning (ec2: EC2Client, instanceId: string, signal: AbortSignal): Promise<Ec2Instance> {
    for (let attempt = 0; ; attempt++) {
      try {
        const found = await this.describe(ec2, instanceId, signal)
        const state = found?.State?.Name
        if (found !== undefined && state === 'running') return found
        if (state !== undefined && state !== 'pending') {
          throw new BackendError('BACKEND_PROVISION_FAILED', `instance ${instanceId} is ${state}: ${found?.StateReason?.Message ?? 'no reason given'}`)
        }
      } catch (err) {
        // Right after RunInstances, EC2 may not know the id yet (eventual consistency).
        if (!(isRetryable(err) || errorName(err) === 'InvalidInstanceID.NotFound')) throw err
        this.log.debug(`waiting for ${instanceId}: ${describeError(err)}`)
      }
      await sleep(attempt === 0 ? Math.min(this.pollIntervalMs, 1000) : this.pollIntervalMs, signal)
    }
  }

  private async waitConsoleHostKey (ec2: EC2Client, region: string, instanceId: string, signal: AbortSignal): Promise<{ hostKey: ConsoleHostKey, userDataExit?: number }> {
    for (;;) {
      try {
        const text = await this.readConsole(ec2, region, instanceId, signal)
        if (text !== undefined) {
          const hostKey = parseConsoleHostKey(text)
          if (hostKey !== undefined) {
            const userDataExit = parseUserDataExit(text)
            return userDataExit === undefined ? { hostKey } : { hostKey, userDataExit }
          }
        }
      } catch (err) {
        if (!isRetryable(err)) throw err
        this.log.debug(`console of ${instanceId}: ${describeError(err)}`)
      }
      await sleep(this.pollIntervalMs, signal)
    }
  }

  private async readConsole (ec2: EC2Client, region: string, instanceId: string, signal: AbortSignal): Promise<string | undefined> {
    if (this.options.consoleOutput !== undefined) return await this.options.consoleOutput(instanceId, region)
    // Latest: the newest 64 KB on Nitro instances (t3/m5), where the key block lands at the end of boot.
    const out = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }), { abortSignal: callSignal(signal) })
    return out.Output === undefined ? undefined : Buffer.from(out.Output, 'base64').toString('utf8')
  }

  private async describe (ec2: EC2Client, instanceId: string, signal: AbortSignal): Promise<Ec2Instance | undefined> {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: callSignal(signal) })
    return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId)
  }

  /** True once EC2 reports the instance shutting down/terminated or does not know it in this region. */
  private async terminateIn (region: string, instanceId: string, signal: AbortSignal): Promise<boolean> {
    const ec2 = this.client(region)
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }), { abortSignal: callSignal(signal) })
        let state = out.TerminatingInstances?.find((t) => t.InstanceId === instanceId)?.CurrentState?.Name
        while (state !== 'shutting-down' && state !== 'terminated') {
          await sleep(this.pollIntervalMs, signal)
          state = (await this.describe(ec2, instanceId, signal))?.State?.Name
          if (state === undefined) break
        }
        this.log.info(`instance ${instanceId} in ${region}: ${state ?? 'gone'}`)
        return true
      } catch (err) {
        if (errorName(err) === 'InvalidInstanceID.NotFound') return false
        if (signal.aborted) throw fail('BACKEND_TERMINATE_FAILED', `could not terminate ${instanceId} in ${region}: ${describeError(err)}`, undefined, { instanceId, region }, err)
        this.log.warn(`terminating ${instanceId} in ${region}: ${describeError(err)}; retrying`)
        await sleep(backoff(attempt), signal).catch(() => {})
      }
    }
  }

  /**
   * After a failed provision: terminate by id if we have one, and sweep by grant tag for an instance
   * whose RunInstances reply we never saw (stall, abort, lost reply). Never throws: the failure the
   * caller sees is the provisioning one; findOrphans() catches whatever survives.
   */
  private async cleanUp (tracked: Tracked, runOutcomeUnknown: boolean): Promise<void> {
    const signal = AbortSignal.timeout(this.terminateTimeoutMs)
    try {
      if (tracked.instanceId !== undefined) await this.terminateIn(tracked.region, tracked.instanceId, signal)
      if (tracked.instanceId === undefined || runOutcomeUnknown) {
        // Two sweeps: a RunInstances that was still in flight when we gave up may land just after.
        for (let sweep = 0; sweep < 2; sweep++) {
          if (sweep > 0) await sleep(Math.min(this.pollIntervalMs, 2000), signal)
          for (const id of await this.taggedLive(tracked.region, tracked.grantId, signal)) await this.terminateIn(tracked.region, id, signal)
        }
      }
    } catch (err) {
      this.log.error(`grant ${tracked.grantId}: cleanup in ${tracked.region} failed (${describeError(err)}); findOrphans() will report what is left`)
    }
  }

  private async taggedLive (region: string, grantId: string, signal: AbortSignal): Promise<string[]> {
    const out = await this.client(region).send(new DescribeInstancesCommand({
      Filters: [{ Name: `tag:${GRANT_TAG}`, Values: [grantId] }, { Name: `tag:${BACKEND_TAG}`, Values: [this.name] }, { Name: 'instance-state-name', Values: LIVE_STATES }]
    }), { abortSignal: callSignal(signal) })
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).flatMap((i) => i.InstanceId !== undefined ? [i.InstanceId] : [])
  }
}

/** The smallest type (fewest CPUs, then least memory, then table order) covering both. */
export function chooseInstanceType (types: readonly InstanceTypeSpec[], cpus: number, memMiB: number): InstanceTypeSpec | undefined {
  return types
    .map((t, i) => ({ t, i }))
    .filter(({ t }) => t.cpus >= cpus && t.memMiB >= memMiB)
    .sort((a, b) => a.t.cpus - b.t.cpus || a.t.memMiB - b.t.memMiB || a.i - b.i)[0]?.t
}

const BOUNDARY = 'cmesh-part-boundary' // '-' is not in the base64 alphabet, so no part can contain it

/**
 * Cloud-init multipart user data (raw, not yet base64). Part 1 (cloud-config) creates `cmesh` with
 * only the grant's key and writes the requester's user_data, base64-encoded, to a root-only file;
 * part 2 (shell) runs that file with /bin/sh and prints its exit status to the console. The
 * requester's bytes never enter YAML or a command line as text. Gzipped if the plain form is too
 * large (cloud-init detects gzip); undefined if even that exceeds EC2's limit.
 */
/** user_data runs as root from cloud-init; the grant's files go to the `cmesh` user's home, owned by it. */
const AWS_FILES_TARGET = { home: '/home/cmesh', owner: 'cmesh', innerPath: '/var/lib/cmesh/user-data.inner' }

export function buildUserData (authorizedKey: string, userData: Uint8Array): Buffer | undefined {
  const parsed = parsePublicKey(authorizedKey)
  // Re-serialised as `<type> <base64>`: nothing from the comment reaches the YAML.
  const keyLine = `${parsed.type} ${Buffer.from(parsed.getPublicSSH()).toString('base64')}`
  const cloudConfig = [
    '#cloud-config',
    '# cmesh: the grant user, the grant key only; no default user, no passwords',
    'users:',
    '  - name: cmesh',
    '    shell: /bin/bash',
    '    lock_passwd: true',
    "    sudo: 'ALL=(ALL) NOPASSWD:ALL'",
    '    ssh_authorized_keys:',
    `      - ${JSON.stringify(keyLine)}`,
    'ssh_pwauth: false',
    'disable_root: true',
    'write_files:',
    '  - path: /var/lib/cmesh/user-data',
    "    owner: 'root:root'",
    "    permissions: '0700'",
    '    encoding: b64',
    `    content: ${Buffer.from(userData).toString('base64') || "''"}`,
    ''
  ].join('\n')
  const runScript = [
    '#!/bin/sh',
    "# cmesh: run the requester's user_data once, as root; cloud-init prints the host keys after this.",
    '/bin/sh /var/lib/cmesh/user-data >/var/log/cmesh-user-data.log 2>&1 </dev/null',
    'rc=$?',
    'echo "cmesh-user-data-exit=$rc" >/dev/console 2>/dev/null || echo "cmesh-user-data-exit=$rc"',
    'exit 0',
    ''
  ].join('\n')
  const part = (type: string, filename: string, body: string): string => [
    `--${BOUNDARY}`,
    `Content-Type: ${type}; charset="us-ascii"`,
    'MIME-Version: 1.0',
    'Content-Transfer-Encoding: 7bit',
    `Content-Disposition: attachment; filename="${filename}"`,
    '',
    body
  ].join('\n')
  const mime = Buffer.from([
    `Content-Type: multipart/mixed; boundary="${BOUNDARY}"`,
    'MIME-Version: 1.0',
    '',
    part('text/cloud-config', 'cmesh-setup.cfg', cloudConfig),
    part('text/x-shellscript', 'cmesh-run-user-data.sh', runScript),
    `--${BOUNDARY}--`,
    ''
  ].join('\n'), 'ascii')
  if (mime.length <= MAX_EC2_USER_DATA_BYTES) return mime
  const gz = gzipSync(mime, { level: 9 })
  return gz.length <= MAX_EC2_USER_DATA_BYTES ? gz : undefined
}

/** The exit status our run script printed for the requester's user_data, if it is on the console. */
export function parseUserDataExit (text: string): number | undefined {
  const all = [...text.matchAll(/cmesh-user-data-exit=(\d{1,3})\b/g)]
  const last = all[all.length - 1]
  return last === undefined ? undefined : Number(last[1])
}

function fail (code: BackendErrorCode, message: string, grantId?: string, meta: Record<string, unknown> = {}, cause?: unknown): BackendError {
  return new BackendError(code, message, { ...(grantId !== undefined ? { grantId } : {}), ...meta }, cause === undefined ? undefined : { cause })
}

function errorName (err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'name' in err ? String((err as { name: unknown }).name) : undefined
}

function isRetryable (err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const e = err as { $retryable?: unknown, $metadata?: { httpStatusCode?: number }, name?: string, code?: string }
  if (e.name === 'AbortError') return false
  if (e.$retryable !== undefined) return true
  const status = e.$metadata?.httpStatusCode
  if (status !== undefined && status >= 500) return true
  if (['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'InternalError', 'ServiceUnavailable', 'Unavailable', 'TimeoutError'].includes(e.name ?? '')) return true
  return ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN'].includes(e.code ?? '')
}

/** The API's error code and message; never request details (which could carry signed headers). */
function describeError (err: unknown): string {
  if (err instanceof BackendError) return err.message
  const name = errorName(err)
  const message = err instanceof Error ? err.message : String(err)
  return name !== undefined && name !== 'Error' && !message.startsWith(name) ? `${name}: ${message}` : message
}

/** One API call: the caller's signal, but never longer than CALL_TIMEOUT_MS. */
function callSignal (signal?: AbortSignal): AbortSignal {
  const call = AbortSignal.timeout(CALL_TIMEOUT_MS)
  return signal === undefined ? call : AbortSignal.any([signal, call])
}

function backoff (attempt: number): number {
  return Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2)
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) { reject(signal.reason); return }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
