/**
 * The demo's downstream service: the thing a requester configured RBAC for. It accepts a request
 * only with a workload token its rules allow (src/protocols/wif-verify.ts): signed by the trusted
 * issuer's current JWKS, for its audience, not expired, and a subject a rule allows the action.
 * `GET /work` needs the action `work`. Binds 127.0.0.1 on a free port.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { IssuerKeys, verifyWorkloadToken, WifError, type VerifiedWorkload } from '../src/protocols/wif-verify.js'
import type { WifRule } from '../src/market/wif-subject.js'

export interface Downstream {
  url: string
  audience: string
  /** Every accepted call, newest last. */
  accepted: VerifiedWorkload[]
  /** Every refusal code, newest last. */
  refused: string[]
  stop: () => Promise<void>
}

export async function startDownstream (options: { audience: string, rules: () => Promise<WifRule[]> | WifRule[] }): Promise<Downstream> {
  const keys = new IssuerKeys()
  const accepted: VerifiedWorkload[] = []
  const refused: string[] = []
  const server: Server = createServer((req, res) => {
    void (async () => {
      const send = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
      if (req.method !== 'GET' || req.url !== '/work') return send(404, { error: 'not found' })
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1]
      if (token === undefined) { refused.push('WIF_TOKEN_MISSING'); return send(401, { error: { code: 'WIF_TOKEN_MISSING' } }) }
      try {
        const who = await verifyWorkloadToken(token, { rules: await options.rules(), action: 'work', keys, audience: options.audience })
        accepted.push(who)
        send(200, { ok: true, subject: who.subject })
      } catch (err) {
        const code = err instanceof WifError ? err.code : 'INTERNAL'
        refused.push(code)
        send(code === 'INTERNAL' ? 500 : 403, { error: { code, message: (err as Error).message } })
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    audience: options.audience,
    accepted,
    refused,
    stop: async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => { resolve() })) }
  }
}
