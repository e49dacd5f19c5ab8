/**
 * A small Azure Resource Manager for tests: node:https on 127.0.0.1 with a certificate from a
 * throwaway test CA (made with openssl), serving the Microsoft.Compute virtualMachines endpoints
 * the Azure backend uses, with the ARM long-running-operation protocol the SDK polls
 * (`Azure-AsyncOperation` header → operation status InProgress → Succeeded | Failed | Canceled).
 * It checks the bearer token, logs every request, and has fault switches.
 *
 * For the built-in address/host-key resolver it also plays the Network RP and boot diagnostics: a VM
 * created with `networkInterfaceConfigurations` gets a VM-owned NIC (+ Standard public IP) that
 * `GET …/Microsoft.Network/networkInterfaces|publicIPAddresses/<name>` serve and the VM's delete
 * removes; `POST …/retrieveBootDiagnosticsData` hands out a SAS URL to a serial log blob on this
 * server (no bearer token accepted or needed: the `sig` authorizes), which shows a cloud-init-like
 * boot and, `serialLogDelayMs` after the VM is up, a block with a freshly generated ed25519 host key.
 */
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const FAKE_ARM_TOKEN = 'fake-arm-token'

export interface TestTls { caPem: string, keyPem: string, certPem: string }

/** A test CA and a server certificate for 127.0.0.1 / localhost signed by it. */
export function makeTestTls (): TestTls {
  const dir = mkdtempSync(join(tmpdir(), 'cmesh-fake-arm-'))
  const run = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' }) }
  try {
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=cmesh test CA',
      '-keyout', 'ca.key', '-out', 'ca.pem')
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr')
    writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.pem')
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8')
    return { caPem: read('ca.pem'), keyPem: read('server.key'), certPem: read('server.pem') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export interface FakeArmRequest { method: string, path: string, query: string, body?: any, authorized: boolean }

export interface FakeArmFaults {
  /** What happens to the next creates: the operation ends Failed (VM left in state Failed), never ends, or the PUT is refused. */
  create?: 'fail' | 'stall' | 'reject'
  /** The next n DELETEs answer 409 Conflict. */
  deleteConflicts?: number
  /** Serial logs never show cloud-init's host key block. */
  noHostKeys?: boolean
}

interface Operation { id: string, status: 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled', error?: { code: string, message: string }, vm: string }

export interface FakeArmOptions { tls: TestTls, createDelayMs?: number, deleteDelayMs?: number, serialLogDelayMs?: number }

export class FakeArm {
  readonly requests: FakeArmRequest[] = []
  /** VMs by lower-cased name, as ARM stores them. */
  readonly vms = new Map<string, any>()
  /** Network resources by lower-cased name (VM-owned NICs and their public IPs). */
  readonly nics = new Map<string, any>()
  readonly publicIps = new Map<string, any>()
  /** Each VM's SSH host key line (`ssh-ed25519 <base64>`), by lower-cased VM name. */
  readonly hostKeys = new Map<string, string>()
  private readonly upAt = new Map<string, number>()
  private readonly serialLogReads = new Map<string, number>()
  private readonly sas = new Map<string, string>()
  private ipSeq = 0
  faults: FakeArmFaults = {}
  private readonly ops = new Map<string, Operation>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private constructor (private readonly server: Server, readonly url: string, private readonly opts: FakeArmOptions) {}

  static async start (opts: FakeArmOptions): Promise<FakeArm> {
    let self: FakeArm | undefined
    const server = createServer({ key: opts.tls.keyPem, cert: opts.tls.certPem }, (req, res) => { void self?.handle(req, res) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    self = new FakeArm(server, `https://127.0.0.1:${port}`, opts)
    return self
  }

  async close (): Promise<void> {
    for (const t of this.timers) clearTimeout(t)
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => { this.server.close(() => { resolve() }) })
  }

  private later (ms: number, fn: () => void): void {
    const t = setTimeout(() => { this.timers.delete(t); fn() }, ms)
    this.timers.add(t)
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    const [path = '', query = ''] = (req.url ?? '').split('?')
    const method = req.method ?? 'GET'
    const authorized = req.headers.authorization === `Bearer ${FAKE_ARM_TOKEN}`
    let body: any
    try { body = raw === '' ? undefined : JSON.parse(raw) } catch { body = raw }
    this.requests.push({ method, path, query, body, authorized })
    const send = (status: number, json?: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': randomUUID(), ...headers })
      res.end(json === undefined ? '' : JSON.stringify(json))
    }
    const armError = (status: number, code: string, message: string): void => { send(status, { error: { code, message } }) }

    // The serial log blob: storage, not ARM: authorized by the SAS signature alone.
    let m = /^\/bootdiagnostics-([a-z0-9-]+)\/([^/]+)\.serialconsole\.log$/.exec(path)
    if (m !== null && method === 'GET') {
      const sig = new URLSearchParams(query).get('sig') ?? ''
      const vmKey = this.sas.get(sig)
      if (vmKey === undefined || vmKey !== m[2] || req.headers.authorization !== undefined) {
        res.writeHead(403, { 'content-type': 'application/xml' })
        res.end('<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code></Error>')
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'x-ms-blob-type': 'AppendBlob' })
      res.end(this.serialLog(vmKey))
      return
    }
    if (!authorized) { armError(401, 'AuthenticationFailed', 'missing or bad bearer token'); return }

    m = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/(networkInterfaces|publicIPAddresses)\/([^/]+)$/i.exec(path)
    if (m !== null) {
      if (method !== 'GET') { armError(405, 'MethodNotAllowed', method); return }
      const store = (m[1] as string).toLowerCase() === 'networkinterfaces' ? this.nics : this.publicIps
      const found = store.get((m[2] as string).toLowerCase())
      if (found === undefined) { armError(404, 'ResourceNotFound', `The Resource 'Microsoft.Network/${m[1] as string}/${m[2] as string}' was not found.`); return }
      send(200, found)
      return
    }
    m = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Compute\/virtualMachines\/([^/]+)\/retrieveBootDiagnosticsData$/i.exec(path)
    if (m !== null) {
      if (method !== 'POST') { armError(405, 'MethodNotAllowed', method); return }
      const vmKey = (m[1] as string).toLowerCase()
      const vm = this.vms.get(vmKey)
      if (vm === undefined) { armError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/virtualMachines/${m[1] as string}' was not found.`); return }
      if (vm.properties.diagnosticsProfile?.bootDiagnostics?.enabled !== true) { armError(409, 'OperationNotAllowed', 'Boot diagnostics are not enabled for this VM.'); return }
      const sig = randomBytes(24).toString('base64url')
      this.sas.set(sig, vmKey)
      const sas = `sv=2021-08-06&sr=b&sp=r&se=${encodeURIComponent(new Date(Date.now() + 600_000).toISOString())}&sig=${sig}`
      send(200, {
        consoleScreenshotBlobUri: `${this.url}/bootdiagnostics-${vmKey}/${vmKey}.screenshot.bmp?${sas}`,
        serialConsoleLogBlobUri: `${this.url}/bootdiagnostics-${vmKey}/${vmKey}.serialconsole.log?${sas}`
      })
      return
    }

    m = /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.Compute\/locations\/([^/]+)\/operations\/([^/]+)$/i.exec(path)
    if (m !== null && method === 'GET') {
      const op = this.ops.get(m[3] as string)
      if (op === undefined) { armError(404, 'NotFound', 'no such operation'); return }
      send(200, { name: op.id, status: op.status, startTime: new Date().toISOString(), ...(op.error !== undefined ? { error: op.error } : {}) })
      return
    }
    m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines(?:\/([^/]+))?$/i.exec(path)
    if (m === null) { armError(404, 'InvalidResourceType', `no route for ${method} ${path}`); return }
    const [, sub, rg, name] = m as unknown as [string, string, string, string | undefined]
    const base = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines`
    if (name === undefined) {
      if (method !== 'GET') { armError(405, 'MethodNotAllowed', method); return }
      send(200, { value: [...this.vms.values()].map(view) })
      return
    }
    const key = name.toLowerCase()
    const existing = this.vms.get(key)
    const opUrl = (op: Operation, location: string): string =>
      `${this.url}/subscriptions/${sub}/providers/Microsoft.Compute/locations/${location}/operations/${op.id}?api-version=2024-07-01`

    if (method === 'GET') {
      if (existing === undefined) { armError(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/virtualMachines/${name}' under resource group '${rg}' was not found.`); return }
      send(200, view(existing))
      return
    }
    if (method === 'PUT') {
      if (req.headers['if-none-match'] === '*' && existing !== undefined) { armError(412, 'PreconditionFailed', 'the VM already exists'); return }
      if (this.faults.create === 'reject') { armError(409, 'SkuNotAvailable', 'The requested size is not available in this location (fake).'); return }
      const vm = {
        id: `${base}/${name}`,
        name,
        type: 'Microsoft.Compute/virtualMachines',
        location: body?.location,
        tags: body?.tags ?? {},
        properties: { ...body?.properties, vmId: randomUUID(), provisioningState: 'Creating' }
      }
      this.vms.set(key, vm)
      this.attachNetwork(vm, sub, rg)
      const op: Operation = { id: randomUUID(), status: 'InProgress', vm: key }
      this.ops.set(op.id, op)
      const fault = this.faults.create
      if (fault !== 'stall') {
        this.later(this.opts.createDelayMs ?? 100, () => {
          if (op.status !== 'InProgress') return
          if (fault === 'fail') {
            op.status = 'Failed'
            op.error = { code: 'AllocationFailed', message: 'Allocation failed (fake fault).' }
            vm.properties.provisioningState = 'Failed'
          } else {
            op.status = 'Succeeded'
            vm.properties.provisioningState = 'Succeeded'
            this.upAt.set(key, Date.now())
          }
        })
      }
      send(201, view(vm), { 'azure-asyncoperation': opUrl(op, String(vm.location)) })
      return
    }
    if (method === 'DELETE') {
      if ((this.faults.deleteConflicts ?? 0) > 0) {
        this.faults.deleteConflicts = (this.faults.deleteConflicts ?? 0) - 1
        armError(409, 'Conflict', 'Another operation is in progress (fake fault).')
        return
      }
      if (existing === undefined) { send(204); return }
      for (const op of this.ops.values()) if (op.vm === key && op.status === 'InProgress') op.status = 'Canceled'
      existing.properties.provisioningState = 'Deleting'
      const op: Operation = { id: randomUUID(), status: 'InProgress', vm: key }
      this.ops.set(op.id, op)
      this.later(this.opts.deleteDelayMs ?? 50, () => { this.vms.delete(key); this.detachNetwork(existing); op.status = 'Succeeded' })
      send(202, undefined, { 'azure-asyncoperation': opUrl(op, String(existing.location)), location: opUrl(op, String(existing.location)) })
      return
    }
    armError(405, 'MethodNotAllowed', method)
  }

  /** What the Compute RP does for `networkInterfaceConfigurations`: a VM-owned NIC (+ public IP), named in the VM. */
  private attachNetwork (vm: any, sub: string, rg: string): void {
    const configs: any[] = vm.properties.networkProfile?.networkInterfaceConfigurations ?? []
    if (configs.length === 0) return
    const n = ++this.ipSeq
    const netBase = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Network`
    const refs = configs.map((cfg, i) => {
      const nicId = `${netBase}/networkInterfaces/${String(cfg.name)}`
      const ipConfigurations = (cfg.properties?.ipConfigurations ?? []).map((ipc: any, j: number) => {
        const pipCfg = ipc.properties?.publicIPAddressConfiguration
        let publicIPAddress: { id: string } | undefined
        if (pipCfg !== undefined) {
          const pipId = `${netBase}/publicIPAddresses/${String(pipCfg.name)}`
          this.publicIps.set(String(pipCfg.name).toLowerCase(), {
            id: pipId,
            name: pipCfg.name,
            type: 'Microsoft.Network/publicIPAddresses',
            location: vm.location,
            sku: { name: pipCfg.sku?.name ?? 'Standard' },
            properties: { provisioningState: 'Succeeded', ipAddress: `198.51.100.${n % 250 + 1}`, publicIPAddressVersion: 'IPv4', publicIPAllocationMethod: 'Static' }
          })
          publicIPAddress = { id: pipId }
        }
        return {
          id: `${nicId}/ipConfigurations/${String(ipc.name)}`,
          name: ipc.name,
          properties: {
            provisioningState: 'Succeeded',
            privateIPAddress: `10.0.${i}.${n % 250 + 4}`,
            privateIPAllocationMethod: 'Dynamic',
            primary: j === 0,
            subnet: ipc.properties?.subnet,
            ...(publicIPAddress !== undefined ? { publicIPAddress } : {})
          }
        }
      })
      this.nics.set(String(cfg.name).toLowerCase(), {
        id: nicId,
        name: cfg.name,
        type: 'Microsoft.Network/networkInterfaces',
        location: vm.location,
        properties: { provisioningState: 'Succeeded', primary: cfg.properties?.primary === true, ipConfigurations, virtualMachine: { id: vm.id } }
      })
      return { id: nicId, properties: { primary: cfg.properties?.primary === true, deleteOption: cfg.properties?.deleteOption ?? 'Detach' } }
    })
    vm.properties.networkProfile = { ...vm.properties.networkProfile, networkInterfaces: refs }
  }

  /** A deleted VM takes its deleteOption=Delete NICs and public IPs with it. */
  private detachNetwork (vm: any): void {
    this.upAt.delete(String(vm.name).toLowerCase())
    this.hostKeys.delete(String(vm.name).toLowerCase())
    for (const ref of vm.properties.networkProfile?.networkInterfaces ?? []) {
      if (ref.properties?.deleteOption !== 'Delete') continue
      const nicName = String(ref.id).split('/').pop()?.toLowerCase() ?? ''
      const nic = this.nics.get(nicName)
      this.nics.delete(nicName)
      for (const ipc of nic?.properties?.ipConfigurations ?? []) {
        const pip = ipc.properties?.publicIPAddress?.id
        if (typeof pip === 'string') this.publicIps.delete(pip.split('/').pop()?.toLowerCase() ?? '')
      }
    }
  }

  /**
   * A cloud-init-like serial log: the host key block only once the VM has been up serialLogDelayMs
   * and the log has been read at least once without it, so a reader is always seen polling, however
   * late a loaded machine lets its first read come.
   */
  private serialLog (vmKey: string): string {
    const reads = (this.serialLogReads.get(vmKey) ?? 0) + 1
    this.serialLogReads.set(vmKey, reads)
    const lines = [
      '[    0.000000] Linux version 6.8.0-1015-azure (buildd@lcy02-amd64-051) #17-Ubuntu SMP',
      '[    0.000000] Command line: BOOT_IMAGE=/vmlinuz-6.8.0-1015-azure root=PARTUUID=0 ro console=tty1 console=ttyS0 earlyprintk=ttyS0',
      '[    4.113456] cloud-init[612]: Cloud-init v. 24.1.3 running \'init-local\' at Mon, 01 Jan 2024 00:00:00 +0000.',
      '[    9.871234] cloud-init[801]: Cloud-init v. 24.1.3 running \'modules:config\' at Mon, 01 Jan 2024 00:00:05 +0000.'
    ]
    const up = this.upAt.get(vmKey)
    if (up !== undefined && this.faults.noHostKeys !== true && reads > 1 && Date.now() - up >= (this.opts.serialLogDelayMs ?? 150)) {
      let hostKey = this.hostKeys.get(vmKey)
      if (hostKey === undefined) {
        hostKey = ed25519HostKeyLine()
        this.hostKeys.set(vmKey, hostKey)
      }
      lines.push(
        '[   12.004321] cloud-init[901]: #############################################################',
        '[   12.004400] cloud-init[901]: -----BEGIN SSH HOST KEY FINGERPRINTS-----',
        '[   12.004500] cloud-init[901]: 256 SHA256:notarealfingerprintjustfiller root@vm (ED25519)',
        '[   12.004600] cloud-init[901]: -----END SSH HOST KEY FINGERPRINTS-----',
        '[   12.004700] cloud-init[901]: #############################################################',
        '-----BEGIN SSH HOST KEY KEYS-----',
        `${hostKey} root@${vmKey}`,
        '-----END SSH HOST KEY KEYS-----',
        '[   12.100000] cloud-init[901]: Cloud-init v. 24.1.3 finished at Mon, 01 Jan 2024 00:00:12 +0000. Datasource DataSourceAzure [seed=/dev/sr0].  Up 12.10 seconds'
      )
    }
    return lines.join('\n') + '\n'
  }
}

/** A fresh ed25519 public key as an OpenSSH line (`ssh-ed25519 <base64 wire blob>`). */
function ed25519HostKeyLine (): string {
  const raw = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string, 'base64url')
  const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b])
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')}`
}

/** What GET returns: write-only fields (customData, userData without $expand) left out, as ARM does. */
function view (vm: any): any {
  const { userData: _userData, ...properties } = vm.properties
  const osProfile = properties.osProfile === undefined ? undefined : { ...properties.osProfile, customData: undefined }
  return { ...vm, properties: { ...properties, ...(osProfile !== undefined ? { osProfile } : {}) } }
}
