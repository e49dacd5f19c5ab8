/**
 * A local stand-in for the few Compute Engine REST endpoints GcpBackend calls, served over plain
 * HTTP on 127.0.0.1 so the real `@google-cloud/compute` client (REST fallback) runs against it:
 *
 *   POST   /compute/v1/projects/{p}/zones/{z}/instances                      instances.insert
 *   GET    /compute/v1/projects/{p}/zones/{z}/instances/{i}                  instances.get
 *   DELETE /compute/v1/projects/{p}/zones/{z}/instances/{i}                  instances.delete
 *   GET    /compute/v1/projects/{p}/zones/{z}/instances                      instances.list
 *   GET    /compute/v1/projects/{p}/aggregated/instances                     instances.aggregatedList
 *   GET    /compute/v1/projects/{p}/zones/{z}/instances/{i}/getGuestAttributes?queryPath=…
 *   GET    /compute/v1/projects/{p}/zones/{z}/operations/{o}                 zoneOperations.get
 *   POST   /compute/v1/projects/{p}/zones/{z}/operations/{o}/wait            zoneOperations.wait
 *
 * (Paths and verbs from the `google.api.http` options in the SDK's protos.json; the client appends
 * `$alt=json;enum-encoding=int` and sends the API key given in `clientOptions()` as X-Goog-Api-Key,
 * which the fake requires.) State is in memory; operations turn DONE after `opDelayMs`; `wait`
 * holds up to `waitHoldMs` like the real one holds up to ~2 minutes. Every request is logged.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import ssh2 from 'ssh2'

export const FAKE_GCE_API_KEY = 'fake-gce-api-key'

export interface FakeGceRequest {
  method: string
  path: string
  query: Record<string, string>
  body: any
}

export interface FakeGceInstance {
  project: string
  zone: string
  resource: Record<string, any>
  /** Host key published through guest attributes (`hostkeys/ssh-ed25519`), once the instance runs. */
  hostKey: { type: string, base64: string }
  hostKeyPublished: boolean
}

interface FakeOperation {
  project: string
  zone: string
  resource: Record<string, any>
  doneAt: number
  stalled: boolean
  error?: { code: string, message: string }
  onDone?: () => void
  finished: boolean
}

export interface FakeGceFaults {
  /** The next insert's operation ends DONE with this error; the half-made instance stays behind (status TERMINATED). */
  failNextInsert?: { code: string, message: string }
  /** Insert operations never become DONE (the instance stays PROVISIONING) while set. */
  stallInserts?: boolean
  /** The next N delete calls answer HTTP 503. */
  failDeletes?: number
}

export class FakeGce {
  readonly requests: FakeGceRequest[] = []
  readonly instances = new Map<string, FakeGceInstance>()
  readonly faults: FakeGceFaults = {}
  opDelayMs: number
  waitHoldMs: number
  /** Guest attributes appear this long after the instance is RUNNING. */
  hostKeyDelayMs: number
  private readonly operations = new Map<string, FakeOperation>()
  private server?: Server
  private ipSeq = 10
  private idSeq = 1000

  constructor (options: { opDelayMs?: number, waitHoldMs?: number, hostKeyDelayMs?: number } = {}) {
    this.opDelayMs = options.opDelayMs ?? 50
    this.waitHoldMs = options.waitHoldMs ?? 100
    this.hostKeyDelayMs = options.hostKeyDelayMs ?? 30
  }

  async start (): Promise<void> {
    this.server = createServer((req, res) => { void this.handle(req, res) })
    await new Promise<void>((resolve) => { this.server?.listen(0, '127.0.0.1', resolve) })
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }

  get port (): number {
    return (this.server?.address() as AddressInfo).port
  }

  /** What GcpBackend's `clientOptions` should be to reach this server. */
  clientOptions (): { apiEndpoint: string, port: number, protocol: string, fallback: boolean, apiKey: string } {
    return { apiEndpoint: '127.0.0.1', port: this.port, protocol: 'http', fallback: true, apiKey: FAKE_GCE_API_KEY }
  }

  requestsTo (method: string, pathPattern: RegExp): FakeGceRequest[] {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path))
  }

  instance (zone: string, name: string, project?: string): FakeGceInstance | undefined {
    for (const inst of this.instances.values()) {
      if (inst.zone === zone && inst.resource.name === name && (project === undefined || inst.project === project)) return inst
    }
    return undefined
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const method = req.method ?? 'GET'
    const entry: FakeGceRequest = { method, path: url.pathname, query: Object.fromEntries(url.searchParams), body: undefined }
    this.requests.push(entry) // in arrival order
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    let body: any
    try { body = text === '' ? undefined : JSON.parse(text) } catch { body = text }
    entry.body = body
    if (req.headers['x-goog-api-key'] !== FAKE_GCE_API_KEY) { send(res, 401, apiError(401, 'Request is missing required authentication credential.', 'required')); return }
    try {
      await this.route(method, url, body, req, res)
    } catch (err) {
      send(res, 500, apiError(500, (err as Error).message, 'backendError'))
    }
  }

  private async route (method: string, url: URL, body: any, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const p = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent)
    // ['compute','v1','projects',P, ...]
    if (p[0] !== 'compute' || p[1] !== 'v1' || p[2] !== 'projects' || p[3] === undefined) { send(res, 404, apiError(404, `no route ${url.pathname}`, 'notFound')); return }
    const project = p[3]
    const rest = p.slice(4)
    if (method === 'GET' && rest.length === 2 && rest[0] === 'aggregated' && rest[1] === 'instances') { this.aggregatedList(project, url, res); return }
    if (rest[0] !== 'zones' || rest[1] === undefined) { send(res, 404, apiError(404, `no route ${url.pathname}`, 'notFound')); return }
    const zone = rest[1]
    const tail = rest.slice(2)
    if (tail[0] === 'instances') {
      if (tail.length === 1 && method === 'POST') { this.insert(project, zone, body, res); return }
      if (tail.length === 1 && method === 'GET') { this.list(project, zone, url, res); return }
      const name = tail[1] ?? ''
      if (tail.length === 2 && method === 'GET') { this.get(project, zone, name, res); return }
      if (tail.length === 2 && method === 'DELETE') { this.delete(project, zone, name, res); return }
      if (tail.length === 3 && tail[2] === 'getGuestAttributes' && method === 'GET') { this.guestAttributes(project, zone, name, url, res); return }
    }
    if (tail[0] === 'operations' && tail[1] !== undefined) {
      const op = this.operations.get(tail[1])
      if (op === undefined || op.project !== project || op.zone !== zone) { send(res, 404, apiError(404, `The resource 'projects/${project}/zones/${zone}/operations/${tail[1]}' was not found`, 'notFound')); return }
      if (tail.length === 2 && method === 'GET') { send(res, 200, this.settle(op)); return }
      if (tail.length === 3 && tail[2] === 'wait' && method === 'POST') { await this.wait(op, req); send(res, 200, this.settle(op)); return }
    }
    send(res, 404, apiError(404, `no route ${method} ${url.pathname}`, 'notFound'))
  }

  private key (project: string, zone: string, name: string): string {
    return `${project}/${zone}/${name}`
  }

  private selfLink (project: string, zone: string, ...more: string[]): string {
    return `http://127.0.0.1:${this.port}/compute/v1/projects/${project}/zones/${zone}${more.length > 0 ? '/' + more.join('/') : ''}`
  }

  private insert (project: string, zone: string, body: any, res: ServerResponse): void {
    const name = body?.name
    if (typeof name !== 'string' || !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) { send(res, 400, apiError(400, `Invalid value for field 'resource.name': '${String(name)}'`, 'invalid')); return }
    for (const [k, v] of Object.entries(body.labels ?? {})) {
      if (!/^[a-z][a-z0-9_-]{0,62}$/.test(k) || typeof v !== 'string' || !/^[a-z0-9_-]{0,63}$/.test(v)) { send(res, 400, apiError(400, `Invalid label ${k}=${String(v)}`, 'invalid')); return }
    }
    const key = this.key(project, zone, name)
    if (this.instances.has(key)) { send(res, 409, apiError(409, `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`, 'alreadyExists')); return }
    const ip = `203.0.113.${this.ipSeq++}`
    const networkInterfaces = (body.networkInterfaces ?? [{}]).map((nic: any, i: number) => ({
      ...nic,
      name: `nic${i}`,
      networkIP: `10.128.0.${this.ipSeq}`,
      accessConfigs: (nic.accessConfigs ?? []).map((ac: any) => ({ ...ac, natIP: ac.type === 'ONE_TO_ONE_NAT' ? ip : undefined }))
    }))
    const resource = {
      ...body,
      kind: 'compute#instance',
      id: String(this.idSeq++),
      zone: this.selfLink(project, zone),
      selfLink: this.selfLink(project, zone, 'instances', name),
      machineType: this.selfLink(project, zone, String(body.machineType ?? '').replace(/^.*machineTypes\//, 'machineTypes/')),
      status: 'PROVISIONING',
      networkInterfaces
    }
    const pub = ssh2.utils.generateKeyPairSync('ed25519').public.trim().split(/\s+/)
    const inst: FakeGceInstance = { project, zone, resource, hostKey: { type: pub[0] ?? '', base64: pub[1] ?? '' }, hostKeyPublished: false }
    this.instances.set(key, inst)
    const failure = this.faults.failNextInsert
    this.faults.failNextInsert = undefined
    const op = this.operation(project, zone, 'insert', resource.selfLink, this.faults.stallInserts === true, failure, () => {
      if (failure !== undefined) { resource.status = 'TERMINATED'; return }
      resource.status = 'RUNNING'
      setTimeout(() => { inst.hostKeyPublished = true }, this.hostKeyDelayMs).unref()
    })
    send(res, 200, op.resource)
  }

  private get (project: string, zone: string, name: string, res: ServerResponse): void {
    const inst = this.instances.get(this.key(project, zone, name))
    if (inst === undefined) { send(res, 404, notFound(project, zone, name)); return }
    send(res, 200, inst.resource)
  }

  private delete (project: string, zone: string, name: string, res: ServerResponse): void {
    if ((this.faults.failDeletes ?? 0) > 0) {
      this.faults.failDeletes = (this.faults.failDeletes ?? 0) - 1
      send(res, 503, apiError(503, 'The service is currently unavailable.', 'backendError'))
      return
    }
    const key = this.key(project, zone, name)
    const inst = this.instances.get(key)
    if (inst === undefined) { send(res, 404, notFound(project, zone, name)); return }
    inst.resource.status = 'STOPPING'
    const op = this.operation(project, zone, 'delete', inst.resource.selfLink, false, undefined, () => { this.instances.delete(key) })
    send(res, 200, op.resource)
  }

  private list (project: string, zone: string, url: URL, res: ServerResponse): void {
    const match = this.filter(url, res)
    if (match === undefined) return
    const items = [...this.instances.values()].filter((i) => i.project === project && i.zone === zone && match(i.resource)).map((i) => i.resource)
    send(res, 200, { kind: 'compute#instanceList', id: `projects/${project}/zones/${zone}/instances`, items, selfLink: this.selfLink(project, zone, 'instances') })
  }

  private aggregatedList (project: string, url: URL, res: ServerResponse): void {
    const match = this.filter(url, res)
    if (match === undefined) return
    const items: Record<string, any> = {}
    for (const inst of this.instances.values()) {
      if (inst.project !== project || !match(inst.resource)) continue
      const scope = `zones/${inst.zone}`
      items[scope] ??= { instances: [] }
      items[scope].instances.push(inst.resource)
    }
    send(res, 200, { kind: 'compute#instanceAggregatedList', id: `projects/${project}/aggregated/instances`, items })
  }

  private guestAttributes (project: string, zone: string, name: string, url: URL, res: ServerResponse): void {
    const inst = this.instances.get(this.key(project, zone, name))
    if (inst === undefined) { send(res, 404, notFound(project, zone, name)); return }
    const queryPath = url.searchParams.get('queryPath') ?? ''
    if (queryPath !== 'hostkeys/' || !inst.hostKeyPublished) {
      send(res, 404, apiError(404, `The resource '${queryPath}' of type 'Guest Attribute' was not found.`, 'notFound'))
      return
    }
    send(res, 200, {
      kind: 'compute#guestAttributes',
      selfLink: `${inst.resource.selfLink}/guestAttributes/hostkeys/`,
      queryPath,
      queryValue: { items: [{ namespace: 'hostkeys', key: inst.hostKey.type, value: inst.hostKey.base64 }] }
    })
  }

  /** Supports what GcpBackend sends: space-separated `labels.K = "V"` and `labels.K:*` terms, each optionally in parentheses, ANDed. */
  private filter (url: URL, res: ServerResponse): ((resource: Record<string, any>) => boolean) | undefined {
    const filter = url.searchParams.get('filter') ?? ''
    const terms: Array<(r: Record<string, any>) => boolean> = []
    const re = /\(?\s*labels\.([a-z][a-z0-9_-]*)\s*(?:(=)\s*"?([a-z0-9_-]*)"?|:\s*\*)\s*\)?/gy
    let at = 0
    const trimmed = filter.trim()
    while (at < trimmed.length) {
      re.lastIndex = at
      const m = re.exec(trimmed)
      if (m === null) { send(res, 400, apiError(400, `Invalid list filter expression '${filter}'`, 'invalid')); return undefined }
      const [, k, eq, v] = m
      terms.push(eq === undefined ? (r) => r.labels?.[k ?? ''] !== undefined : (r) => r.labels?.[k ?? ''] === v)
      at = re.lastIndex
      while (trimmed[at] === ' ') at++
    }
    return (r) => terms.every((t) => t(r))
  }

  private operation (project: string, zone: string, type: string, targetLink: string, stalled: boolean, error: FakeOperation['error'], onDone: () => void): FakeOperation {
    const name = `operation-${Date.now()}-${randomBytes(6).toString('hex')}`
    const op: FakeOperation = {
      project,
      zone,
      doneAt: Date.now() + this.opDelayMs,
      stalled,
      error,
      onDone,
      finished: false,
      resource: {
        kind: 'compute#operation',
        id: String(this.idSeq++),
        name,
        zone: this.selfLink(project, zone),
        operationType: type,
        targetLink,
        status: 'PENDING',
        progress: 0,
        insertTime: new Date().toISOString(),
        selfLink: this.selfLink(project, zone, 'operations', name)
      }
    }
    this.operations.set(name, op)
    // Effects land on time even when nobody polls, as on the real service.
    if (!stalled) setTimeout(() => { this.settle(op) }, this.opDelayMs + 1).unref()
    return op
  }

  /** Brings an operation up to date and returns its resource. */
  private settle (op: FakeOperation): Record<string, any> {
    if (op.finished) return op.resource
    if (op.stalled || Date.now() < op.doneAt) {
      op.resource.status = 'RUNNING'
      return op.resource
    }
    op.finished = true
    op.resource.status = 'DONE'
    op.resource.progress = 100
    op.resource.endTime = new Date().toISOString()
    if (op.error !== undefined) {
      op.resource.error = { errors: [op.error] }
      op.resource.httpErrorStatusCode = 503
      op.resource.httpErrorMessage = 'SERVICE UNAVAILABLE'
    }
    op.onDone?.()
    return op.resource
  }

  private async wait (op: FakeOperation, req: IncomingMessage): Promise<void> {
    const until = op.stalled ? Date.now() + this.waitHoldMs : Math.min(op.doneAt, Date.now() + this.waitHoldMs)
    const ms = Math.max(0, until - Date.now())
    if (ms === 0) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      req.socket.once('close', () => { clearTimeout(timer); resolve() })
    })
  }
}

function send (res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' })
  res.end(JSON.stringify(body))
}

function apiError (code: number, message: string, reason: string): unknown {
  return { error: { code, message, errors: [{ message, domain: 'global', reason }] } }
}

function notFound (project: string, zone: string, name: string): unknown {
  return apiError(404, `The resource 'projects/${project}/zones/${zone}/instances/${name}' was not found`, 'notFound')
}
