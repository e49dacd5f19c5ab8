/**
 * `npm run demo`: Alice, Bob and Eve as three `cmesh start` processes on 127.0.0.1, narrated, with a
 * real local chain (anvil) for payments. Bob and Eve offer machines (the embedded DEV-ONLY local
 * backend), Eve undercuts Bob; Alice vouches for Bob, denounces Eve, publishes an RFP, collects both
 * bids, refuses Eve's, accepts Bob's (the CCBA), pays it with x402 (an EIP-3009 transfer Bob settles
 * on chain), gets the receipt (the CCR), logs in with the real `ssh`, and her workload exchanges its
 * workload-identity credential with Bob's issuer and calls Alice's downstream service with the
 * token. Bob heartbeats the contract; Alice terminates it and the login stops working.
 *
 * Everything lives in a temporary directory that is removed at the end; anvil, the nodes and the
 * downstream services are stopped on success, on error and on Ctrl-C.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { getAddress, type Address, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { startLocalChain, TOKEN_ABI, type LocalChain } from './chain/local-chain.js'
import { startDownstream, type Downstream } from './downstream-service.js'
import { loadWifRules, wifRulesPath } from '../src/node/wif-rules.js'
import { apiRequest } from '../src/node/api-client.js'
import { decodeRecord } from '../src/market/record.js'
import { CcrType } from '../src/market/ccr.js'
import { fromHex } from '../src/market/bytes.js'

const bin = fileURLToPath(new URL('../dist/src/node/bin.js', import.meta.url))
// After Ctrl-C the story stops being told while everything is stopped.
let interrupted = false
const say = (text: string): void => { if (!interrupted) process.stdout.write(`\n\x1b[1m▸ ${text}\x1b[0m\n`) }
const show = (text: string): void => { if (!interrupted) process.stdout.write(text.split('\n').map((l) => `    ${l}`).join('\n') + '\n') }

const AUDIENCE = 'https://build-cache.alice.example'
const OTHER_AUDIENCE = 'https://billing.carol.example'
const ROLE = 'builder'
const HEARTBEAT_SECS = 2
const STOP_GRACE_MS = 10_000

interface Node { name: string, dir: string, child: ChildProcess, out: () => string }

async function waitUntil (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** Runs the `cmesh` CLI (asynchronously, so Ctrl-C is handled while it runs). */
async function cmesh (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

/** `cmesh … --json`, parsed; fails loudly with the CLI's own message. */
async function cmeshJson<T = any> (args: string[]): Promise<T> {
  const r = await cmesh([...args, '--json'])
  if (r.code !== 0) throw new Error(`cmesh ${args.join(' ')} failed: ${r.stderr.trim()}`)
  return JSON.parse(r.stdout) as T
}

/** Runs a local command (the real `ssh`), asynchronously, with a deadline. */
async function run (cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

const units = (n: bigint, decimals = 6): string => {
  const scale = 10n ** BigInt(decimals)
  const sign = n < 0n ? '-' : ''
  const abs = n < 0n ? -n : n
  return `${sign}${abs / scale}.${(abs % scale).toString().padStart(decimals, '0')}`
}

/** user_data: a note only Alice knows, then the workload: exchange the credential Bob's issuer placed
 * in the machine's home for a token, and call Alice's downstream service without it, with it, and
 * (the same token) a service for another audience. It reports what happened in workload.txt and
 * always exits 0: the demo judges the outcome, not the provisioning. */
function userData (secret: string, downstream: string, other: string): string {
  const js = [
    "const fs = require('fs')",
    'const log = []',
    "const call = async (label, url, token) => { const r = await fetch(url, token === undefined ? {} : { headers: { authorization: 'Bearer ' + token } }); log.push(label + ': HTTP ' + r.status + ' ' + (await r.text())) }",
    ';(async () => {',
    "  const cred = fs.readFileSync('.cmesh/wif-credential', 'utf8').trim()",
    "  const url = fs.readFileSync('.cmesh/wif-url', 'utf8').trim()",
    "  const r = await fetch(url, { method: 'POST', headers: { authorization: 'Bearer ' + cred } })",
    '  const t = await r.json()',
    "  const claims = JSON.parse(Buffer.from(t.access_token.split('.')[1], 'base64url').toString())",
    "  log.push('exchange at ' + url + ': HTTP ' + r.status + ', token for ' + claims.aud + ', sub ' + claims.sub + ', expires in ' + t.expires_in + ' s')",
    `  await call('GET ${downstream}/work without a token', '${downstream}/work')`,
    `  await call('GET ${downstream}/work with the token', '${downstream}/work', t.access_token)`,
    `  await call('GET ${other}/work with the same token', '${other}/work', t.access_token)`,
    "})().catch((e) => log.push('workload failed: ' + e.message)).finally(() => fs.writeFileSync('workload.txt', log.join('\\n') + '\\n'))"
  ].join('\n')
  return [
    `echo "${secret}" > note.txt`,
    'uname -a > machine.txt',
    `"${process.execPath}" -e "$(cat <<'JS'\n${js}\nJS\n)" || true`,
    ''
  ].join('\n')
}

async function main (): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v ssh']).status !== 0) throw new Error('the demo logs in with OpenSSH: install openssh-client')
  const root = await mkdtemp(join(tmpdir(), 'cmesh-demo-'))
  const nodes: Node[] = []
  const services: Downstream[] = []
  let chain: LocalChain | undefined
  let cleaning: Promise<void> | undefined
  const cleanup = async (): Promise<void> => {
    cleaning ??= (async () => {
      for (const n of [...nodes].reverse()) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGTERM')
      await Promise.all(nodes.map(async (n) => await new Promise((resolve) => {
        if (n.child.exitCode !== null || n.child.signalCode !== null) return resolve(null)
        const force = setTimeout(() => n.child.kill('SIGKILL'), STOP_GRACE_MS)
        n.child.once('exit', () => { clearTimeout(force); resolve(null) })
      })))
      await Promise.all(services.map(async (s) => await s.stop().catch(() => {})))
      await chain?.stop()
      await rm(root, { recursive: true, force: true })
    })()
    await cleaning
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = true
    process.stderr.write(`\ndemo: ${signal}: stopping everything\n`)
    cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const start = async (name: string, config: Record<string, unknown>, args: string[] = []): Promise<Node> => {
    const dir = join(root, name)
    await writeFile(join(root, `${name}.json`), JSON.stringify({ dataDir: dir, ...config }))
    const child = spawn(process.execPath, [bin, 'start', '--config', join(root, `${name}.json`), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CMESH_LOG: 'warn' } })
    let out = ''
    let err = ''
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { err = (err + d).slice(-4000) })
    const node = { name, dir, child, out: () => out }
    nodes.push(node)
    await waitUntil(`${name} to start`, () => {
      if (child.exitCode !== null) throw new Error(`${name} exited at start: ${err.trim()}`)
      return out.includes('(Ctrl-C stops)')
    })
    return node
  }
  const status = async (node: Node): Promise<any> => {
    const r = await cmesh(['status', '--data', node.dir])
    return r.code === 0 ? JSON.parse(r.stdout) : undefined
  }
  const evmAddress = async (node: Node): Promise<Address> =>
    privateKeyToAccount((await readFile(join(node.dir, 'evm.key'), 'utf8')).trim() as Hex).address

  try {
    const network = `demo${randomBytes(3).toString('hex')}`
    say('A local EVM chain (anvil) with an EIP-3009 test token: what payments settle on in this demo.')
    chain = await startLocalChain()
    const token = chain.token
    show(`chain ${chain.network} at ${chain.rpcUrl}\ntoken ${token.symbol} (${token.name}, ${token.decimals} decimals) at ${token.address}`)
    const payment = { chainId: chain.chainId, rpcUrl: chain.rpcUrl, asset: token.address, assetName: token.name, assetVersion: token.version, windowSecs: 60 }
    const balance = async (a: Address): Promise<bigint> => await (chain as LocalChain).balanceOf(a)

    // The DHT is on (as by default): Alice reaches Eve, whom she is not connected to, by peer routing.
    const base = { network, gossipHeartbeatMs: 200, syncIntervalSecs: 2, payment, lifecycle: { heartbeatSecs: HEARTBEAT_SECS } }
    // Rates in the token's atomic units (6 decimals): 0.50 tUSDC a vCPU-hour, 0.10 a GiB of memory, 0.01 a GiB of disk.
    const localBackend = { name: 'local', kind: 'local', regions: ['local'], maxCpu: 2, maxMemoryMiB: 2048, maxDiskGiB: 10 }
    const bobCard = { schemesSupported: ['vm.ssh'], capacityPerSecond: 1, feePerPartialWei: '1000', backends: [localBackend], rates: [{ backend: 'local', cpuHourWei: '500000', memoryGiBHourWei: '100000', diskGiBHourWei: '10000' }] }
    say('Bob runs a provider node: his card offers builder machines from the embedded local backend (DEV-ONLY), priced in tUSDC.')
    const bob = await start('bob', { ...base, roles: ['provider'], card: bobCard })
    const bobAddr = /listen:\s+(\S+)/.exec(bob.out())?.[1] as string
    show(bob.out().split('\n').filter((l) => !/^\s+(join it|see it|listen):/.test(l)).join('\n').trim())
    // His public HTTP server (x402 payments, the workload identity issuer) and his EVM address, from his banner.
    const bobHttp = /^\s+http:\s+(\S+)/m.exec(bob.out())?.[1]
    const bobPaysText = /EVM address (0x[0-9a-fA-F]{40})/.exec(bob.out())?.[1]
    if (bobHttp === undefined || bobPaysText === undefined) throw new Error(`Bob's banner names no public HTTP URL or EVM address:\n${bob.out()}`)
    const bobPays = getAddress(bobPaysText)
    if (bobPays !== await evmAddress(bob)) throw new Error('Bob\'s banner and his evm.key disagree')
    // Bob's own facilitator settles the payments he is owed: he sends the transaction, so he needs ether for gas.
    await chain.publicClient.request({ method: 'anvil_setBalance' as any, params: [bobPays, '0x8ac7230489e80000'] as any })
    show(`Bob's EVM address (his pay-to, and the facilitator's signer) is funded with 10 ETH for gas`)

    say('Eve runs one too, and undercuts Bob: her whole contract costs a few millionths of a tUSDC.')
    const eve = await start('eve', { ...base, roles: ['provider'], card: { ...bobCard, feePerPartialWei: '1', rates: [{ backend: 'local', cpuHourWei: '5', memoryGiBHourWei: '1', diskGiBHourWei: '1' }] } }, ['--bootstrap', bobAddr])

    say('Alice joins as a requester; she holds 10 tUSDC.')
    const alice = await start('alice', { ...base, roles: ['requester'] }, ['--bootstrap', bobAddr])
    const alicePays = await evmAddress(alice)
    await chain.mint(alicePays, 10_000_000n)
    await waitUntil('Alice to hold both cards', async () => (await status(alice))?.collection?.shown === 2)
    show((await cmesh(['cards', '--data', alice.dir])).stdout.trim())
    const bobDid = (await status(bob)).did as string
    const eveDid = (await status(eve)).did as string
    const aliceDid = (await status(alice)).did as string
    const cards = await cmeshJson<Array<{ card: { providerId: string, payment?: { network: string, asset: string, payTo: string } } }>>(['cards', '--data', alice.dir])
    const bobTerms = cards.find((c) => c.card.providerId === bobDid)?.card.payment
    if (bobTerms === undefined || getAddress(bobTerms.payTo) !== bobPays) throw new Error(`Bob's card does not name his pay-to address: ${JSON.stringify(bobTerms)}`)
    show(`Bob's card: paid on ${bobTerms.network} in ${bobTerms.asset}, to ${bobTerms.payTo}`)

    say('Alice vouches for Bob and denounces Eve (signed records her policy engine reads).')
    show((await cmesh(['trust', 'vouch', bobDid, '--data', alice.dir, '--note', 'builds our images'])).stdout.trim())
    show((await cmesh(['trust', 'denounce', eveDid, '--data', alice.dir, '--note', 'snoops'])).stdout.trim())

    say(`Alice runs a downstream service (her build cache, audience ${AUDIENCE}); Carol runs another (${OTHER_AUDIENCE}).`)
    const rules = async (): Promise<any[]> => await loadWifRules(wifRulesPath(alice.dir))
    const downstream = await startDownstream({ audience: AUDIENCE, rules })
    services.push(downstream)
    const other = await startDownstream({ audience: OTHER_AUDIENCE, rules })
    services.push(other)
    // Bob's issuer, from the OIDC discovery document on his public HTTP server (the URL his banner printed).
    const discovery = await (await fetch(`${bobHttp}/wif/.well-known/openid-configuration`)).json() as { issuer: string, jwks_uri: string }
    show(`Bob's workload identity issuer: ${discovery.issuer} (keys at ${discovery.jwks_uri})`)
    const subjectRule = `actx:*:${aliceDid.slice('did:'.length)}:role:${ROLE}`
    show(`$ cmesh trust wif add --issuer ${discovery.issuer} --subject '${subjectRule}' --audience ${AUDIENCE} --allow work`)
    const added = await cmesh(['trust', 'wif', 'add', '--data', alice.dir, '--issuer', discovery.issuer, '--subject', subjectRule, '--audience', AUDIENCE, '--allow', 'work'])
    if (added.code !== 0) throw new Error(`cmesh trust wif add failed: ${added.stderr}`)
    show(added.stdout.trim())

    const [aliceBefore, bobBefore] = [await balance(alicePays), await balance(bobPays)]
    show(`balances before: Alice ${units(aliceBefore)} ${token.symbol}, Bob ${units(bobBefore)} ${token.symbol}`)

    const secret = `only-alice-knows-${randomBytes(8).toString('hex')}`
    await writeFile(join(root, 'user-data.sh'), userData(secret, downstream.url, other.url))
    say('Alice asks for a machine (RFP). It is public; her user_data is not: only its digest is published, and the script travels sealed to the winner. Her machine\'s workload tokens are for her build cache\'s audience.')
    const fromBlock = await chain.publicClient.getBlockNumber()
    const rfp = await cmesh(['rfp', 'create', '--cpus', '1', '--mem', '512M', '--disk', '1G', '--role', ROLE, '--user-data', join(root, 'user-data.sh'),
      '--wif-audience', AUDIENCE, '--max-price', '2000000', '--window', '5', '--wait', '--data', alice.dir])
    show(rfp.stdout.trim())
    if (rfp.code !== 0) throw new Error(`the RFP did not end with a receipt: ${rfp.stderr}${rfp.stdout}`)
    const id = /^rfp (\S+):/.exec(rfp.stdout)?.[1] as string
    const st = await cmeshJson(['rfp', 'status', id, '--data', alice.dir])
    const eveRefused = (st.refused as Array<{ provider: string, code: string }>).find((r) => r.provider === eveDid)
    if (st.chosen?.provider !== bobDid || eveRefused === undefined) throw new Error(`expected Bob chosen and Eve refused: ${JSON.stringify(st)}`)
    for (const step of ['paying', 'paid', 'ready']) if (!(st.progress as string[]).includes(step)) throw new Error(`no '${step}' in the progress: ${(st.progress as string[]).join(', ')}`)
    say(`Both bid; Eve bid cheaper, but a denouncement always wins (${eveRefused.code}). Alice accepted Bob's bid with her signed CCBA (it seals her user_data to Bob and names her tokens' audience), and Bob answered where to pay.`)
    // Bob names the contract by the CID of the accept as first signed; once paid, Alice re-signs the same
    // record (same at:// address) to name her payment record (CCBAP), and both sides keep that version.
    const bobContract = (await cmeshJson<Array<{ id: string, counterparty?: string }>>(['contracts', '--data', bob.dir])).find((c) => c.counterparty === aliceDid)
    const aliceView = await cmeshJson(['contracts', 'show', id, '--data', alice.dir])
    const paidCcba = aliceView.ccba as string
    if (bobContract === undefined) throw new Error('Bob holds no contract with Alice')
    if (aliceView.accept !== bobContract.id) throw new Error(`Alice names the contract ${String(aliceView.accept)}, Bob ${bobContract.id}`)
    show([
      `CCBA ${bobContract.id} (Bob's name for the contract)`,
      `CCBA ${paidCcba} (the same record re-signed by Alice after paying, naming her CCBAP)`
    ].join('\n'))

    say('The x402 payment: Alice signed an EIP-3009 authorization for exactly the bid\'s cost; Bob\'s facilitator settled it on chain before provisioning.')
    const cost = BigInt(st.chosen.costWei as string)
    const transfers = await chain.publicClient.getContractEvents({ address: token.address, abi: TOKEN_ABI, eventName: 'Transfer', args: { to: bobPays }, fromBlock })
    const paid = transfers.at(-1)
    if (transfers.length !== 1 || paid === undefined) throw new Error(`expected one transfer to Bob, found ${transfers.length}`)
    const receipt = await chain.publicClient.getTransactionReceipt({ hash: paid.transactionHash })
    const recorded = st.payment as { txid: string, payer: string, network: string, amount: string } | undefined
    if (recorded === undefined || recorded.txid.toLowerCase() !== paid.transactionHash.toLowerCase()) throw new Error(`Alice's node records payment ${JSON.stringify(recorded)}, the chain shows ${paid.transactionHash}`)
    show([
      `Alice's node recorded (cmesh rfp status --json): payment ${recorded.amount} on ${recorded.network} from ${recorded.payer}, tx ${recorded.txid}`,
      `on chain: tx ${paid.transactionHash} (block ${receipt.blockNumber}, ${receipt.status}, sent by Bob ${receipt.from})`,
      `          Transfer ${units(paid.args.value as bigint)} ${token.symbol} from ${paid.args.from as string} to ${paid.args.to as string}`
    ].join('\n'))
    const [aliceAfter, bobAfter] = [await balance(alicePays), await balance(bobPays)]
    show(`balances after:  Alice ${units(aliceAfter)} ${token.symbol} (${units(aliceAfter - aliceBefore)}), Bob ${units(bobAfter)} ${token.symbol} (+${units(bobAfter - bobBefore)}); the bid cost ${units(cost)}`)
    if (aliceBefore - aliceAfter !== cost || bobAfter - bobBefore !== cost || paid.args.value !== cost || getAddress(paid.args.from as string) !== alicePays) {
      throw new Error('the payment did not move exactly the bid\'s cost from Alice to Bob')
    }
    if (receipt.from.toLowerCase() !== bobPays.toLowerCase()) throw new Error(`the settlement was sent by ${receipt.from}, not Bob`)

    say('Only then did Bob provision. His receipt (CCR) names the paid CCBA; its SSH access is sealed to Alice, who opens it (only her key can).')
    const sealed = await (await apiRequest(alice.dir, 'GET', `/v1/contracts/${id}/receipt`)).json() as { ccr: string }
    const ccr = decodeRecord(fromHex(sealed.ccr), [CcrType])
    show(`CCR ${ccr.cid.toString()} (${ccr.uri}) → CCBA ${ccr.value.ccba.cid.toString()}`)
    if (ccr.value.ccba.cid.toString() !== paidCcba) throw new Error('the CCR does not name the paid CCBA')
    const opened = await cmesh(['receipt', 'open', id, '--data', alice.dir])
    show(opened.stdout.trim())
    const sshCommand = (await cmeshJson(['receipt', 'open', id, '--data', alice.dir])).ssh as string[]
    const ssh = async (command: string): Promise<{ code: number, stdout: string, stderr: string }> =>
      await run(sshCommand[0] as string, [...sshCommand.slice(1), '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', command])

    say('Alice logs in with OpenSSH (the host key pinned from the receipt) and reads what her user_data wrote.')
    const login = await ssh('cat note.txt')
    show(`$ ${sshCommand.join(' ')} cat note.txt\n${login.stdout.trim()}`)
    if (login.stdout.trim() !== secret) throw new Error(`the login did not read Alice's note: ${login.stderr}`)

    say('Her workload, on the machine, exchanged the credential Bob\'s issuer placed in its home for a short-lived token, and called the downstream services:')
    const workload = await ssh('ls -l .cmesh; cat workload.txt')
    show(`$ ssh … 'ls -l .cmesh; cat workload.txt'\n${workload.stdout.trim()}`)
    const who = downstream.accepted[0]
    const expected = `actx:${who?.grant ?? '?'}:${aliceDid.slice('did:'.length)}:role:${ROLE}`
    if (downstream.accepted.length !== 1 || who?.subject !== expected || who.issuer !== discovery.issuer || who.grant !== bobContract.id) throw new Error(`the downstream did not accept the workload: accepted ${JSON.stringify(downstream.accepted)}, refused ${downstream.refused.join(',')}`)
    if (downstream.refused[0] !== 'WIF_TOKEN_MISSING' || other.accepted.length !== 0 || other.refused[0] === undefined) throw new Error(`expected refusals: ${downstream.refused.join(',')} / ${other.refused.join(',')}`)
    show([
      `Alice's build cache accepted: subject ${who.subject}`,
      `                              issuer ${who.issuer}, contract ${who.grant} (Bob's CCBA)`,
      `Alice's build cache refused the call without a token (${downstream.refused[0]}); Carol's service refused the same token (${other.refused[0]}): it was issued for Alice's audience only`
    ].join('\n'))

    say(`Bob heartbeats the contract every ${HEARTBEAT_SECS} s, each a signed record with the machine's usage; Alice keeps the last one.`)
    const shown = async (): Promise<any> => await cmeshJson(['contracts', 'show', id, '--data', alice.dir])
    const first = await (async () => { let v: any; await waitUntil('a heartbeat', async () => (v = await shown()).heartbeat !== undefined, 20_000); return v })()
    show(`heartbeat #${first.heartbeat.seq as number} at ${new Date((first.heartbeat.atUnixSecs as number) * 1000).toISOString()}: up ${first.heartbeat.usage.uptimeSecs as number} s; a few seconds later:`)
    await waitUntil('another heartbeat', async () => ((await shown()).heartbeat?.seq ?? 0) > first.heartbeat.seq + 1, 20_000)
    show((await cmesh(['contracts', 'show', id, '--data', alice.dir])).stdout.trim())

    say('Alice is done: she terminates the contract early. Bob ends the machine and answers with his signed termination record.')
    const ended = await cmesh(['contracts', 'terminate', id, '--data', alice.dir, '--detail', 'build finished'])
    show(`$ cmesh contracts terminate ${id} --detail 'build finished'\n${ended.stdout.trim()}`)
    if (ended.code !== 0) throw new Error(`terminate failed: ${ended.stderr}`)
    const after = await shown()
    if (after.termination?.reason !== 'REQUESTER') throw new Error(`no termination record: ${JSON.stringify(after)}`)

    say('The login no longer works:')
    const refused = await ssh('true')
    show(`$ ssh … true\nexit ${refused.code}: ${refused.stderr.trim().split('\n').at(-1) ?? ''}`)
    if (refused.code === 0) throw new Error('the login still works after the termination')

    say('Bob\'s side of it:')
    show((await cmesh(['contracts', '--data', bob.dir])).stdout.trim())
    const bobView = await cmeshJson<Array<{ id: string }>>(['contracts', '--data', bob.dir])
    if (bobView[0] !== undefined) show((await cmesh(['contracts', 'show', bobView[0].id, '--data', bob.dir])).stdout.trim())
    say('Done: Eve saw the RFP and bid, and never saw the script, the key, the machine or a token; Bob was paid exactly his price, on chain, before he provisioned.')
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await cleanup()
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`)
  process.exitCode = 1
})
