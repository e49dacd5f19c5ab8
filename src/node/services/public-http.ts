/**
 * The node's public HTTP server: what other parties reach over plain HTTP rather than libp2p —
 * the x402 payment endpoint (requesters pay here) and the workload identity issuer (workloads on
 * granted machines exchange credentials here). Other services add their routes before `start`.
 * Unlike the local API it has no bearer token: each route authenticates what it serves (a
 * payment, a workload credential). Bodies are JSON or form-encoded (OAuth clients send the
 * latter), at most 16 KiB; every request has a deadline.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Startable } from '@libp2p/interface'
import { ApiRouter, type HttpMethod } from '../api-router.js'
import { CmeshError } from '../../market/errors.js'
import { NodeError, startStep } from '../errors.js'
import type { NodeComponents } from '../components.js'

export const PUBLIC_MAX_BODY_BYTES = 16 * 1024
const REQUEST_TIMEOUT_MS = 30_000
const HEADERS_TIMEOUT_MS = 10_000

export interface PublicRequest {
  method: HttpMethod
  params: Record<string, string>
  headers: IncomingMessage['headers']
  /** Parsed JSON body (POST/PUT), or undefined. */
  body: unknown
  signal: AbortSignal
}

export interface PublicResponse {
  status: number
  json?: unknown
  headers?: Record<string, string>
}

export interface PublicRoute {
  method: HttpMethod
  path: string
  handle: (req: PublicRequest) => Promise<PublicResponse> | PublicResponse
}

/** A refusal a route answers with: its status, and `{error: {code, message}}` as the body. */
export class HttpRefusal extends CmeshError<string, { status: number, headers?: Record<string, string> }> {}

export class PublicHttp implements Startable {
  private server: Server | undefined
  private readonly routes: PublicRoute[] = []
  private baseUrl: string | undefined

  constructor (private readonly components: NodeComponents) {}

  /** Adds routes; only before start. */
  add (...routes: PublicRoute[]): void {
    if (this.server !== undefined) throw new Error('public HTTP routes are added before start')
    this.routes.push(...routes)
  }

  /** What bids and workloads are told (config `http.publicUrl`, else the listening address). */
  get url (): string {
    if (this.baseUrl === undefined) throw new NodeError('NODE_NOT_STARTED', 'the public HTTP server is not listening')
    return this.baseUrl
  }

  get started (): boolean {
    return this.server !== undefined
  }

  async start (): Promise<void> {
    // Nothing to serve, nothing to open: a node without payments or an issuer has no public port.
    if (this.routes.length === 0) return
    const { config } = this.components
    const router = new ApiRouter(this.routes)
    const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 5_000 }, (req, res) => { void this.serve(router, req, res) })
    await startStep('HTTP_START_FAILED', `public HTTP on ${config.http.host}:${config.http.port}`, async () => {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(config.http.port, config.http.host, () => { server.off('error', reject); resolve() })
      })
    })
    this.server = server
    const port = (server.address() as AddressInfo).port
    const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host
    this.baseUrl = (config.http.publicUrl ?? `http://${host}:${port}`).replace(/\/+$/, '')
  }

  async stop (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }

  private async serve (router: ApiRouter<PublicRoute>, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, json: unknown, headers: Record<string, string> = {}): void => {
      if (res.headersSent) return
      const body = JSON.stringify(json)
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
      res.end(body)
    }
    const refuse = (status: number, code: string, message: string, headers?: Record<string, string>): void => { send(status, { error: { code, message } }, headers) }
    const controller = new AbortController()
    res.once('close', () => { controller.abort() })
    const signal = AbortSignal.any([controller.signal, this.components.shutdown])
    try {
      const url = new URL(req.url ?? '/', 'http://public')
      const match = router.match(req.method ?? 'GET', url.pathname)
      if (match.kind === 'not-found' || match.kind === 'bad-path') return refuse(404, 'NOT_FOUND', 'no such resource')
      if (match.kind === 'method-not-allowed') return refuse(405, 'METHOD_NOT_ALLOWED', 'method not allowed', { allow: match.allow.join(', ') })
      let body: unknown
      if (req.method === 'POST' || req.method === 'PUT') body = await readJson(req)
      const out = await match.route.handle({ method: match.route.method, params: match.params, headers: req.headers, body, signal })
      send(out.status, out.json ?? {}, out.headers)
    } catch (err) {
      if (err instanceof HttpRefusal) return refuse(err.meta.status, err.code, err.message, err.meta.headers)
      if (err instanceof CmeshError) return refuse(400, err.code, err.message)
      this.components.log.warn(`public HTTP ${req.method ?? ''} ${req.url ?? ''}: ${(err as Error).message}`)
      refuse(500, 'INTERNAL', 'internal error')
    }
  }
}

async function readJson (req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? ''
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > PUBLIC_MAX_BODY_BYTES) throw new HttpRefusal('BODY_TOO_LARGE', `bodies are at most ${PUBLIC_MAX_BODY_BYTES} bytes`, { status: 413 })
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return undefined
  if (!/^application\/(json|x-www-form-urlencoded)\b/.test(type)) throw new HttpRefusal('BODY_INVALID', 'bodies are application/json or application/x-www-form-urlencoded', { status: 415 })
  const text = Buffer.concat(chunks).toString('utf8')
  if (type.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text))
  try {
    return JSON.parse(text)
  } catch {
    throw new HttpRefusal('BODY_INVALID', 'the body is not JSON', { status: 400 })
  }
}
