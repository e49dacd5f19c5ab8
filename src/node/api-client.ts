/**
 * Client side of the local API, for the CLI: the running node is found through `<data>/api.json`
 * (url and bearer token, written 0600 by ApiServer), so no port or secret is ever typed by hand.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NodeError } from './errors.js'
import { encodeApiJson } from './api-json.js'
import type { HttpMethod } from './api-router.js'

export const API_FILE = 'api.json'

export interface ApiEndpoint {
  url: string
  token: string
}

/** GETs a path from the running node. */
export async function apiGet (dataDir: string, path: string): Promise<Response> {
  return await apiRequest(dataDir, 'GET', path)
}

/** One request with an optional JSON body; a non-2xx answer throws NODE_API_ERROR. */
export async function apiRequest (dataDir: string, method: HttpMethod, path: string, body?: unknown): Promise<Response> {
  let endpoint: ApiEndpoint
  try {
    endpoint = JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8'))
    if (typeof endpoint.url !== 'string' || typeof endpoint.token !== 'string') throw new Error('malformed')
  } catch {
    throw new NodeError('NODE_NOT_RUNNING', `no running node found for data dir ${dataDir} (start one with \`cmesh start --data ${dataDir}\`)`)
  }
  const headers: Record<string, string> = { authorization: `Bearer ${endpoint.token}` }
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(endpoint.url + path, { method, headers, body: body === undefined ? undefined : encodeApiJson(body), signal: AbortSignal.timeout(10_000) })
  } catch (err) {
    throw new NodeError('NODE_NOT_RUNNING', `the node at ${endpoint.url} does not answer (${(err as Error).message}); is it still running?`)
  }
  if (res.ok) return res
  const answer = await res.json().catch(() => undefined) as { error?: unknown, message?: unknown } | undefined
  const code = typeof answer?.error === 'string' ? answer.error : undefined
  const detail = code === undefined ? '' : `: ${code}${typeof answer?.message === 'string' ? ` (${answer.message})` : ''}`
  throw new NodeError('NODE_API_ERROR', `node API ${method} ${path} answered ${res.status}${detail}`, { status: res.status, code })
}
