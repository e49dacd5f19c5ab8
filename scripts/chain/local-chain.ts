/**
 * A real local EVM chain for the payment tests and the demo: anvil (from the @foundry-rs/anvil npm
 * package) on 127.0.0.1, with the EIP-3009 test token deployed and a tryAggregate-only Multicall at
 * Multicall3's canonical address (the x402 facilitator calls it there when diagnosing a failed
 * settlement). Contracts come from the committed scripts/chain/artifacts.json; nothing is compiled
 * at run time.
 *
 * anvil never outlives this process: a normal exit kills it from a process 'exit' handler, and any
 * other death (SIGKILL, a crash, a test-runner timeout) is caught by a one-line `sh` watchdog that
 * holds a pipe from us and kills anvil when that pipe reaches EOF. Neither keeps the event loop
 * alive, so a forgotten stop() does not hang a test run.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import {
  createPublicClient, createTestClient, createWalletClient, defineChain, getAddress, http, parseAbi, toHex,
  type Abi, type Address, type Chain, type Hex, type HttpTransport, type PublicClient
} from 'viem'
import { generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from 'viem/accounts'

export const MULTICALL3_ADDRESS: Address = '0xcA11bde05977b3631167028862bE2a173976CA11'

/** The token's interface, typed for viem (the deployed ABI is in artifacts.json; a test checks they agree). */
export const TOKEN_ABI = parseAbi([
  'function name() view returns (string)',
  'function symbol() view returns (string)',
  'function decimals() view returns (uint8)',
  'function version() pure returns (string)',
  'function owner() view returns (address)',
  'function totalSupply() view returns (uint256)',
  'function balanceOf(address account) view returns (uint256)',
  'function allowance(address owner, address spender) view returns (uint256)',
  'function transfer(address to, uint256 value) returns (bool)',
  'function approve(address spender, uint256 value) returns (bool)',
  'function transferFrom(address from, address to, uint256 value) returns (bool)',
  'function mint(address to, uint256 amount)',
  'function DOMAIN_SEPARATOR() view returns (bytes32)',
  'function TRANSFER_WITH_AUTHORIZATION_TYPEHASH() view returns (bytes32)',
  'function authorizationState(address authorizer, bytes32 nonce) view returns (bool)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'event Transfer(address indexed from, address indexed to, uint256 value)',
  'event Approval(address indexed owner, address indexed spender, uint256 value)',
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)'
])

export const MULTICALL_ABI = parseAbi([
  'struct Call { address target; bytes callData; }',
  'struct Result { bool success; bytes returnData; }',
  'function tryAggregate(bool requireSuccess, Call[] calls) payable returns (Result[] returnData)'
])

/** The EIP-712 types an EIP-3009 `transferWithAuthorization` is signed over. */
export const TRANSFER_WITH_AUTHORIZATION_TYPES = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' }
  ]
} as const

export interface ContractArtifact { abi: Abi, bytecode: Hex, deployedBytecode: Hex }
export interface Artifacts {
  compiler: string
  settings: unknown
  contracts: { Eip3009Token: ContractArtifact, Multicall: ContractArtifact }
}

export const ARTIFACTS_PATH = new URL('./artifacts.json', import.meta.url)

export function loadArtifacts (): Artifacts {
  return JSON.parse(readFileSync(ARTIFACTS_PATH, 'utf8')) as Artifacts
}

// anvil's well-known development mnemonic, passed explicitly so account 0 (the deployer, and so the
// token's address) is the same on every run whatever anvil's defaults become.
const DEV_MNEMONIC = 'test test test test test test test test test test test junk'
const READY_DEADLINE_MS = 30_000
const STOP_GRACE_MS = 5_000
const PORT_ATTEMPTS = 5

export interface LocalChainOptions {
  signal?: AbortSignal
  /** Default 31337 (anvil's own default). */
  chainId?: number
  /** Progress lines and anvil's own output; never a key. */
  log?: (line: string) => void
  /** EIP-712 domain name and symbol of the token. Default 'Test USD Coin' / 'tUSDC'. */
  token?: { name?: string, symbol?: string }
}

export interface LocalAccount { privateKey: Hex, address: Address }

export interface LocalChain {
  rpcUrl: string
  chainId: number
  /** CAIP-2, as x402 names networks. */
  network: `eip155:${number}`
  chain: Chain
  token: { address: Address, name: string, symbol: string, version: '1', decimals: 6 }
  multicallAddress: Address
  /** Owner of the token (may mint); anvil's development account 0. */
  deployerKey: Hex
  /** A fresh key, funded with `fundEth` whole ETH (default 10) for gas. */
  newAccount: (fundEth?: bigint) => Promise<LocalAccount>
  /** Mints `amount` base units (6 decimals) and waits for the receipt. */
  mint: (address: Address, amount: bigint) => Promise<void>
  balanceOf: (address: Address) => Promise<bigint>
  publicClient: PublicClient<HttpTransport, Chain>
  /** Kills anvil (SIGTERM, then SIGKILL after a grace period). Idempotent. */
  stop: () => Promise<void>
}

/** Path of the native anvil binary from the platform package (not the npm `bin` wrapper, which would
 * put a node process between us and anvil and swallow our signals). */
export function anvilBinary (): string {
  const require = createRequire(import.meta.url)
  // Foundry names its packages by platform and Go-style arch: anvil-linux-amd64, anvil-darwin-arm64.
  const arch = process.arch === 'x64' ? 'amd64' : process.arch
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`
  let dir: string
  try {
    dir = dirname(require.resolve(`${pkg}/package.json`))
  } catch {
    throw new Error(`anvil binary not found (${pkg} is not installed); install: npm ci (the @foundry-rs/anvil package)`)
  }
  const bin = join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil')
  if (!existsSync(bin)) throw new Error(`anvil binary not found at ${bin}; install: npm ci (the @foundry-rs/anvil package)`)
  return bin
}

// Every live anvil, killed synchronously if the process exits with chains still running.
const live = new Set<ChildProcess>()
let exitHookInstalled = false
function killAllOnExit (): void {
  for (const child of live) child.kill('SIGKILL')
}

export async function startLocalChain (options: LocalChainOptions = {}): Promise<LocalChain> {
  const { signal, log } = options
  const chainId = options.chainId ?? 31337
  const tokenName = options.token?.name ?? 'Test USD Coin'
  const tokenSymbol = options.token?.symbol ?? 'tUSDC'
  signal?.throwIfAborted()
  const artifacts = loadArtifacts()
  const bin = anvilBinary()

  const anvil = await spawnAnvil(bin, chainId, signal, log)
  const onAbort = (): void => { void anvil.stop() }
  signal?.addEventListener('abort', onAbort, { once: true })
  const stop = async (): Promise<void> => {
    signal?.removeEventListener('abort', onAbort)
    await anvil.stop()
  }

  try {
    signal?.throwIfAborted() // aborted while anvil started, before the listener was there
    const chain = defineChain({
      id: chainId,
      name: `anvil-${chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [anvil.rpcUrl] } }
    })
    // viem polls receipts every 4 s by default; anvil mines each transaction at once.
    const transport = http(anvil.rpcUrl)
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 })

    const testClient = createTestClient({ mode: 'anvil', chain, transport })
    await testClient.setCode({ address: MULTICALL3_ADDRESS, bytecode: artifacts.contracts.Multicall.deployedBytecode })

    const deployer = mnemonicToAccount(DEV_MNEMONIC, { addressIndex: 0 })
    const deployerKeyBytes = deployer.getHdKey().privateKey
    if (deployerKeyBytes === null) throw new Error('no private key for the development account')
    const deployerKey = toHex(deployerKeyBytes)
    const wallet = createWalletClient({ account: privateKeyToAccount(deployerKey), chain, transport, pollingInterval: 50 })

    const deployHash = await wallet.deployContract({
      abi: artifacts.contracts.Eip3009Token.abi,
      bytecode: artifacts.contracts.Eip3009Token.bytecode,
      args: [tokenName, tokenSymbol]
    })
    const deployed = await publicClient.waitForTransactionReceipt({ hash: deployHash })
    if (deployed.status !== 'success' || deployed.contractAddress == null) throw new Error(`token deployment failed: ${deployHash}`)
    const tokenAddress = getAddress(deployed.contractAddress)
    log?.(`anvil: chain ${chainId} at ${anvil.rpcUrl}; token ${tokenSymbol} at ${tokenAddress}; multicall at ${MULTICALL3_ADDRESS}`)

    // One deployer nonce, so mints go one at a time.
    let mintQueue: Promise<unknown> = Promise.resolve()
    const mint = async (to: Address, amount: bigint): Promise<void> => {
      const run = mintQueue.then(async () => {
        const hash = await wallet.writeContract({ address: tokenAddress, abi: TOKEN_ABI, functionName: 'mint', args: [to, amount] })
        const receipt = await publicClient.waitForTransactionReceipt({ hash })
        if (receipt.status !== 'success') throw new Error(`mint reverted: ${hash}`)
      })
      mintQueue = run.catch(() => {})
      await run
    }

    const newAccount = async (fundEth = 10n): Promise<LocalAccount> => {
      const privateKey = generatePrivateKey()
      const { address } = privateKeyToAccount(privateKey)
      if (fundEth > 0n) {
        await testClient.setBalance({ address, value: fundEth * 10n ** 18n })
      }
      return { privateKey, address }
    }

    const balanceOf = async (address: Address): Promise<bigint> =>
      await publicClient.readContract({ address: tokenAddress, abi: TOKEN_ABI, functionName: 'balanceOf', args: [address] })

    return {
      rpcUrl: anvil.rpcUrl,
      chainId,
      network: `eip155:${chainId}`,
      chain,
      token: { address: tokenAddress, name: tokenName, symbol: tokenSymbol, version: '1', decimals: 6 },
      multicallAddress: MULTICALL3_ADDRESS,
      deployerKey,
      newAccount,
      mint,
      balanceOf,
      publicClient,
      stop
    }
  } catch (err) {
    await stop()
    throw signal?.aborted === true ? signal.reason : err
  }
}

interface RunningAnvil { rpcUrl: string, stop: () => Promise<void> }

/** Spawns anvil on a free loopback port, retrying when another process takes the port first. */
async function spawnAnvil (bin: string, chainId: number, signal: AbortSignal | undefined, log: ((line: string) => void) | undefined): Promise<RunningAnvil> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      return await spawnAnvilOn(bin, port, chainId, signal, log)
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= PORT_ATTEMPTS) throw err
      log?.(`anvil: port ${port} taken, retrying`)
    }
  }
}

class PortTakenError extends Error {}

async function spawnAnvilOn (bin: string, port: number, chainId: number, signal: AbortSignal | undefined, log: ((line: string) => void) | undefined): Promise<RunningAnvil> {
  const args = ['--host', '127.0.0.1', '--port', String(port), '--chain-id', String(chainId), '--mnemonic', DEV_MNEMONIC, '--accounts', '1', '--quiet']
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false })
  live.add(child)
  if (!exitHookInstalled) {
    process.on('exit', killAllOnExit)
    exitHookInstalled = true
  }
  const watchdog = startWatchdog(child)
  child.unref()

  let output = ''
  for (const stream of [child.stdout, child.stderr]) {
    ;(stream as Socket | null)?.unref()
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      output = (output + chunk).slice(-4000)
      if (log !== undefined) for (const line of chunk.split('\n')) if (line.trim() !== '') log(`anvil: ${line}`)
    })
  }
  let spawnError: Error | undefined
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => { spawnError = err; resolve() })
    child.once('exit', () => resolve())
  })
  void exited.then(() => {
    live.delete(child)
    watchdog?.disarm()
  })
  const hasExited = (): boolean => child.exitCode !== null || child.signalCode !== null || spawnError !== undefined

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      watchdog?.disarm()
      if (!hasExited()) {
        child.kill('SIGTERM')
        const grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
        await exited
        clearTimeout(grace)
      }
      live.delete(child)
    })()
    await stopping
  }

  const rpcUrl = `http://127.0.0.1:${port}`
  try {
    await waitReady(rpcUrl, chainId, hasExited, signal)
  } catch (err) {
    await stop()
    if (spawnError !== undefined) throw new Error(`anvil did not start (${bin}): ${spawnError.message}`)
    if (/address already in use|os error 98|EADDRINUSE/i.test(output)) throw new PortTakenError(`port ${port} taken`)
    if (err instanceof Error && output.trim() !== '') err.message += `\nanvil output:\n${output.trim()}`
    throw err
  }
  return { rpcUrl, stop }
}

/** Polls eth_chainId until anvil answers with the expected id; the machine may be slow and loaded. */
async function waitReady (rpcUrl: string, chainId: number, hasExited: () => boolean, signal: AbortSignal | undefined): Promise<void> {
  const deadline = AbortSignal.timeout(READY_DEADLINE_MS)
  const wait = signal === undefined ? deadline : AbortSignal.any([deadline, signal])
  let lastError = 'no answer'
  for (;;) {
    if (signal?.aborted === true) throw signal.reason
    if (deadline.aborted) throw new Error(`anvil did not answer eth_chainId at ${rpcUrl} within ${READY_DEADLINE_MS} ms (${lastError})`)
    if (hasExited()) throw new Error('anvil exited during startup')
    try {
      const res = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.any([wait, AbortSignal.timeout(2_000)])
      })
      const body = await res.json() as { result?: string }
      if (body.result !== undefined) {
        if (Number(body.result) === chainId) return
        throw new Error(`anvil at ${rpcUrl} reports chain id ${body.result}, expected ${chainId}`)
      }
      lastError = `HTTP ${res.status}`
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('anvil at')) throw err
      lastError = err instanceof Error ? err.message : String(err)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A port the OS just handed out on 127.0.0.1; another process may still take it (hence the retry). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port from the OS'))
      })
    })
  })
}

/**
 * A `sh` that blocks reading a pipe from us and SIGKILLs anvil when the pipe closes, which the
 * kernel does however this process dies. Windows has no `sh`: there, only the exit handler applies.
 */
function startWatchdog (child: ChildProcess): { disarm: () => void } | undefined {
  if (process.platform === 'win32' || child.pid === undefined) return undefined
  const dog = spawn('/bin/sh', ['-c', 'read -r _ || true; kill -KILL "$0" 2>/dev/null', String(child.pid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: false
  })
  dog.on('error', () => {})
  dog.unref()
  const pipe = dog.stdin as Socket | null
  pipe?.on('error', () => {})
  pipe?.unref()
  return {
    // Killed rather than released, so it cannot fire at a pid that has since been reused.
    disarm: () => {
      dog.kill('SIGKILL')
      pipe?.destroy()
    }
  }
}
