/**
 * A small Azure Resource Manager for tests: node:https on 127.0.0.1 with a certificate from a
 * throwaway test CA (made with openssl), serving the Microsoft.Compute virtualMachines endpoints
 * the Azure backend uses, with the ARM long-running-operation protocol the SDK polls
 * (`Azure-AsyncOperation` header → operation status InProgress → Succeeded | Failed | Canceled).
 * It checks the bearer token, logs every request, and has fault switches.
 */
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
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
}

interface Operation { id: string, status: 'InProgress' | 'Succeeded' | 'Failed' | 'Canceled', error?: { code: string, message: string }, vm: string }

export interface FakeArmOptions { tls: TestTls, createDelayMs?: number, deleteDelayMs?: number }

export class FakeArm {
  readonly requests: FakeArmRequest[] = []
  /** VMs by lower-cased name, as ARM stores them. */
  readonly vms = new Map<string, any>()
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
    if (!authorized) { armError(401, 'AuthenticationFailed', 'missing or bad bearer token'); return }

    let m = /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.Compute\/locations\/([^/]+)\/operations\/([^/]+)$/i.exec(path)
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
      this.later(this.opts.deleteDelayMs ?? 50, () => { this.vms.delete(key); op.status = 'Succeeded' })
      send(202, undefined, { 'azure-asyncoperation': opUrl(op, String(existing.location)), location: opUrl(op, String(existing.location)) })
      return
    }
    armError(405, 'MethodNotAllowed', method)
  }
}

/** What GET returns: write-only fields (customData, userData without $expand) left out, as ARM does. */
function view (vm: any): any {
  const { userData: _userData, ...properties } = vm.properties
  const osProfile = properties.osProfile === undefined ? undefined : { ...properties.osProfile, customData: undefined }
  return { ...vm, properties: { ...properties, ...(osProfile !== undefined ? { osProfile } : {}) } }
}
