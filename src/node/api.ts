/**
 * The node's local HTTP API, for `cmesh cards`, `cmesh audit` and `cmesh status`: bound to a
 * loopback address only, every request carrying the bearer token from `<data>/api.json` (0600),
 * Host header checked against DNS rebinding. Read-only. Collections travel as the same signed
 * snapshot files the CLI reads, so the CLI verifies every record itself rather than trusting us.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { join } from 'node:path'
import { readFile, unlink } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { writeFileAtomic } from './atomic-file.js'
import { NodeError } from './errors.js'

export const API_FILE = 'api.json'

export interface ApiRoutes {
  [path: string]: () => { type: 'json', body: unknown } | { type: 'cbor', body: Uint8Array }
}

export interface ApiEndpoint {
  url: string
  token: string
}

export class ApiServer {
  private server: Server | undefined
  private readonly token = randomBytes(32).toString('hex')
  private endpoint: ApiEndpoint | undefined

  constructor (private readonly init: { host: string, port: number, dataDir: string, routes: ApiRoutes }) {}

  get url (): string | undefined {
    return this.endpoint?.url
  }

  async start (): Promise<ApiEndpoint> {
    const server = createServer((req, res) => this.serve(req, res))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port, this.init.host, () => resolve())
    })
    this.server = server
    const { port } = server.address() as AddressInfo
    const host = this.init.host.includes(':') ? `[${this.init.host}]` : this.init.host
    this.endpoint = { url: `http://${host}:${port}`, token: this.token }
    await writeFileAtomic(join(this.init.dataDir, API_FILE), new TextEncoder().encode(JSON.stringify(this.endpoint) + '\n'), 0o600)
    return this.endpoint
  }

  async stop (): Promise<void> {
    await unlink(join(this.init.dataDir, API_FILE)).catch(() => {})
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private serve (req: IncomingMessage, res: ServerResponse): void {
    const fail = (status: number, code: string) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: code }))
    }
    const port = (this.server?.address() as AddressInfo | undefined)?.port
    const hostOk = req.headers.host === `127.0.0.1:${port}` || req.headers.host === `localhost:${port}` || req.headers.host === `[::1]:${port}`
    if (!hostOk) return fail(421, 'BAD_HOST')
    const given = Buffer.from((req.headers.authorization ?? '').replace(/^Bearer /, ''))
    const expected = Buffer.from(this.token)
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return fail(401, 'UNAUTHORIZED')
    if (req.method !== 'GET') return fail(405, 'METHOD_NOT_ALLOWED')
    const route = this.init.routes[(req.url ?? '').split('?')[0] ?? '']
    if (route === undefined) return fail(404, 'NOT_FOUND')
    try {
      const out = route()
      if (out.type === 'cbor') res.writeHead(200, { 'content-type': 'application/cbor' }).end(out.body)
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out.body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
    } catch {
      fail(500, 'INTERNAL')
    }
  }
}

/** Client side: finds the running node through `<data>/api.json` and GETs a path. */
export async function apiGet (dataDir: string, path: string): Promise<Response> {
  let endpoint: ApiEndpoint
  try {
    endpoint = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8'))
  } catch {
    throw new NodeError('NODE_NOT_RUNNING', `no running node found for data dir ${dataDir} (start one with \`cmesh start --data ${dataDir}\`)`)
  }
  let res: Response
  try {
    res = await fetch(endpoint.url + path, { headers: { authorization: `Bearer ${endpoint.token}` }, signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    throw new NodeError('NODE_NOT_RUNNING', `the node at ${endpoint.url} does not answer (${(err as Error).message}); is it still running?`)
  }
  if (!res.ok) throw new NodeError('NODE_API_ERROR', `node API ${path} answered ${res.status}`)
  return res
}
