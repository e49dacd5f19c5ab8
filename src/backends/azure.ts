/**
 * Azure backend (DESIGN.md §7): one grant = one Linux VM made through the real `@azure/arm-compute`
 * SDK (`ComputeManagementClient`), tagged `cmesh-grant = <grant id>`, named after the grant so one
 * grant can never own two VMs (the PUT carries `If-None-Match: *`).
 *
 * What this backend honestly cannot do with only `@azure/arm-compute` installed (no arm-network):
 * - Create NICs or public IPs itself. It either attaches a pre-created NIC from a pool
 *   (`networkInterfaceIds`, one VM per NIC at a time, NICs in the grant's region) or asks the
 *   Compute RP to create a VM-owned NIC (+ public IP) in `subnetId` through
 *   `networkProfile.networkInterfaceConfigurations` (deleted with the VM).
 * - Read the VM's IP address through a typed API: the VM resource only names its NIC. The built-in
 *   resolver (`defaultAddressOf`, used when no `addressOf` hook is given, so JSON config works) GETs
 *   the primary NIC and its public IP with the authenticated client's generic `sendRequest`, as
 *   arm-network would; `address: 'private-ip'` takes the NIC's private address instead.
 * - Learn the SSH host key: the VM API never exposes it, and the sealed receipt must pin one. The
 *   built-in resolver creates the VM with boot diagnostics on (managed storage), then polls
 *   retrieveBootDiagnosticsData and reads the serial log through its SAS URL (the client's pipeline,
 *   TLS trust included, minus the bearer-token policy: the ARM token never goes to storage) until
 *   cloud-init's `SSH HOST KEY KEYS` block appears. A custom `addressOf` hook may supply both instead
 *   (e.g. a key the image was baked with). With no host key by the deadline the VM is deleted and
 *   provisioning fails closed with BACKEND_HOST_KEY_UNKNOWN rather than hand out an unpinned host.
 * The requester's user_data goes, base64-encoded, into its own VM field (`userData` by default,
 * which the guest reads from IMDS; `customData` for plain cloud-init images) and is never
 * interpolated into anything. Credentials come from the given TokenCredential or
 * DefaultAzureCredential and are never logged; SDK errors are reduced to status + code + message.
 */
import { createHash } from 'node:crypto'
import type { TokenCredential } from '@azure/core-auth'
import type { ComputeManagementClient, ComputeManagementClientOptionalParams, VirtualMachine } from '@azure/arm-compute'
import type { HttpClient } from '@azure/core-rest-pipeline'
import { isIP } from 'node:net'
import {
  BackendError, checkCapabilities, type Backend, type BackendCapabilities, type BackendErrorCode, type CanSatisfy,
  type Grant, type Instance, type ProvisionOptions, defaultBackendLogger, type BackendLogger } from './backend.js'
import { hostKeyFingerprint, parsePublicKey, publicKeyBlob } from './ssh-keys.js'
import { parseConsoleHostKey } from './console-host-key.js'

export const AZURE_USER = 'cmesh'
export const AZURE_GRANT_TAG = 'cmesh-grant'
export const AZURE_BACKEND_TAG = 'cmesh-backend'
const MAX_USER_DATA_BYTES = 64 * 1024 // Azure's limit for userData and customData (before base64)
const MAX_TIMER_MS = 2 ** 31 - 1
/** Microsoft.Network api-version for the NIC and public IP GETs the built-in resolver makes. */
export const AZURE_NETWORK_API_VERSION = '2023-09-01'

/** Codes this backend throws beyond backend.ts's list (to be added there). */
export type AzureBackendErrorCode = BackendErrorCode | 'BACKEND_TIMEOUT' | 'BACKEND_HOST_KEY_UNKNOWN' | 'BACKEND_TERMINATE_FAILED'

export interface AzureVmSize {
  size: string
  cpus: number
  memMiB: number
  /** Intel TDX confidential size (DCesv5 / ECesv5). */
  tdx?: boolean
}

const GiB = 1024
const sizes = (prefix: string, suffix: string, perCpuGiB: number, cpus: number[], tdx: boolean): AzureVmSize[] =>
  cpus.map((n) => ({ size: `Standard_${prefix}${n}${suffix}`, cpus: n, memMiB: n * perCpuGiB * GiB, tdx }))

/** General purpose Dsv5 and the Intel TDX confidential DCesv5 / ECesv5 families. */
export const DEFAULT_AZURE_VM_SIZES: AzureVmSize[] = [
  ...sizes('D', 's_v5', 4, [2, 4, 8, 16, 32, 48, 64, 96], false),
  ...sizes('DC', 'es_v5', 4, [2, 4, 8, 16, 32, 48, 64, 96], true),
  ...sizes('EC', 'es_v5', 8, [2, 4, 8, 16, 32, 48, 64], true),
  { size: 'Standard_EC128es_v5', cpus: 128, memMiB: 768 * GiB, tdx: true }
]

export interface AzureImageReference { publisher?: string, offer?: string, sku?: string, version?: string, id?: string }

/** Where the VM's SSH endpoint is, and its host key (see the module comment: Azure exposes neither). */
export interface AzureEndpoint {
  host: string
  port?: number
  /** `<type> <base64>`; required, or the VM is deleted and provisioning fails with BACKEND_HOST_KEY_UNKNOWN. */
  hostKey?: string
  ipv4?: string
  ipv6?: string
}

export interface AzureAddressContext {
  grant: Grant
  /** Aborts at the provisioning deadline or when the caller gives up. */
  signal: AbortSignal
  /** The authenticated client (its `sendRequest` reaches any ARM resource, e.g. the NIC and public IP). */
  client: ComputeManagementClient
}

export interface AzureBackendOptions {
  name: string
  subscriptionId: string
  resourceGroup: string
  /** Azure regions (`westeurope`…); a grant's region must be one of them. */
  locations: string[]
  imageReference: AzureImageReference
  /** Image for TDX grants (a confidential-VM image such as Ubuntu's `*-cvm` SKUs); default `imageReference`. */
  tdxImageReference?: AzureImageReference
  vmSizes?: AzureVmSize[]
  /** A pool of pre-created NIC ids (each serves one VM at a time; must be in the grant's region). */
  networkInterfaceIds?: string[]
  /** A subnet id (or one per location) for a VM-owned NIC the Compute RP creates and deletes with the VM. */
  subnetId?: string | Record<string, string>
  /** With `subnetId`: give the VM-owned NIC a Standard static public IP (default true). */
  publicIp?: boolean
  /** With `subnetId`: NSG for the VM-owned NIC (Standard public IPs admit nothing without one allowing 22/tcp). */
  networkSecurityGroupId?: string
  maxCpu: number
  maxMemoryMiB: number
  maxDiskGiB: number
  tdx: boolean
  /** Confidential OS disk mode for TDX VMs (default VMGuestStateOnly; DiskWithVMGuestState needs a supporting image). */
  confidentialDiskEncryption?: 'VMGuestStateOnly' | 'DiskWithVMGuestState'
  /** Where the requester's user_data goes (default `userData`, read by the guest from IMDS; `customData` for cloud-init). */
  userDataField?: 'userData' | 'customData'
  osDiskStorageAccountType?: string
  /** Smallest OS disk (GiB) the image accepts (default 30). */
  minOsDiskGiB?: number
  /** Resolves the SSH endpoint and host key of a provisioned VM (default: the built-in `defaultAddressOf`). */
  addressOf?: (vm: VirtualMachine, ctx: AzureAddressContext) => Promise<AzureEndpoint | undefined>
  /** Built-in resolver: the NIC's public IP (default) or its private IP. */
  address?: 'public-ip' | 'private-ip'
  /** Built-in resolver: where the host key comes from (cloud-init's block in the boot-diagnostics serial log). */
  hostKeyFrom?: 'boot-diagnostics'
  /** Default DefaultAzureCredential (environment, workload/managed identity, Azure CLI…). */
  credential?: TokenCredential
  /** ARM endpoint override (tests; sovereign clouds). Must be https. */
  endpoint?: string
  /** Passed to ComputeManagementClient (e.g. `tlsOptions: { ca }`, a custom `httpClient`, `retryOptions`). */
  clientOptions?: ComputeManagementClientOptionalParams
  log?: BackendLogger
  now?: () => number
  pollIntervalMs?: number
  provisionTimeoutMs?: number
  /** Bound on deleting a VM after a failed provision. */
  cleanupTimeoutMs?: number
  /** Backoff between delete attempts (terminate and cleanup); its length + 1 attempts in all. */
  deleteRetryDelaysMs?: number[]
  /** How often watchUntilExit checks the VM still exists (default 60 s). */
  watchIntervalMs?: number
}

export interface AzureOrphan { grantId: string, name: string, backend?: string, location?: string }

export type AzureHealth = { ok: true } | { ok: false, reason: string }

interface Live { grantId: string, nic?: string, watch?: AbortController, ended?: Promise<void>, markEnded?: () => void }

/** The VM name for a grant: deterministic, so a retried or duplicated provision finds the same VM. */
export function azureVmName (grantId: string): string {
  return `cmesh-${createHash('sha256').update(grantId).digest('hex').slice(0, 20)}`
}

export class AzureBackend implements Backend {
  readonly kind = 'azure'
  readonly name: string
  private readonly opts: AzureBackendOptions
  private readonly caps: BackendCapabilities
  private readonly sizes: AzureVmSize[]
  private readonly log: BackendLogger
  private readonly now: () => number
  private readonly pollIntervalMs: number
  private readonly provisionTimeoutMs: number
  private readonly cleanupTimeoutMs: number
  private readonly deleteRetryDelaysMs: number[]
  /** Grants being provisioned or live, by grant id (claimed before the first await). */
  private readonly live = new Map<string, Live>()
  private readonly nicsInUse = new Set<string>()
  private clientPromise?: Promise<ComputeManagementClient>

  constructor (options: AzureBackendOptions) {
    if ((options.networkInterfaceIds?.length ?? 0) > 0 === (options.subnetId !== undefined)) {
      throw new TypeError('AzureBackend: give exactly one of networkInterfaceIds (a non-empty pool) or subnetId')
    }
    if (options.endpoint !== undefined && !options.endpoint.startsWith('https://')) {
      throw new TypeError('AzureBackend: endpoint must be https (the SDK sends bearer tokens only over TLS)')
    }
    if (options.addressOf !== undefined && typeof options.addressOf !== 'function') throw new TypeError('AzureBackend: addressOf must be a function')
    if (options.address !== undefined && options.address !== 'public-ip' && options.address !== 'private-ip') {
      throw new TypeError("AzureBackend: address must be 'public-ip' or 'private-ip'")
    }
    if (options.hostKeyFrom !== undefined && options.hostKeyFrom !== 'boot-diagnostics') throw new TypeError("AzureBackend: hostKeyFrom must be 'boot-diagnostics'")
    this.opts = options
    this.name = options.name
    this.sizes = options.vmSizes ?? DEFAULT_AZURE_VM_SIZES
    this.caps = { regions: [...options.locations], maxCpu: options.maxCpu, maxMemoryMiB: options.maxMemoryMiB, maxDiskGiB: options.maxDiskGiB, tdx: options.tdx }
    this.log = options.log ?? defaultBackendLogger('cmesh:backend:azure')
    this.now = options.now ?? Date.now
    this.pollIntervalMs = options.pollIntervalMs ?? 5000
    this.provisionTimeoutMs = options.provisionTimeoutMs ?? 15 * 60_000
    this.cleanupTimeoutMs = options.cleanupTimeoutMs ?? 10 * 60_000
    this.deleteRetryDelaysMs = options.deleteRetryDelaysMs ?? [2000, 10_000, 30_000]
  }

  capabilities (): BackendCapabilities {
    return { ...this.caps, regions: [...this.caps.regions] }
  }

  /** The smallest configured size with enough CPUs and memory (TDX grants: only TDX sizes; others: only non-TDX). */
  pickSize (grant: Pick<Grant, 'cpus' | 'memMiB' | 'tdx'>): AzureVmSize | undefined {
    return this.sizes
      .filter((s) => (s.tdx === true) === grant.tdx && s.cpus >= grant.cpus && s.memMiB >= grant.memMiB)
      .sort((a, b) => a.cpus - b.cpus || a.memMiB - b.memMiB)[0]
  }

  canSatisfy (grant: Grant): CanSatisfy {
    const verdict = checkCapabilities(this.caps, grant, Math.floor(this.now() / 1000))
    if (!verdict.ok) return verdict
    if (this.pickSize(grant) === undefined) return { ok: false, reason: `no ${grant.tdx ? 'TDX ' : ''}VM size with ${grant.cpus} CPUs and ${grant.memMiB} MiB` }
    if (grant.userData.length > MAX_USER_DATA_BYTES) return { ok: false, reason: `user_data is ${grant.userData.length} bytes; at most ${MAX_USER_DATA_BYTES}` }
    if (this.live.has(grant.id)) return { ok: false, reason: 'grant already provisioned' }
    if (this.opts.networkInterfaceIds !== undefined && this.freeNic() === undefined) return { ok: false, reason: 'every network interface in the pool is in use' }
    if (this.subnetFor(grant.region) === undefined && this.opts.subnetId !== undefined) return { ok: false, reason: `no subnet configured for ${grant.region}` }
    try { parsePublicKey(grant.authorizedKey) } catch { return { ok: false, reason: 'authorized key is not an OpenSSH public key' } }
    return { ok: true }
  }

  async provision (grant: Grant, { onProgress, signal }: ProvisionOptions = {}): Promise<Instance> {
    const verdict = this.canSatisfy(grant)
    if (!verdict.ok) throw fail('BACKEND_CANNOT_SATISFY', verdict.reason, { grantId: grant.id })
    if (signal?.aborted === true) throw fail('BACKEND_ABORTED', 'provisioning aborted', { grantId: grant.id })
    const size = this.pickSize(grant) as AzureVmSize
    const name = azureVmName(grant.id)
    const entry: Live = { grantId: grant.id }
    this.live.set(grant.id, entry) // claimed before the first await: one grant is never provisioned twice
    if (this.opts.networkInterfaceIds !== undefined) {
      entry.nic = this.freeNic()
      if (entry.nic !== undefined) this.nicsInUse.add(entry.nic)
    }
    onProgress?.({ type: 'provision:starting', detail: { grantId: grant.id } })

    const timeout = AbortSignal.timeout(this.provisionTimeoutMs)
    const deadline = signal === undefined ? timeout : AbortSignal.any([timeout, signal])
    let mayExist = false
    try {
      const client = await this.client()
      const params = this.vmParameters(grant, size, entry.nic)
      mayExist = true // from here a VM may exist even if the PUT's answer never arrives
      this.log.info(`creating VM ${name} (${size.size}${size.tdx === true ? ', TDX' : ''}) in ${grant.region} for grant ${grant.id}`)
      const poller = await client.virtualMachines.beginCreateOrUpdate(this.opts.resourceGroup, name, params, {
        abortSignal: deadline, updateIntervalInMs: this.pollIntervalMs, ifNoneMatch: '*'
      })
      onProgress?.({ type: 'provision:booting', detail: {} })
      await poller.pollUntilDone({ abortSignal: deadline })
      const vm = await client.virtualMachines.get(this.opts.resourceGroup, name, { abortSignal: deadline })
      const state = vm.provisioningState
      if (state !== 'Succeeded') throw fail('BACKEND_PROVISION_FAILED', `VM ${name} is ${state ?? 'in no provisioning state'}`, { grantId: grant.id })
      onProgress?.({ type: 'provision:user-data', detail: { bytes: grant.userData.length } })

      const ctx: AzureAddressContext = { grant, signal: deadline, client }
      const endpoint = this.opts.addressOf !== undefined
        ? await this.opts.addressOf(vm, ctx)
        : await defaultAddressOf(vm, ctx, {
          address: this.opts.address, resourceGroup: this.opts.resourceGroup, pollIntervalMs: this.pollIntervalMs, log: this.log, httpClient: this.opts.clientOptions?.httpClient
        })
      if (deadline.aborted) throw deadline.reason
      if (endpoint === undefined || endpoint.host === '') throw fail('BACKEND_PROVISION_FAILED', `no address for VM ${name}`, { grantId: grant.id })
      if (endpoint.hostKey === undefined) {
        // Azure has no API for a VM's SSH host key, and the sealed receipt must pin one: fail closed.
        throw fail('BACKEND_HOST_KEY_UNKNOWN', `host key of VM ${name} unknown (Azure does not expose it; addressOf must supply it)`, { grantId: grant.id })
      }
      let hostKey: string
      let fingerprint: string
      try {
        hostKey = endpoint.hostKey.trim().split(/\s+/).slice(0, 2).join(' ')
        fingerprint = hostKeyFingerprint(publicKeyBlob(hostKey))
      } catch {
        throw fail('BACKEND_HOST_KEY_UNKNOWN', `host key of VM ${name} is not an OpenSSH public key`, { grantId: grant.id })
      }
      const instance: Instance = {
        grantId: grant.id,
        backend: this.name,
        host: endpoint.host,
        port: endpoint.port ?? 22,
        user: AZURE_USER,
        hostKeyFingerprint: fingerprint,
        hostKey,
        handle: name,
        ...(endpoint.ipv4 !== undefined ? { ipv4: endpoint.ipv4 } : {}),
        ...(endpoint.ipv6 !== undefined ? { ipv6: endpoint.ipv6 } : {})
      }
      this.log.info(`VM ${name} for grant ${grant.id} ready at ${instance.host}:${instance.port}`)
      onProgress?.({ type: 'provision:ready', detail: instance })
      return instance
    } catch (err) {
      const error = this.classify(err, grant.id, name, timeout, signal)
      this.log.warn(`provisioning grant ${grant.id} failed (${error.code}): ${error.message}`)
      if (mayExist && !(isRest(err) && err.statusCode === 412)) { // 412: a VM of that name predates this call; not ours to delete
        try {
          await this.deleteVm(name, AbortSignal.timeout(this.cleanupTimeoutMs))
        } catch (cleanupErr) {
          this.log.error(`VM ${name} (grant ${grant.id}) may be left behind: ${describe(cleanupErr)}; findOrphans() will list it`)
          Object.assign(error.meta, { leaked: name })
        }
      }
      this.release(grant.id)
      throw error
    }
  }

  /** Resolves when the VM is gone, or deletes it once valid-to passes. */
  async watchUntilExit (instance: Instance, validToUnixSecs: number): Promise<void> {
    const name = instance.handle ?? azureVmName(instance.grantId)
    const entry = this.live.get(instance.grantId) ?? { grantId: instance.grantId }
    this.live.set(instance.grantId, entry)
    if (entry.ended !== undefined) { await entry.ended; return }
    entry.watch = new AbortController()
    entry.ended = new Promise<void>((resolve) => { entry.markEnded = resolve })
    const { signal } = entry.watch
    const interval = this.opts.watchIntervalMs ?? 60_000
    void (async () => {
      try {
        while (!signal.aborted) {
          const left = validToUnixSecs * 1000 - this.now()
          if (left <= 0) { await this.terminate(instance); break }
          await sleep(Math.min(left, interval, MAX_TIMER_MS), signal)
          if (signal.aborted) break
          if (!(await this.exists(name))) break
        }
      } catch (err) {
        if (!signal.aborted) this.log.warn(`watching VM ${name}: ${describe(err)}`)
      } finally {
        this.release(instance.grantId)
        entry.markEnded?.()
      }
    })()
    await entry.ended
  }

  /** Deletes the VM (and whatever it owns with deleteOption Delete); idempotent, retried with backoff. */
  async terminate (instance: Instance): Promise<void> {
    const name = instance.handle ?? azureVmName(instance.grantId)
    await this.deleteVm(name)
    const entry = this.live.get(instance.grantId)
    entry?.watch?.abort()
    entry?.markEnded?.()
    this.release(instance.grantId)
    this.log.info(`VM ${name} for grant ${instance.grantId} deleted`)
  }

  /** Every VM in the resource group carrying the grant tag; the fleet decides which are orphans. */
  async findOrphans (signal?: AbortSignal): Promise<AzureOrphan[]> {
    const client = await this.client()
    const out: AzureOrphan[] = []
    try {
      for await (const vm of client.virtualMachines.list(this.opts.resourceGroup, { abortSignal: signal })) {
        const grantId = vm.tags?.[AZURE_GRANT_TAG]
        if (grantId === undefined || vm.name === undefined) continue
        out.push({ grantId, name: vm.name, backend: vm.tags?.[AZURE_BACKEND_TAG], location: vm.location })
      }
    } catch (err) {
      throw fail('BACKEND_PROVISION_FAILED', `listing VMs failed: ${describe(err)}`, {})
    }
    return out
  }

  /** A cheap authenticated call: the first page of the resource group's VM list. */
  async checkHealth (signal: AbortSignal = AbortSignal.timeout(30_000)): Promise<AzureHealth> {
    try {
      const client = await this.client()
      const pages = client.virtualMachines.list(this.opts.resourceGroup, { abortSignal: signal }).byPage()
      await pages.next()
      return { ok: true }
    } catch (err) {
      return { ok: false, reason: describe(err) }
    }
  }

  private async client (): Promise<ComputeManagementClient> {
    this.clientPromise ??= (async () => {
      const { ComputeManagementClient } = await import('@azure/arm-compute')
      let credential = this.opts.credential
      if (credential === undefined) {
        const { DefaultAzureCredential } = await import('@azure/identity')
        credential = new DefaultAzureCredential()
      }
      const endpoint = this.opts.endpoint
      return new ComputeManagementClient(credential, this.opts.subscriptionId, {
        ...this.opts.clientOptions,
        ...(endpoint !== undefined ? { endpoint, $host: endpoint } : {})
      })
    })()
    this.clientPromise.catch(() => { this.clientPromise = undefined })
    return await this.clientPromise
  }

  private vmParameters (grant: Grant, size: AzureVmSize, nic: string | undefined): VirtualMachine {
    const tdx = size.tdx === true
    const image = tdx ? (this.opts.tdxImageReference ?? this.opts.imageReference) : this.opts.imageReference
    const name = azureVmName(grant.id)
    const userData = Buffer.from(grant.userData).toString('base64')
    const networkProfile: VirtualMachine['networkProfile'] = nic !== undefined
      ? { networkInterfaces: [{ id: nic, primary: true, deleteOption: 'Detach' }] }
      : {
          networkApiVersion: '2020-11-01',
          networkInterfaceConfigurations: [{
            name: `${name}-nic`,
            primary: true,
            deleteOption: 'Delete',
            ...(this.opts.networkSecurityGroupId !== undefined ? { networkSecurityGroup: { id: this.opts.networkSecurityGroupId } } : {}),
            ipConfigurations: [{
              name: 'ipconfig1',
              subnet: { id: this.subnetFor(grant.region) },
              ...((this.opts.publicIp ?? true)
                ? { publicIPAddressConfiguration: { name: `${name}-ip`, deleteOption: 'Delete', sku: { name: 'Standard' }, publicIPAllocationMethod: 'Static' } }
                : {})
            }]
          }]
        }
    return {
      location: grant.region,
      tags: { [AZURE_GRANT_TAG]: grant.id, [AZURE_BACKEND_TAG]: this.name },
      hardwareProfile: { vmSize: size.size },
      storageProfile: {
        imageReference: image,
        osDisk: {
          createOption: 'FromImage',
          deleteOption: 'Delete',
          diskSizeGB: Math.max(grant.diskGiB, this.opts.minOsDiskGiB ?? 30),
          managedDisk: {
            storageAccountType: this.opts.osDiskStorageAccountType ?? 'Premium_LRS',
            ...(tdx ? { securityProfile: { securityEncryptionType: this.opts.confidentialDiskEncryption ?? 'VMGuestStateOnly' } } : {})
          }
        }
      },
      osProfile: {
        computerName: name,
        adminUsername: AZURE_USER,
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          provisionVMAgent: true,
          ssh: { publicKeys: [{ path: `/home/${AZURE_USER}/.ssh/authorized_keys`, keyData: grant.authorizedKey }] }
        },
        ...(this.opts.userDataField === 'customData' ? { customData: userData } : {})
      },
      ...(this.opts.userDataField === 'customData' ? {} : { userData }),
      ...(tdx ? { securityProfile: { securityType: 'ConfidentialVM', uefiSettings: { secureBootEnabled: true, vTpmEnabled: true } } } : {}),
      // The built-in resolver reads the host key from the serial log: boot diagnostics, managed storage (no storageUri).
      ...(this.opts.addressOf === undefined ? { diagnosticsProfile: { bootDiagnostics: { enabled: true } } } : {}),
      networkProfile
    }
  }

  /** beginDelete + poll; 404 counts as done; retried with backoff. */
  private async deleteVm (name: string, signal?: AbortSignal): Promise<void> {
    const client = await this.client()
    let last: unknown
    for (let attempt = 0; attempt <= this.deleteRetryDelaysMs.length; attempt++) {
      if (attempt > 0) await sleep(this.deleteRetryDelaysMs[attempt - 1] as number, signal)
      if (signal?.aborted === true) break
      try {
        const poller = await client.virtualMachines.beginDelete(this.opts.resourceGroup, name, { updateIntervalInMs: this.pollIntervalMs, abortSignal: signal })
        await poller.pollUntilDone({ abortSignal: signal })
        return
      } catch (err) {
        if (isRest(err) && err.statusCode === 404) return
        last = err
        this.log.warn(`deleting VM ${name} (attempt ${attempt + 1}): ${describe(err)}`)
      }
    }
    throw fail('BACKEND_TERMINATE_FAILED', `could not delete VM ${name}: ${describe(last ?? signal?.reason)}`, { name })
  }

  private async exists (name: string): Promise<boolean> {
    const client = await this.client()
    try {
      await client.virtualMachines.get(this.opts.resourceGroup, name)
      return true
    } catch (err) {
      if (isRest(err) && err.statusCode === 404) return false
      throw err
    }
  }

  private classify (err: unknown, grantId: string, name: string, timeout: AbortSignal, signal?: AbortSignal): BackendError {
    if (signal?.aborted === true) return fail('BACKEND_ABORTED', `provisioning VM ${name} aborted`, { grantId })
    if (err instanceof BackendError) return err
    if (timeout.aborted) return fail('BACKEND_TIMEOUT', `VM ${name} not ready within ${this.provisionTimeoutMs} ms`, { grantId, timeoutMs: this.provisionTimeoutMs })
    const rest = isRest(err) ? { status: err.statusCode, azureCode: err.code } : {}
    return fail('BACKEND_PROVISION_FAILED', `creating VM ${name} failed: ${describe(err)}`, { grantId, ...rest })
  }

  private release (grantId: string): void {
    const entry = this.live.get(grantId)
    if (entry?.nic !== undefined) this.nicsInUse.delete(entry.nic)
    this.live.delete(grantId)
  }

  private freeNic (): string | undefined {
    return this.opts.networkInterfaceIds?.find((id) => !this.nicsInUse.has(id))
  }

  private subnetFor (region: string): string | undefined {
    const subnet = this.opts.subnetId
    return typeof subnet === 'string' || subnet === undefined ? subnet : subnet[region]
  }
}

export interface DefaultAddressOptions {
  address?: 'public-ip' | 'private-ip'
  /** Default: parsed from the VM's id. */
  resourceGroup?: string
  pollIntervalMs?: number
  log?: BackendLogger
  /** The HttpClient the ARM client uses, if a custom one was given (the serial log goes through it too). */
  httpClient?: HttpClient
}

/**
 * The built-in resolver: the VM's primary NIC → its primary ipConfiguration's private IP or public IP
 * resource's `ipAddress` (Microsoft.Network GETs through the client's authenticated pipeline), and the
 * host key from cloud-init's block in the boot-diagnostics serial log, polled until it appears. At the
 * deadline without a host key it throws BACKEND_HOST_KEY_UNKNOWN (the caller deletes the VM).
 */
export async function defaultAddressOf (vm: VirtualMachine, { grant, signal, client }: AzureAddressContext, opts: DefaultAddressOptions = {}): Promise<AzureEndpoint> {
  // @azure/arm-compute's own dependency (same copy the client's pipeline comes from).
  const rp = await import('@azure/core-rest-pipeline')
  const interval = opts.pollIntervalMs ?? 5000
  const log = opts.log ?? defaultBackendLogger('cmesh:backend:azure')
  const name = vm.name ?? ''
  const meta = { grantId: grant.id }

  const armGet = async (id: string): Promise<any> => {
    if (!/^\/subscriptions\/[^?#\s]+$/i.test(id)) throw fail('BACKEND_PROVISION_FAILED', `unexpected resource id for VM ${name}`, meta)
    const url = `${client.$host.replace(/\/+$/, '')}${id}?api-version=${AZURE_NETWORK_API_VERSION}`
    const res = await client.sendRequest(rp.createPipelineRequest({ url, method: 'GET', abortSignal: signal }))
    let body: any
    try { body = JSON.parse(res.bodyAsText ?? '') } catch { body = undefined }
    if (res.status !== 200) {
      throw new rp.RestError(String(body?.error?.message ?? `GET ${id.split('/').slice(-2).join('/')} answered ${res.status}`), { statusCode: res.status, code: body?.error?.code })
    }
    if (typeof body !== 'object' || body === null) throw fail('BACKEND_PROVISION_FAILED', `unreadable ARM answer for ${id.split('/').pop() ?? ''}`, meta)
    return body
  }
  const first = <T extends { primary?: boolean }>(xs: T[]): T | undefined => xs.find((x) => x.primary === true) ?? xs[0]

  const nicId = first(vm.networkProfile?.networkInterfaces ?? [])?.id
  if (nicId === undefined) throw fail('BACKEND_PROVISION_FAILED', `VM ${name} names no network interface`, meta)
  const nic = await armGet(nicId)
  const ipConfigs: any[] = Array.isArray(nic.properties?.ipConfigurations) ? nic.properties.ipConfigurations : []
  const ipConfig = (ipConfigs.find((c) => c?.properties?.primary === true) ?? ipConfigs[0])?.properties
  let host: string | undefined
  if ((opts.address ?? 'public-ip') === 'private-ip') {
    host = validIp(ipConfig?.privateIPAddress)
    if (host === undefined) throw fail('BACKEND_PROVISION_FAILED', `NIC of VM ${name} has no private IP`, meta)
  } else {
    const publicIpId = ipConfig?.publicIPAddress?.id
    if (typeof publicIpId !== 'string') throw fail('BACKEND_PROVISION_FAILED', `NIC of VM ${name} has no public IP (give it one, or set address: 'private-ip')`, meta)
    for (;;) { // a dynamic public IP is assigned only once the VM runs
      host = validIp((await armGet(publicIpId))?.properties?.ipAddress)
      if (host !== undefined) break
      await sleep(interval, signal)
      if (signal.aborted) throw signal.reason
    }
  }

  const resourceGroup = opts.resourceGroup ?? /\/resourceGroups\/([^/]+)\//i.exec(vm.id ?? '')?.[1]
  if (resourceGroup === undefined) throw fail('BACKEND_PROVISION_FAILED', `no resource group for VM ${name}`, meta)
  // The SAS URL authorizes the read; the ARM bearer token must not go to storage.
  const blobPipeline = client.pipeline.clone()
  blobPipeline.removePolicy({ name: rp.bearerTokenAuthenticationPolicyName })
  const httpClient = opts.httpClient ?? rp.createDefaultHttpClient()
  let lastProblem = 'no serial log yet'
  for (;;) {
    if (signal.aborted) {
      throw fail('BACKEND_HOST_KEY_UNKNOWN', `no SSH host key block in the serial log of VM ${name} before the deadline (${lastProblem})`, meta)
    }
    try {
      const diag = await client.virtualMachines.retrieveBootDiagnosticsData(resourceGroup, name, { sasUriExpirationTimeInMinutes: 10, abortSignal: signal })
      const uri = diag.serialConsoleLogBlobUri
      if (uri === undefined || !uri.startsWith('https://')) {
        lastProblem = 'no https serial log URI'
      } else {
        const res = await blobPipeline.sendRequest(httpClient, rp.createPipelineRequest({ url: uri, method: 'GET', abortSignal: signal }))
        if (res.status !== 200) {
          lastProblem = `serial log answered ${res.status}`
        } else {
          const found = parseConsoleHostKey(res.bodyAsText ?? '')
          if (found !== undefined) return { host, hostKey: found.hostKey, ...(isIP(host) === 6 ? { ipv6: host } : { ipv4: host }) }
          lastProblem = 'serial log has no host key block yet'
        }
      }
    } catch (err) {
      if (isRest(err) && (err.statusCode === 401 || err.statusCode === 403)) throw err
      if (!signal.aborted) lastProblem = describe(err)
    }
    log.debug(`host key of VM ${name}: ${lastProblem}`)
    await sleep(interval, signal)
  }
}

function validIp (value: unknown): string | undefined {
  return typeof value === 'string' && isIP(value) !== 0 ? value : undefined
}

function fail (code: AzureBackendErrorCode, message: string, meta: Record<string, unknown>): BackendError {
  return new BackendError(code as BackendErrorCode, message, meta)
}

interface RestLike { statusCode?: number, code?: string, message: string }
function isRest (err: unknown): err is RestLike {
  return typeof err === 'object' && err !== null && ('statusCode' in err || 'code' in err) && 'message' in err
}

/** Status, ARM error code and message only: the SDK's error objects carry the request (headers included). */
function describe (err: unknown): string {
  if (err === undefined) return 'unknown error'
  if (isRest(err)) return [err.statusCode, err.code, err.message].filter((x) => x !== undefined && x !== '').join(' ')
  if (err instanceof Error) return err.message
  return String(err)
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>((resolve) => {
    const done = (): void => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}
