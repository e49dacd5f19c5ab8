/**
 * Workload identity: the workload on a granted machine (local backend) exchanges its credential at
 * the provider's issuer and calls the requester's downstream service, which accepts the token;
 * a token for another subject or another audience, an expired one, or one signed by another key
 * is refused. The issuer's discovery document and key rotation are checked too.
 */
import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { SignJWT, generateKeyPair } from 'jose'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { userDataRef, type Ccrfp } from '../../src/market/ccrfp.js'
import { IssuerKeys, verifyWorkloadToken, WifError } from '../../src/protocols/wif-verify.js'
import type { WifRule } from '../../src/market/wif-subject.js'
import { fillWifSubject, subjectMatches } from '../../src/market/wif-subject.js'
import { startDownstream, type Downstream } from '../../scripts/downstream-service.js'
import type { CmeshNode } from '../../src/node/node.js'

const nowSecs = (): number => Math.floor(Date.now() / 1000)
const AUDIENCE = 'https://downstream.alice.test'

/** user_data: read the credential and the token URL the provider placed, exchange, call downstream. */
function workload (downstream: string): Uint8Array {
  const js = [
    "const fs = require('fs')",
    "const cred = fs.readFileSync('.cmesh/wif-credential', 'utf8').trim()",
    "const url = fs.readFileSync('.cmesh/wif-url', 'utf8').trim()",
    "fetch(url, { method: 'POST', headers: { authorization: 'Bearer ' + cred } }).then(r => r.json())",
    `  .then(t => fetch('${downstream}/work', { headers: { authorization: 'Bearer ' + t.access_token } }))`,
    "  .then(r => { fs.writeFileSync('downstream.txt', String(r.status)); process.exit(r.status === 200 ? 0 : 1) })",
    "  .catch(e => { console.error(e); process.exit(2) })"
  ].join('\n')
  return new TextEncoder().encode(`"${process.execPath}" -e "$(cat <<'JS'\n${js}\nJS\n)"\n`)
}

function rfp (userData: Uint8Array): Omit<Ccrfp, 'requester' | 'createdAtUnixSecs' | 'user_data'> & { userData: Uint8Array, wifAudience: string } {
  return {
    cpus: 1, mem: '256M', disk: '1G', network: '1G', role: 'builder', userData, wifAudience: AUDIENCE,
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 18n, durationSecs: 600, bidWindowSecs: 3 }
  }
}

describe('workload identity federation', () => {
  const mesh = new TestMesh()
  let alice: CmeshNode
  let bob: CmeshNode
  let downstream: Downstream
  let rules: WifRule[] = []
  let contractId = ''
  before(async () => {
    bob = await mesh.node({ roles: ['provider'] })
    alice = await mesh.node({ roles: ['requester'] })
    downstream = await startDownstream({ audience: AUDIENCE, rules: () => rules })
    rules = [{ issuer: bob.services.wif.issuer, subject: `actx:*:${alice.identity.did.slice(4)}:role:builder`, audience: AUDIENCE, allow: ['work'] }]
    await mesh.connect(alice, bob)
    await waitFor('Alice holds Bob\'s card', () => alice.collection.get(bob.identity.did, nowSecs()) !== undefined)
  })
  after(async () => {
    await mesh.cleanup()
    await downstream?.stop()
  })

  it('the issuer publishes an OIDC discovery document and its JWKS', async () => {
    const issuer = bob.services.wif.issuer
    const doc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json() as Record<string, any>
    assert.equal(doc.issuer, issuer)
    const jwks = await (await fetch(doc.jwks_uri)).json() as { keys: Array<Record<string, unknown>> }
    assert.equal(jwks.keys.length, 1)
    assert.equal(jwks.keys[0]?.alg, 'ES256')
    assert.equal(jwks.keys[0]?.d, undefined, 'no private part')
  })

  it('the workload exchanges its credential from inside the machine; the downstream service accepts the token', async () => {
    const made = await alice.services.requester.create(rfp(workload(downstream.url)))
    let status: any
    await waitFor('the contract is ready', async () => {
      status = await alice.services.requester.status(made.cid.toString())
      return ['ready', 'failed', 'no-bids'].includes(status.state)
    }, 60_000)
    assert.equal(status.state, 'ready', JSON.stringify(status))
    assert.equal(downstream.accepted.length, 1, `refused: ${downstream.refused.join(',')}`)
    const who = downstream.accepted[0]
    contractId = who?.grant ?? ''
    assert.equal(who?.issuer, bob.services.wif.issuer)
    assert.equal(who?.subject, fillWifSubject('actx:{ctx}:{did}:role:{role}', { ctx: contractId, did: alice.identity.did, role: 'builder' }))
    assert.ok(contractId.length > 10)
  })

  it('refuses a token for another subject, another audience, an expired one, one signed by another key, and an unknown credential', async () => {
    const keys = new IssuerKeys()
    const issuer = bob.services.wif.issuer
    const tokenFor = async (over: { requester?: string, audience?: string }): Promise<string> => {
      const files = bob.services.wif.grantFiles({ id: contractId, requester: over.requester ?? alice.identity.did, role: 'builder', audience: over.audience ?? AUDIENCE, validToUnixSecs: nowSecs() + 600 })
      const credential = new TextDecoder().decode(files[0]?.content).trim()
      const res = await fetch(new TextDecoder().decode(files[1]?.content).trim(), { method: 'POST', headers: { authorization: `Bearer ${credential}` } })
      assert.equal(res.status, 200)
      return ((await res.json()) as { access_token: string }).access_token
    }
    const check = async (token: string, nowAt?: number) => await verifyWorkloadToken(token, { rules, action: 'work', keys, audience: AUDIENCE, ...(nowAt !== undefined ? { nowSecs: nowAt } : {}) })
    const code = (c: string) => (err: unknown) => err instanceof WifError && err.code === c

    const good = await tokenFor({})
    assert.equal((await check(good)).grant, contractId)
    await assert.rejects(check(await tokenFor({ requester: bob.identity.did })), code('WIF_SUBJECT_REFUSED'))
    await assert.rejects(check(await tokenFor({ audience: 'https://someone-else.test' })), code('WIF_AUDIENCE_MISMATCH'))
    await assert.rejects(check(good, nowSecs() + 3600), code('WIF_TOKEN_EXPIRED'))
    await assert.rejects(verifyWorkloadToken(good, { rules, action: 'delete', keys, audience: AUDIENCE }), code('WIF_SUBJECT_REFUSED'))
    const other = await generateKeyPair('ES256')
    const forged = await new SignJWT({ grant: contractId }).setProtectedHeader({ alg: 'ES256', kid: 'forged' }).setIssuer(issuer)
      .setSubject(fillWifSubject('actx:{ctx}:{did}:role:{role}', { ctx: contractId, did: alice.identity.did, role: 'builder' }))
      .setAudience(AUDIENCE).setIssuedAt().setExpirationTime('5m').sign(other.privateKey)
    await assert.rejects(check(forged), code('WIF_SIGNATURE_INVALID'))
    const unknown = await fetch(`${bob.services.wif.issuer.replace(/\/wif$/, '')}/wif/token`, { method: 'POST', headers: { authorization: `Bearer ${'A'.repeat(43)}` } })
    assert.equal(unknown.status, 401)

    // Rotation: a token signed before it still verifies (the old key stays published while tokens live), and new ones use the new key.
    await bob.services.wif.rotate()
    const jwks = await (await fetch(`${issuer}/jwks`)).json() as { keys: unknown[] }
    assert.equal(jwks.keys.length, 2)
    assert.equal((await check(good)).grant, contractId)
    // A token under the new key verifies once the downstream refetches the JWKS (jose waits out a 1 s cooldown between fetches).
    const fresh = await tokenFor({})
    await waitFor('the downstream picks up the new key', async () => (await check(fresh).catch(() => undefined))?.grant === contractId, 10_000)
  })

  it('subject rules: a * segment matches one segment, nothing else is a wildcard', () => {
    assert.ok(subjectMatches('actx:*:key:z:role:r', 'actx:abc:key:z:role:r'))
    assert.ok(!subjectMatches('actx:*:key:z:role:r', 'actx:abc:key:z:role:other'))
    assert.ok(!subjectMatches('actx:*', 'actx:abc:key:z'))
    assert.ok(!subjectMatches('actx:*:key:z:role:r', 'actx::key:z:role:r'))
  })
})
