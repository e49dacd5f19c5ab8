/**
 * `npm run demo`: Alice, Bob and Eve as three `cmesh start` processes on 127.0.0.1, narrated.
 * Bob and Eve offer machines (the embedded DEV-ONLY local backend), Eve undercuts Bob; Alice vouches
 * for Bob, denounces Eve, asks for a machine, gets Bob's, opens the sealed receipt and logs in with
 * the real `ssh`. Everything lives in a temporary directory that is removed at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'

const bin = fileURLToPath(new URL('../dist/src/node/bin.js', import.meta.url))
const say = (text: string): void => { process.stdout.write(`\n\x1b[1m▸ ${text}\x1b[0m\n`) }
const show = (text: string): void => { process.stdout.write(text.split('\n').map((l) => `    ${l}`).join('\n') + '\n') }

interface Node { name: string, dir: string, child: ChildProcess, out: () => string }

async function waitUntil (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

function cmesh (args: string[]): { code: number, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' })
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr }
}

async function start (root: string, name: string, config: Record<string, unknown>, args: string[] = []): Promise<Node> {
  const dir = join(root, name)
  await writeFile(join(root, `${name}.json`), JSON.stringify({ dataDir: dir, ...config }))
  const child = spawn(process.execPath, [bin, 'start', '--config', join(root, `${name}.json`), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CMESH_LOG: 'warn' } })
  let out = ''
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr?.resume()
  await waitUntil(`${name} to start`, () => out.includes('(Ctrl-C stops)'))
  return { name, dir, child, out: () => out }
}

async function status (node: Node): Promise<any> {
  const r = cmesh(['status', '--data', node.dir])
  return r.code === 0 ? JSON.parse(r.stdout) : undefined
}

async function main (): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v ssh']).status !== 0) throw new Error('the demo logs in with OpenSSH: install openssh-client')
  const root = await mkdtemp(join(tmpdir(), 'cmesh-demo-'))
  const nodes: Node[] = []
  try {
    const network = `demo${randomBytes(3).toString('hex')}`
    // The DHT is on (as by default): Alice reaches Eve, whom she is not connected to, by peer routing.
    const base = { network, gossipHeartbeatMs: 200, syncIntervalSecs: 2 }
    say('Bob runs a provider node: his card offers builder machines from the embedded local backend (DEV-ONLY).')
    const bob = await start(root, 'bob', { ...base, roles: ['provider'] })
    nodes.push(bob)
    const bobAddr = /listen:\s+(\S+)/.exec(bob.out())?.[1] as string
    show(bob.out().split('\n').slice(0, 5).join('\n'))

    say('Eve runs one too, and undercuts Bob by a factor of a million.')
    const eve = await start(root, 'eve', { ...base, roles: ['provider'], card: { schemesSupported: ['vm.ssh'], capacityPerSecond: 1, feePerPartialWei: '1', backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 4096, maxDiskGiB: 20 }], rates: [{ backend: 'local', cpuHourWei: '1', memoryGiBHourWei: '1', diskGiBHourWei: '1' }] } }, ['--bootstrap', bobAddr])
    nodes.push(eve)

    say('Alice joins as a requester.')
    const alice = await start(root, 'alice', { ...base, roles: ['requester'] }, ['--bootstrap', bobAddr])
    nodes.push(alice)
    await waitUntil('Alice to hold both cards', async () => (await status(alice))?.collection?.shown === 2)
    show(cmesh(['cards', '--data', alice.dir]).stdout.trim())

    const bobDid = (await status(bob)).did as string
    const eveDid = (await status(eve)).did as string
    say('Alice vouches for Bob and denounces Eve (signed records her policy engine reads).')
    show(cmesh(['trust', 'vouch', bobDid, '--data', alice.dir, '--note', 'builds our images']).stdout.trim())
    show(cmesh(['trust', 'denounce', eveDid, '--data', alice.dir, '--note', 'snoops']).stdout.trim())

    const secret = `only-alice-knows-${randomBytes(8).toString('hex')}`
    await writeFile(join(root, 'user-data.sh'), `echo "${secret}" > note.txt\nuname -a > machine.txt\n`)
    say('Alice asks for a machine. Her RFP is public; her user_data is not: only its digest is published, and the script travels sealed to the winner.')
    const rfp = cmesh(['rfp', 'create', '--cpus', '1', '--mem', '512M', '--disk', '1G', '--user-data', join(root, 'user-data.sh'), '--window', '5', '--wait', '--data', alice.dir])
    show(rfp.stdout.trim())
    if (rfp.code !== 0) throw new Error(`the RFP did not end with a receipt: ${rfp.stderr}`)
    const id = /^rfp (\S+):/.exec(rfp.stdout)?.[1] as string

    say('Eve bid cheaper, but a denouncement always wins: Bob provisioned. Alice opens the sealed receipt (only her key can).')
    const opened = cmesh(['receipt', 'open', id, '--data', alice.dir])
    show(opened.stdout.trim())
    const sshCommand = JSON.parse(cmesh(['receipt', 'open', id, '--data', alice.dir, '--json']).stdout).ssh as string[]

    say('Alice logs in with OpenSSH (the host key pinned from the receipt) and reads what her user_data wrote.')
    const login = spawnSync(sshCommand[0] as string, [...sshCommand.slice(1), '-o', 'BatchMode=yes', 'cat', 'note.txt'], { encoding: 'utf8' })
    show(`$ ${sshCommand.join(' ')} cat note.txt\n${login.stdout.trim()}`)
    if (login.stdout.trim() !== secret) throw new Error(`the login did not read Alice's note: ${login.stderr}`)

    say('Bob\'s side of it:')
    show(cmesh(['contracts', '--data', bob.dir]).stdout.trim())
    say('Done: Eve saw the RFP and bid, and never saw the script, the key or the machine.')
  } finally {
    for (const n of nodes.reverse()) n.child.kill('SIGTERM')
    await Promise.all(nodes.map(async (n) => await new Promise((resolve) => { if (n.child.exitCode !== null) resolve(null); else n.child.once('exit', resolve) })))
    await rm(root, { recursive: true, force: true })
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`)
  process.exitCode = 1
})
