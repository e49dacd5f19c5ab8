/**
 * Google Compute Engine backend: one VM per grant through the official `@google-cloud/compute` client
 * in REST mode (DESIGN.md §7). Provisioning inserts an instance whose only login is user `cmesh` with
 * the grant's key (project-wide keys blocked, OS Login off, no service account), carries the
 * requester's user_data as its own metadata value, waits for the zone operation, then reads the
 * external address and the SSH host key the guest agent publishes as guest attributes (`hostkeys/`).
 * TDX grants get a C3 machine with `confidentialInstanceConfig.confidentialInstanceType = TDX`.
 *
 * Every instance carries labels `cmesh-grant` (a label-safe form of the grant id) and `cmesh-backend`
 * (this backend's name) plus the full grant id in metadata `cmesh-grant`, so `findOrphans()` can
 * find what a crashed node left running. By default GCE itself also deletes the VM at valid-to
 * (`scheduling.terminationTime`, action DELETE), so a dead node cannot leak a machine past its grant.
 *
 * Credentials: `clientOptions` goes to the SDK unchanged; without it the SDK's own discovery applies
 * (GOOGLE_APPLICATION_CREDENTIALS, gcloud's files, the metadata server). Nothing credential-shaped is
 * logged: errors are reduced to their status and message.
 */
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import compute from '@google-cloud/compute'
import type { protos } from '@google-cloud/compute'
import {
  BackendError, checkCapabilities, type Backend, type BackendCapabilities, type CanSatisfy,
  type Grant, type Instance, type ProvisionOptions, defaultBackendLogger, type BackendLogger } from './backend.js'
import { hostKeyFingerprint, parsePublicKey } from './ssh-keys.js'

type IInstance = protos.google.cloud.compute.v1.IInstance
type IOperation = protos.google.cloud.compute.v1.IOperation

export const GCP_USER = 'cmesh'
export const GRANT_LABEL = 'cmesh-grant'
export const BACKEND_LABEL = 'cmesh-backend'
export const DEFAULT_GCP_IMAGE = 'projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64'
const MAX_USER_DATA_BYTES = 256 * 1024 // GCE's limit for one metadata value
const MIN_BOOT_DISK_GIB = 10
const STOCKOUT_CODES = new Set(['ZONE_RESOURCE_POOL_EXHAUSTED', 'ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS'])
const HOST_KEY_PREFERENCE = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'ssh-rsa']

export interface GcpZone {
  zone: string
  region: string
  /** Whether C3 TDX VMs may be placed here (default: the backend's `tdx`). */
  tdx?: boolean
}

export interface GcpMachineType {
  type: string
  cpus: number
  memMiB: number
  /** A TDX-capable type (C3); used for TDX grants only, and only TDX grants use it. */
  tdx?: boolean
}

/** Passed to the SDK clients unchanged (`apiEndpoint`, `port`, `protocol`, `fallback`, `credentials`, `keyFilename`, `apiKey`…). */
export type GcpClientOptions = NonNullable<ConstructorParameters<typeof compute.InstancesClient>[0]>

export interface GcpBackendOptions {
  name?: string
  project: string
  zones: GcpZone[]
  /** Full image or image-family URL (`projects/<p>/global/images/family/<f>`); default Ubuntu 24.04 LTS (TDX-capable). */
  sourceImage?: string
  /** Shorthand `<image project>/<family>`, e.g. `ubuntu-os-cloud/ubuntu-2404-lts-amd64`; ignored when sourceImage is set. */
  imageFamily?: string
  machineTypes?: GcpMachineType[]
  maxCpu?: number
  maxMemoryMiB?: number
  maxDiskGiB?: number
  /** C3 confidential (TDX) VMs are available in this project (quota, zones). */
  tdx?: boolean
  /** VPC network and subnetwork (default `global/networks/default`, the network's auto subnet). */
  network?: string
  subnetwork?: string
  /** Boot disk type (default pd-balanced). */
  diskType?: string
  /** Which metadata key carries user_data: `user-data` (cloud-init, runs once; default) or `startup-script` (guest agent, every boot). */
  userDataKey?: 'user-data' | 'startup-script'
  /** Have GCE delete the VM at valid-to (`scheduling.terminationTime`); default true. */
  hostEnforcedExpiry?: boolean
  clientOptions?: GcpClientOptions
  log?: BackendLogger
  /** Milliseconds since the epoch (Date.now's shape); injected by tests. */
  now?: () => number
  /** Pause between polls of operations and guest attributes (default 2000 ms). */
  pollIntervalMs?: number
  /** Insert to ready, host key included (default 10 min). */
  provisionTimeoutMs?: number
  /** Delete and its operation, all retries included (default 5 min). */
  terminateTimeoutMs?: number
  /** Attempts and first back-off for deletes (default 5 attempts, 1000 ms, doubling). */
  retry?: { attempts?: number, baseDelayMs?: number }
  /** How often watchUntilExit looks at the instance (default 60 s). */
  watchIntervalMs?: number
}

export interface GcpOrphan {
  grantId: string
  name: string
  zone: string
  /** `<zone>/<name>`, what `Instance.handle` holds. */
  handle: string
  status?: string
}

export type HealthCheck = { ok: true } | { ok: false, reason: string }

/** Smallest first; the first type with enough CPUs and memory wins. */
export const DEFAULT_GCP_MACHINE_TYPES: readonly GcpMachineType[] = [
  { type: 'e2-standard-2', cpus: 2, memMiB: 8 * 1024 },
  { type: 'e2-standard-4', cpus: 4, memMiB: 16 * 1024 },
  { type: 'e2-standard-8', cpus: 8, memMiB: 32 * 1024 },
  { type: 'e2-standard-16', cpus: 16, memMiB: 64 * 1024 },
  { type: 'e2-standard-32', cpus: 32, memMiB: 128 * 1024 },
  { type: 'n2-standard-48', cpus: 48, memMiB: 192 * 1024 },
  { type: 'n2-standard-64', cpus: 64, memMiB: 256 * 1024 },
  { type: 'n2-standard-80', cpus: 80, memMiB: 320 * 1024 },
  { type: 'n2-standard-96', cpus: 96, memMiB: 384 * 1024 },
  { type: 'n2-standard-128', cpus: 128, memMiB: 512 * 1024 },
  { type: 'c3-standard-4', cpus: 4, memMiB: 16 * 1024, tdx: true },
  { type: 'c3-standard-8', cpus: 8, memMiB: 32 * 1024, tdx: true },
  { type: 'c3-standard-22', cpus: 22, memMiB: 88 * 1024, tdx: true },
  { type: 'c3-standard-44', cpus: 44, memMiB: 176 * 1024, tdx: true },
  { type: 'c3-standard-88', cpus: 88, memMiB: 352 * 1024, tdx: true },
  { type: 'c3-standard-176', cpus: 176, memMiB: 704 * 1024, tdx: true }
]

interface Watch {
  readonly ended: Promise<void>
  readonly markEnded: () => void
  timer?: NodeJS.Timeout
  poll?: NodeJS.Timeout
}

/** One insert attempt: its call, so a failure can wait for it to settle before deleting. */
interface Attempt { insert?: Promise<unknown> }

/** Reason an operation ended DONE with errors. */
class OperationError extends Error {
  constructor (readonly codes: string[], message: string) { super(message) }
}

export class GcpBackend implements Backend {
  readonly kind = 'gcp'
  readonly name: string
  private readonly project: string
  private readonly zones: GcpZone[]
  private readonly sourceImage: string
  private readonly machineTypes: GcpMachineType[]
  private readonly caps: BackendCapabilities
  private readonly network: string
  private readonly subnetwork?: string
  private readonly diskType: string
  private readonly userDataKey: 'user-data' | 'startup-script'
  private readonly hostEnforcedExpiry: boolean
  private readonly log: BackendLogger
  private readonly now: () => number
  private readonly pollIntervalMs: number
  private readonly provisionTimeoutMs: number
  private readonly terminateTimeoutMs: number
  private readonly retryAttempts: number
  private readonly retryBaseMs: number
  private readonly watchIntervalMs: number
  private readonly instances: InstanceType<typeof compute.InstancesClient>
  private readonly operations: InstanceType<typeof compute.ZoneOperationsClient>
  /** Grants being provisioned or running, by grant id → handle (once known). */
  private readonly live = new Map<string, string | undefined>()
  private readonly watches = new Map<string, Watch>()

  constructor (options: GcpBackendOptions) {
    if (typeof options.project !== 'string' || options.project === '' || !Array.isArray(options.zones) || options.zones.length === 0) throw new BackendError('BACKEND_CANNOT_SATISFY', 'gcp backend needs a project and at least one zone')
    this.name = options.name ?? 'gcp'
    this.project = options.project
    this.zones = options.zones.map((z) => ({ ...z }))
    this.sourceImage = options.sourceImage ?? (options.imageFamily !== undefined ? familyUrl(options.imageFamily) : DEFAULT_GCP_IMAGE)
    const tdx = options.tdx ?? false
    this.machineTypes = [...(options.machineTypes ?? DEFAULT_GCP_MACHINE_TYPES)].sort((a, b) => a.cpus - b.cpus || a.memMiB - b.memMiB)
    const usable = this.machineTypes.filter((t) => tdx || t.tdx !== true)
    this.caps = {
      regions: [...new Set(this.zones.map((z) => z.region))],
      maxCpu: options.maxCpu ?? Math.max(0, ...usable.map((t) => t.cpus)),
      maxMemoryMiB: options.maxMemoryMiB ?? Math.max(0, ...usable.map((t) => t.memMiB)),
      maxDiskGiB: options.maxDiskGiB ?? 500,
      tdx: tdx && this.zones.some((z) => z.tdx ?? true)
    }
    this.network = options.network ?? 'global/networks/default'
    this.subnetwork = options.subnetwork
    this.diskType = options.diskType ?? 'pd-balanced'
    this.userDataKey = options.userDataKey ?? 'user-data'
    this.hostEnforcedExpiry = options.hostEnforcedExpiry ?? true
    this.log = options.log ?? defaultBackendLogger('cmesh:backend:gcp')
    this.now = options.now ?? Date.now
    this.pollIntervalMs = options.pollIntervalMs ?? 2000
    this.provisionTimeoutMs = options.provisionTimeoutMs ?? 10 * 60_000
    this.terminateTimeoutMs = options.terminateTimeoutMs ?? 5 * 60_000
    this.retryAttempts = Math.max(1, options.retry?.attempts ?? 5)
    this.retryBaseMs = options.retry?.baseDelayMs ?? 1000
    this.watchIntervalMs = options.watchIntervalMs ?? 60_000
    const clientOptions = { fallback: true, ...options.clientOptions }
    this.instances = new compute.InstancesClient(clientOptions)
    this.operations = new compute.ZoneOperationsClient(clientOptions)
  }

  capabilities (): BackendCapabilities {
    return { ...this.caps, regions: [...this.caps.regions] }
  }

  canSatisfy (grant: Grant): CanSatisfy {
    const verdict = checkCapabilities(this.caps, grant, Math.floor(this.now() / 1000))
    if (!verdict.ok) return verdict
    if (this.live.has(grant.id)) return { ok: false, reason: 'grant already provisioned' }
    if (this.zonesFor(grant).length === 0) return { ok: false, reason: `no ${grant.tdx ? 'TDX ' : ''}zone in region ${grant.region}` }
    if (this.machineTypeFor(grant) === undefined) return { ok: false, reason: `no ${grant.tdx ? 'TDX ' : ''}machine type with ${grant.cpus} CPUs and ${grant.memMiB} MiB` }
    if (grant.userData.length > MAX_USER_DATA_BYTES) return { ok: false, reason: `user_data is ${grant.userData.length} bytes; at most ${MAX_USER_DATA_BYTES}` }
    if (userDataText(grant.userData) === undefined) return { ok: false, reason: 'user_data is not UTF-8 text (GCE metadata values are strings)' }
    try { parsePublicKey(grant.authorizedKey) } catch { return { ok: false, reason: 'authorized key is not an OpenSSH public key' } }
    return { ok: true }
  }

  async provision (grant: Grant, { onProgress, signal }: ProvisionOptions = {}): Promise<Instance> {
    const verdict = this.canSatisfy(grant)
    if (!verdict.ok) throw new BackendError('BACKEND_CANNOT_SATISFY', verdict.reason, { grantId: grant.id })
    if (signal?.aborted === true) throw new BackendError('BACKEND_ABORTED', 'provisioning aborted', { grantId: grant.id })
    this.live.set(grant.id, undefined) // claimed before the first await: one grant is never provisioned twice
    const timeout = AbortSignal.timeout(this.provisionTimeoutMs)
    const stop = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    onProgress?.({ type: 'provision:starting', detail: { grantId: grant.id } })
    const name = instanceName(grant.id)
    const zones = this.zonesFor(grant)
    let cleaned = true
    try {
      for (let i = 0; ; i++) {
        const zone = zones[i] as GcpZone
        const attempt: Attempt = {}
        try {
          const instance = await this.provisionIn(grant, zone.zone, name, stop, onProgress, attempt)
          this.live.set(grant.id, instance.handle)
          this.log.info(`instance ${zone.zone}/${name} for grant ${grant.id} ready at ${instance.host}`)
          onProgress?.({ type: 'provision:ready', detail: instance })
          return instance
        } catch (err) {
          // An insert still in flight may land after a delete: let it settle first (bounded), then
          // delete by name, since it may have landed even when its answer never came back (404 is fine).
          if (attempt.insert !== undefined) await race(AbortSignal.timeout(this.terminateTimeoutMs), attempt.insert).catch(() => {})
          cleaned = await this.cleanup(zone.zone, name, grant.id)
          const stockout = err instanceof OperationError && err.codes.some((c) => STOCKOUT_CODES.has(c))
          if (stockout && i + 1 < zones.length && !stop.aborted) {
            this.log.warn(`zone ${zone.zone} has no capacity for grant ${grant.id}; trying ${zones[i + 1]?.zone ?? ''}`)
            continue
          }
          throw err
        }
      }
    } catch (err) {
      this.live.delete(grant.id)
      const after = cleaned ? 'the instance was deleted' : `instance ${name} may be left behind (findOrphans lists it)`
      if (isAborted(signal)) throw new BackendError('BACKEND_ABORTED', `provisioning aborted; ${after}`, { grantId: grant.id, cleaned }, { cause: err })
      if (timeout.aborted) throw new BackendError('BACKEND_TIMEOUT', `instance not ready within ${this.provisionTimeoutMs} ms; ${after}`, { grantId: grant.id, timeoutMs: this.provisionTimeoutMs, cleaned }, { cause: err })
      if (err instanceof BackendError) throw err
      throw new BackendError('BACKEND_PROVISION_FAILED', `provisioning failed: ${describe(err)}; ${after}`, { grantId: grant.id, cleaned }, { cause: err })
    }
  }

  /** Resolves once the instance is gone (deleted, stopped, or deleted at valid-to). */
  async watchUntilExit (instance: Instance, validToUnixSecs: number): Promise<void> {
    const handle = instance.handle ?? ''
    let watch = this.watches.get(handle)
    if (watch === undefined) {
      let markEnded = (): void => {}
      const ended = new Promise<void>((resolve) => { markEnded = resolve })
      const w: Watch = { ended, markEnded }
      watch = w
      this.watches.set(handle, w)
      const arm = (): void => {
        const ms = validToUnixSecs * 1000 - this.now()
        w.timer = setTimeout(() => {
          if (ms > 2 ** 31 - 1) { arm(); return }
          this.terminate(instance).catch((err) => { this.log.error(`instance ${handle} not terminated at valid-to: ${describe(err)}`) })
        }, Math.max(0, Math.min(ms, 2 ** 31 - 1)))
        w.timer.unref()
      }
      arm()
      const poll = (): void => {
        w.poll = setTimeout(() => {
          void this.exists(handle).then((alive) => {
            if (alive === false) this.endWatch(handle)
            else if (this.watches.get(handle) === w) poll()
          })
        }, this.watchIntervalMs)
        w.poll.unref()
      }
      poll()
    }
    await watch.ended
  }

  /** Deletes the instance and waits for the deletion; idempotent (already gone is fine), retried with back-off. */
  async terminate (instance: Instance): Promise<void> {
    let handle = instance.handle
    if (handle === undefined) {
      const found = (await this.listLabelled(AbortSignal.timeout(60_000), true)).find((o) => o.grantId === instance.grantId)
      handle = found?.handle
      if (handle === undefined) { this.live.delete(instance.grantId); return }
    }
    const { zone, name } = parseHandle(handle)
    await this.deleteWithRetry(zone, name, AbortSignal.timeout(this.terminateTimeoutMs))
    this.live.delete(instance.grantId)
    this.endWatch(handle)
    this.log.info(`instance ${handle} for grant ${instance.grantId} deleted`)
  }

  /**
   * Every instance this backend's label marks, across all zones, that this object is not currently
   * running (after a restart: all of them — compare with the fleet's own records before deleting).
   */
  async findOrphans (signal: AbortSignal = AbortSignal.timeout(60_000)): Promise<GcpOrphan[]> {
    return await this.listLabelled(signal, false)
  }

  /** A cheap authenticated call: list at most one instance in the first zone. */
  async checkHealth (signal: AbortSignal = AbortSignal.timeout(15_000)): Promise<HealthCheck> {
    try {
      await race(signal, this.instances.list({ project: this.project, zone: this.zones[0]?.zone ?? '', maxResults: 1 }, { autoPaginate: false }))
      return { ok: true }
    } catch (err) {
      return { ok: false, reason: describe(err) }
    }
  }

  private async listLabelled (signal: AbortSignal, includeLive: boolean): Promise<GcpOrphan[]> {
    const found: GcpOrphan[] = []
    const filter = `labels.${BACKEND_LABEL} = "${labelValue(this.name)}"`
    const iterable = this.instances.aggregatedListAsync({ project: this.project, filter, returnPartialSuccess: true }, { autoPaginate: false })
    await race(signal, (async () => {
      for await (const [scope, list] of iterable) {
        for (const inst of list.instances ?? []) {
          const name = inst.name ?? ''
          const zone = lastSegment(inst.zone ?? scope)
          const grantId = metadataValue(inst, GRANT_LABEL) ?? inst.labels?.[GRANT_LABEL] ?? ''
          if (name === '' || grantId === '') continue
          if (!includeLive && this.live.has(grantId)) continue
          found.push({ grantId, name, zone, handle: `${zone}/${name}`, status: inst.status ?? undefined })
        }
      }
    })())
    return found
  }

  /** Releases the SDK clients' connections (node shutdown). Instances keep running. */
  async close (): Promise<void> {
    for (const w of this.watches.values()) { clearTimeout(w.timer); clearTimeout(w.poll) }
    await Promise.allSettled([this.instances.close(), this.operations.close()])
  }

  private zonesFor (grant: Grant): GcpZone[] {
    return this.zones.filter((z) => z.region === grant.region && (!grant.tdx || (this.caps.tdx && (z.tdx ?? true))))
  }

  private machineTypeFor (grant: Grant): GcpMachineType | undefined {
    return this.machineTypes.find((t) => (t.tdx === true) === grant.tdx && t.cpus >= grant.cpus && t.memMiB >= grant.memMiB)
  }

  private async provisionIn (grant: Grant, zone: string, name: string, stop: AbortSignal, onProgress: ProvisionOptions['onProgress'], attempt: Attempt): Promise<Instance> {
    const resource = this.instanceResource(grant, zone, name)
    const inserting = this.instances.insert({ project: this.project, zone, instanceResource: resource, requestId: randomUUID() })
    attempt.insert = inserting
    const [lro] = await race(stop, inserting)
    await this.waitOperation(zone, lro.latestResponse as IOperation, stop)

    const [inst] = await race(stop, this.instances.get({ project: this.project, zone, instance: name }))
    const nic = inst.networkInterfaces?.[0]
    const ipv4 = nic?.accessConfigs?.find((a) => a.natIP != null && a.natIP !== '')?.natIP ?? undefined
    const ipv6 = nic?.ipv6AccessConfigs?.find((a) => a.externalIpv6 != null && a.externalIpv6 !== '')?.externalIpv6 ?? undefined
    const host = ipv4 ?? ipv6
    if (host === undefined) throw new BackendError('BACKEND_PROVISION_FAILED', 'instance has no external address', { grantId: grant.id })
    onProgress?.({ type: 'provision:booting', detail: { host, port: 22 } })
    onProgress?.({ type: 'provision:user-data', detail: { bytes: grant.userData.length } })

    const hostKey = await this.waitHostKey(zone, name, stop)
    const instance: Instance = {
      grantId: grant.id,
      backend: this.name,
      host,
      port: 22,
      user: GCP_USER,
      hostKeyFingerprint: hostKeyFingerprint(parsePublicKey(hostKey).getPublicSSH()),
      hostKey,
      handle: `${zone}/${name}`
    }
    if (ipv4 !== undefined) instance.ipv4 = ipv4
    if (ipv6 !== undefined) instance.ipv6 = ipv6
    return instance
  }

  private instanceResource (grant: Grant, zone: string, name: string): IInstance {
    const type = this.machineTypeFor(grant) as GcpMachineType
    const key = parsePublicKey(grant.authorizedKey)
    // Rebuilt from the parsed key: no comment, so nothing in the line but type and blob.
    const keyLine = `${key.type} ${Buffer.from(key.getPublicSSH()).toString('base64')}`
    const labels = { [GRANT_LABEL]: labelValue(grant.id), [BACKEND_LABEL]: labelValue(this.name) }
    const scheduling: protos.google.cloud.compute.v1.IScheduling = { automaticRestart: true, onHostMaintenance: grant.tdx ? 'TERMINATE' : 'MIGRATE' }
    if (this.hostEnforcedExpiry) {
      scheduling.terminationTime = new Date(grant.validToUnixSecs * 1000).toISOString()
      scheduling.instanceTerminationAction = 'DELETE'
    }
    const resource: IInstance = {
      name,
      machineType: `zones/${zone}/machineTypes/${type.type}`,
      labels,
      metadata: {
        items: [
          { key: GRANT_LABEL, value: grant.id },
          { key: 'ssh-keys', value: `${GCP_USER}:${keyLine}` },
          { key: 'block-project-ssh-keys', value: 'TRUE' },
          { key: 'enable-oslogin', value: 'FALSE' },
          { key: 'enable-guest-attributes', value: 'TRUE' },
          // Its own value, verbatim: never spliced into a command line.
          { key: this.userDataKey, value: userDataText(grant.userData) ?? '' }
        ]
      },
      disks: [{
        boot: true,
        autoDelete: true,
        type: 'PERSISTENT',
        initializeParams: {
          sourceImage: this.sourceImage,
          diskSizeGb: String(Math.max(MIN_BOOT_DISK_GIB, Math.ceil(grant.diskGiB))),
          diskType: `zones/${zone}/diskTypes/${this.diskType}`,
          labels
        }
      }],
      networkInterfaces: [{
        network: this.network,
        ...(this.subnetwork !== undefined ? { subnetwork: this.subnetwork } : {}),
        accessConfigs: [{ name: 'External NAT', type: 'ONE_TO_ONE_NAT' }]
      }],
      serviceAccounts: [], // the requester's VM gets no identity in this project
      scheduling
    }
    if (grant.tdx) resource.confidentialInstanceConfig = { confidentialInstanceType: 'TDX' }
    return resource
  }

  /** Until the zone operation is DONE; throws OperationError if it ended with errors. */
  private async waitOperation (zone: string, first: IOperation, stop: AbortSignal): Promise<void> {
    let op = first
    const operation = op.name ?? ''
    if (operation === '') throw new Error('insert answered without an operation name')
    while (!isDone(op)) {
      const started = Date.now()
      ;[op] = await race(stop, this.operations.wait({ project: this.project, zone, operation }))
      const spent = Date.now() - started
      if (!isDone(op) && spent < this.pollIntervalMs) await sleep(this.pollIntervalMs - spent, undefined, { signal: stop })
    }
    const errors = op.error?.errors ?? []
    if (errors.length > 0) {
      const codes = errors.map((e) => e.code ?? 'UNKNOWN')
      throw new OperationError(codes, `${op.operationType ?? 'operation'} failed: ${errors.map((e) => `${e.code ?? 'UNKNOWN'}: ${e.message ?? ''}`).join('; ')}`)
    }
    if (op.httpErrorStatusCode != null && op.httpErrorStatusCode >= 400) {
      throw new OperationError([String(op.httpErrorStatusCode)], `operation failed: ${op.httpErrorStatusCode} ${op.httpErrorMessage ?? ''}`)
    }
  }

  /** `<type> <base64>` of the instance's SSH host key, from guest attributes `hostkeys/` (published by the guest agent at boot). */
  private async waitHostKey (zone: string, name: string, stop: AbortSignal): Promise<string> {
    for (;;) {
      try {
        const [attrs] = await race(stop, this.instances.getGuestAttributes({ project: this.project, zone, instance: name, queryPath: 'hostkeys/' }))
        const keys = new Map<string, string>()
        for (const item of attrs.queryValue?.items ?? []) {
          if (item.key == null || item.value == null) continue
          const parts = item.value.trim().split(/\s+/)
          const line = parts.length >= 2 ? `${parts[0] ?? ''} ${parts[1] ?? ''}` : `${item.key} ${parts[0] ?? ''}`
          try {
            const parsed = parsePublicKey(line)
            keys.set(parsed.type, `${parsed.type} ${Buffer.from(parsed.getPublicSSH()).toString('base64')}`)
          } catch { /* not a key; skip */ }
        }
        const best = HOST_KEY_PREFERENCE.map((t) => keys.get(t)).find((k) => k !== undefined) ?? [...keys.values()][0]
        if (best !== undefined) return best
      } catch (err) {
        if (stop.aborted) throw err
        if (httpStatus(err) !== 404) throw err // not published yet is a 404; anything else is real
      }
      await sleep(this.pollIntervalMs, undefined, { signal: stop })
    }
  }

  /** Deletes what a failed provision may have made; false if it could not. */
  private async cleanup (zone: string, name: string, grantId: string): Promise<boolean> {
    try {
      await this.deleteWithRetry(zone, name, AbortSignal.timeout(this.terminateTimeoutMs))
      return true
    } catch (err) {
      this.log.error(`grant ${grantId}: could not delete ${zone}/${name} after a failed provision (findOrphans will list it): ${describe(err)}`)
      return false
    }
  }

  private async deleteWithRetry (zone: string, name: string, stop: AbortSignal): Promise<void> {
    let last: unknown
    for (let attempt = 0; attempt < this.retryAttempts; attempt++) {
      if (attempt > 0) {
        try { await sleep(Math.min(this.retryBaseMs * 2 ** (attempt - 1), 30_000), undefined, { signal: stop }) } catch { break }
      }
      try {
        const [lro] = await race(stop, this.instances.delete({ project: this.project, zone, instance: name, requestId: randomUUID() }))
        await this.waitOperation(zone, lro.latestResponse as IOperation, stop)
        return
      } catch (err) {
        if (httpStatus(err) === 404) return
        if (err instanceof OperationError && err.codes.some((c) => c === 'RESOURCE_NOT_FOUND' || c === '404')) return
        last = err
        this.log.warn(`deleting ${zone}/${name} (attempt ${attempt + 1}/${this.retryAttempts}): ${describe(err)}`)
        if (stop.aborted) break
      }
    }
    throw new BackendError('BACKEND_TERMINATE_FAILED', `could not delete instance ${zone}/${name}: ${describe(last)}`, { zone, name }, { cause: last })
  }

  /** true/false when known; undefined when the API could not say. */
  private async exists (handle: string): Promise<boolean | undefined> {
    try {
      const { zone, name } = parseHandle(handle)
      const [inst] = await race(AbortSignal.timeout(30_000), this.instances.get({ project: this.project, zone, instance: name }))
      return !['TERMINATED', 'STOPPING', 'STOPPED', 'SUSPENDED'].includes(inst.status ?? '')
    } catch (err) {
      return httpStatus(err) === 404 ? false : undefined
    }
  }

  private endWatch (handle: string): void {
    const w = this.watches.get(handle)
    if (w === undefined) return
    this.watches.delete(handle)
    clearTimeout(w.timer)
    clearTimeout(w.poll)
    w.markEnded()
  }
}

/** Deterministic per grant: `cmesh-<slug>-<hash>`, a valid GCE name (`[a-z]([-a-z0-9]*[a-z0-9])?`, ≤ 63). */
export function instanceName (grantId: string): string {
  const slug = grantId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '')
  return `cmesh-${slug === '' ? '' : slug + '-'}${sha256hex(grantId).slice(0, 12)}`
}

/** A GCE label value (`[a-z0-9_-]{0,63}`): the value itself when already safe, else a readable prefix plus a hash. */
export function labelValue (value: string): string {
  if (/^[a-z0-9_-]{0,63}$/.test(value)) return value
  const slug = value.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').slice(0, 50)
  return `${slug}-${sha256hex(value).slice(0, 12)}`
}

function familyUrl (family: string): string {
  if (family.startsWith('projects/') || family.startsWith('https://')) return family
  const [project, name] = family.split('/')
  if (project === undefined || name === undefined) throw new BackendError('BACKEND_CANNOT_SATISFY', `imageFamily "${family}" is not <image project>/<family>`)
  return `projects/${project}/global/images/family/${name}`
}

function parseHandle (handle: string): { zone: string, name: string } {
  const m = /^([a-z0-9-]+)\/([a-z]([-a-z0-9]*[a-z0-9])?)$/.exec(handle)
  if (m === null) throw new BackendError('BACKEND_UNKNOWN_INSTANCE', `not a gcp instance handle: ${JSON.stringify(handle)}`, { handle })
  return { zone: m[1] as string, name: m[2] as string }
}

function userDataText (bytes: Uint8Array): string | undefined {
  try { return new TextDecoder('utf-8', { fatal: true }).decode(bytes) } catch { return undefined }
}

function metadataValue (inst: IInstance, key: string): string | undefined {
  return inst.metadata?.items?.find((i) => i.key === key)?.value ?? undefined
}

function lastSegment (s: string): string {
  return s.split('/').filter((p) => p !== '').pop() ?? ''
}

function isDone (op: IOperation): boolean {
  return String(op.status) === 'DONE' || op.status === compute.protos.google.cloud.compute.v1.Operation.Status.DONE
}

function isAborted (signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function sha256hex (s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** Races an SDK call against a signal (the REST client's promises cannot be cancelled). */
async function race<T> (signal: AbortSignal, promise: Promise<T>): Promise<T> {
  if (signal.aborted) { promise.catch(() => {}); throw signal.reason }
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}

/** HTTP status of an SDK error (gaxios answers carry `status`; gax errors a gRPC `code`). */
function httpStatus (err: unknown): number | undefined {
  const e = err as { status?: unknown, code?: unknown, response?: { status?: unknown } } | null
  if (e === null || typeof e !== 'object') return undefined
  if (typeof e.status === 'number') return e.status
  if (typeof e.response?.status === 'number') return e.response.status
  const code = Number(e.code)
  if (code >= 400 && code < 600) return code
  if (code === 5) return 404
  if (code === 6) return 409
  return undefined
}

/** A short, credential-free description: status and the API's message only. */
function describe (err: unknown): string {
  if (err === undefined) return 'unknown error'
  const status = httpStatus(err)
  let message = err instanceof Error ? err.message : String(err)
  try {
    const parsed = JSON.parse(message) as { error?: { message?: string } }
    if (typeof parsed.error?.message === 'string') message = parsed.error.message
  } catch { /* not JSON */ }
  message = message.replace(/\s+/g, ' ').slice(0, 300)
  return status !== undefined ? `HTTP ${status}: ${message}` : message
}
