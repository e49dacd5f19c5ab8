import { describe, it, before, after, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import {
  createWalletClient, domainSeparator, encodeFunctionData, decodeFunctionResult, http, keccak256, parseEventLogs,
  parseSignature, serializeSignature, toEventSelector, toFunctionSelector, toHex,
  type AbiEvent, type AbiFunction, type Address, type Hex
} from 'viem'
import { generatePrivateKey, privateKeyToAccount, signTypedData } from 'viem/accounts'
import {
  startLocalChain, loadArtifacts, MULTICALL3_ADDRESS, MULTICALL_ABI, TOKEN_ABI, TRANSFER_WITH_AUTHORIZATION_TYPES,
  type LocalChain, type LocalAccount
} from '../helpers/anvil.js'

interface BuildModule {
  compileContracts: () => unknown
  formatArtifacts: (artifacts: unknown) => string
  ARTIFACTS_PATH: string
}
// A non-literal specifier: the build script is plain JS without type declarations.
const buildScript = new URL('../../scripts/chain/build-contracts.mjs', import.meta.url).href

// secp256k1 group order, to forge the high-s twin of a valid signature.
const SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141n

test('the shipped artifacts.json is what build-contracts compiles now (npm run build:contracts)', async () => {
  const build = await import(buildScript) as BuildModule
  const shipped = readFileSync(build.ARTIFACTS_PATH, 'utf8')
  assert.equal(shipped, build.formatArtifacts(build.compileContracts()))
})

test('TOKEN_ABI and MULTICALL_ABI describe functions and events the compiled contracts have', () => {
  const artifacts = loadArtifacts()
  const selectors = (abi: readonly unknown[]): Set<string> => new Set(abi.flatMap((item) => {
    const i = item as AbiFunction | AbiEvent
    if (i.type === 'function') return [toFunctionSelector(i)]
    if (i.type === 'event') return [toEventSelector(i)]
    return []
  }))
  const token = selectors(artifacts.contracts.Eip3009Token.abi)
  for (const s of selectors(TOKEN_ABI)) assert.ok(token.has(s), `token lacks ${s}`)
  const multicall = selectors(artifacts.contracts.Multicall.abi)
  for (const s of selectors(MULTICALL_ABI)) assert.ok(multicall.has(s), `multicall lacks ${s}`)
  assert.equal(toFunctionSelector('tryAggregate(bool,(address,bytes)[])'), [...selectors(MULTICALL_ABI)][0])
})

describe('local chain (anvil): EIP-3009 test token and Multicall', () => {
  let chain: LocalChain
  let payer: LocalAccount
  let payee: LocalAccount
  let relayer: LocalAccount

  before(async () => {
    chain = await startLocalChain()
    ;[payer, payee, relayer] = await Promise.all([chain.newAccount(), chain.newAccount(0n), chain.newAccount()])
  })
  after(async () => { await chain?.stop() })

  const walletOf = (a: LocalAccount): ReturnType<typeof makeWallet> => makeWallet(chain, a.privateKey)

  interface Authorization { from: Address, to: Address, value: bigint, validAfter: bigint, validBefore: bigint, nonce: Hex }

  async function authorize (signerKey: Hex, over: Partial<Authorization> = {}): Promise<{ auth: Authorization, signature: Hex }> {
    const now = (await chain.publicClient.getBlock()).timestamp
    const auth: Authorization = {
      from: payer.address,
      to: payee.address,
      value: 1_250_000n,
      validAfter: 0n,
      validBefore: now + 3600n,
      nonce: toHex(crypto.getRandomValues(new Uint8Array(32))),
      ...over
    }
    const signature = await signTypedData({
      privateKey: signerKey,
      domain: { name: chain.token.name, version: chain.token.version, chainId: chain.chainId, verifyingContract: chain.token.address },
      types: TRANSFER_WITH_AUTHORIZATION_TYPES,
      primaryType: 'TransferWithAuthorization',
      message: auth
    })
    return { auth, signature }
  }

  // Sent by the relayer, as a facilitator would: neither party pays gas.
  async function relayVrs (auth: Authorization, signature: Hex): Promise<Hex> {
    const { v, r, s } = parseSignature(signature)
    assert.ok(v !== undefined)
    const hash = await walletOf(relayer).writeContract({
      address: chain.token.address,
      abi: TOKEN_ABI,
      functionName: 'transferWithAuthorization',
      args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, Number(v), r, s]
    })
    return await mined(hash)
  }

  async function relayBytes (auth: Authorization, signature: Hex): Promise<Hex> {
    const hash = await walletOf(relayer).writeContract({
      address: chain.token.address,
      abi: TOKEN_ABI,
      functionName: 'transferWithAuthorization',
      args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature]
    })
    return await mined(hash)
  }

  async function mined (hash: Hex): Promise<Hex> {
    const receipt = await chain.publicClient.waitForTransactionReceipt({ hash })
    assert.equal(receipt.status, 'success')
    return hash
  }

  const balances = async (): Promise<bigint[]> =>
    await Promise.all([payer, payee, relayer].map(async (a) => await chain.balanceOf(a.address)))

  it('describes itself: chain id, CAIP-2 network, token metadata, EIP-712 domain', async () => {
    assert.equal(chain.chainId, 31337)
    assert.equal(chain.network, 'eip155:31337')
    assert.match(chain.rpcUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(await chain.publicClient.getChainId(), 31337)
    const read = async (functionName: 'name' | 'symbol' | 'version' | 'decimals' | 'DOMAIN_SEPARATOR' | 'TRANSFER_WITH_AUTHORIZATION_TYPEHASH'): Promise<unknown> =>
      await chain.publicClient.readContract({ address: chain.token.address, abi: TOKEN_ABI, functionName })
    assert.equal(await read('name'), chain.token.name)
    assert.equal(await read('symbol'), chain.token.symbol)
    assert.equal(await read('version'), '1')
    assert.equal(await read('decimals'), 6)
    assert.equal(await read('DOMAIN_SEPARATOR'), domainSeparator({
      domain: { name: chain.token.name, version: '1', chainId: chain.chainId, verifyingContract: chain.token.address }
    }))
    assert.equal(await read('TRANSFER_WITH_AUTHORIZATION_TYPEHASH'), keccak256(toHex(
      'TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)'
    )))
    const owner = await chain.publicClient.readContract({ address: chain.token.address, abi: TOKEN_ABI, functionName: 'owner' })
    assert.equal(owner, privateKeyToAccount(chain.deployerKey).address)
  })

  it('mints for the owner only', async () => {
    await chain.mint(payer.address, 5_000_000n)
    assert.equal(await chain.balanceOf(payer.address), 5_000_000n)
    await assert.rejects(walletOf(relayer).writeContract({
      address: chain.token.address, abi: TOKEN_ABI, functionName: 'mint', args: [relayer.address, 1n]
    }), /caller is not the owner/)
    assert.equal(await chain.balanceOf(relayer.address), 0n)
  })

  it('transferWithAuthorization (v, r, s) sent by a relayer moves exactly value, once', async () => {
    const { auth, signature } = await authorize(payer.privateKey)
    const [payerBefore, payeeBefore, relayerBefore] = await balances()
    const read = async (): Promise<boolean> => await chain.publicClient.readContract({
      address: chain.token.address, abi: TOKEN_ABI, functionName: 'authorizationState', args: [auth.from, auth.nonce]
    })
    assert.equal(await read(), false)

    const hash = await relayVrs(auth, signature)
    assert.deepEqual(await balances(), [payerBefore! - auth.value, payeeBefore! + auth.value, relayerBefore])
    assert.equal(await read(), true)
    const receipt = await chain.publicClient.getTransactionReceipt({ hash })
    const used = parseEventLogs({ abi: TOKEN_ABI, eventName: 'AuthorizationUsed', logs: receipt.logs })
    assert.equal(used.length, 1)
    assert.deepEqual(used[0]!.args, { authorizer: payer.address, nonce: auth.nonce })

    await assert.rejects(relayVrs(auth, signature), /authorization is used or canceled/)
    await assert.rejects(relayBytes(auth, signature), /authorization is used or canceled/)
    assert.deepEqual(await balances(), [payerBefore! - auth.value, payeeBefore! + auth.value, relayerBefore])
  })

  it('transferWithAuthorization (bytes signature) moves exactly value, once', async () => {
    const { auth, signature } = await authorize(payer.privateKey, { value: 7n })
    const [payerBefore, payeeBefore] = await balances()
    await relayBytes(auth, signature)
    const [payerAfter, payeeAfter] = await balances()
    assert.equal(payerAfter, payerBefore! - 7n)
    assert.equal(payeeAfter, payeeBefore! + 7n)
    await assert.rejects(relayBytes(auth, signature), /authorization is used or canceled/)
  })

  it('rejects a wrong signer, an expired or not-yet-valid window, a high-s twin and a short signature', async () => {
    const before = await balances()
    const stranger = generatePrivateKey()
    const wrong = await authorize(stranger)
    await assert.rejects(relayVrs(wrong.auth, wrong.signature), /EIP3009: invalid signature$/m)
    await assert.rejects(relayBytes(wrong.auth, wrong.signature), /EIP3009: invalid signature$/m)

    const now = (await chain.publicClient.getBlock()).timestamp
    const expired = await authorize(payer.privateKey, { validBefore: now - 1n })
    await assert.rejects(relayVrs(expired.auth, expired.signature), /authorization is expired/)
    const early = await authorize(payer.privateKey, { validAfter: now + 3600n, validBefore: now + 7200n })
    await assert.rejects(relayBytes(early.auth, early.signature), /authorization is not yet valid/)

    // Same message, (r, n - s, flipped v) recovers the same key: only the low-s form is accepted.
    const good = await authorize(payer.privateKey, { value: 1n })
    const { r, s, yParity } = parseSignature(good.signature)
    const twin = serializeSignature({ r, s: toHex(SECP256K1_N - BigInt(s), { size: 32 }), yParity: yParity === 0 ? 1 : 0 })
    await assert.rejects(relayBytes(good.auth, twin), /invalid signature 's' value/)
    await assert.rejects(relayBytes(good.auth, good.signature.slice(0, -2) as Hex), /invalid signature length/)

    assert.deepEqual(await balances(), before)
    // None of the failures consumed the nonce.
    await relayBytes(good.auth, good.signature)
  })

  it('Multicall tryAggregate at the canonical address returns balances and reports failures', async () => {
    assert.equal(chain.multicallAddress, MULTICALL3_ADDRESS)
    const balanceCall = (a: Address): { target: Address, callData: Hex } => ({
      target: chain.token.address,
      callData: encodeFunctionData({ abi: TOKEN_ABI, functionName: 'balanceOf', args: [a] })
    })
    // mint from the Multicall contract: not the owner, so it reverts inside.
    const failing = { target: chain.token.address, callData: encodeFunctionData({ abi: TOKEN_ABI, functionName: 'mint', args: [payee.address, 1n] }) }
    // tryAggregate is payable (as in Multicall3), so viem's typed readContract excludes it: eth_call via simulate.
    const { result: results } = await chain.publicClient.simulateContract({
      address: MULTICALL3_ADDRESS,
      abi: MULTICALL_ABI,
      functionName: 'tryAggregate',
      args: [false, [balanceCall(payer.address), balanceCall(payee.address), failing]]
    })
    assert.equal(results.length, 3)
    const decoded = results.slice(0, 2).map((r) => {
      assert.equal(r.success, true)
      return decodeFunctionResult({ abi: TOKEN_ABI, functionName: 'balanceOf', data: r.returnData })
    })
    assert.deepEqual(decoded, (await balances()).slice(0, 2))
    assert.equal(results[2]!.success, false)

    await assert.rejects(chain.publicClient.simulateContract({
      address: MULTICALL3_ADDRESS, abi: MULTICALL_ABI, functionName: 'tryAggregate', args: [true, [balanceCall(payer.address), failing]]
    }), /Multicall: call failed/)
  })
})

test('stop() is idempotent and an aborted signal stops the chain', async () => {
  const controller = new AbortController()
  const chain = await startLocalChain({ signal: controller.signal, chainId: 84532 })
  try {
    assert.equal(chain.network, 'eip155:84532')
    assert.equal(await chain.publicClient.getChainId(), 84532)
    controller.abort()
    await chain.stop()
    await chain.stop()
    await assert.rejects(fetch(chain.rpcUrl, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5000) }))
  } finally {
    await chain.stop()
  }
  await assert.rejects(startLocalChain({ signal: AbortSignal.abort() }))
})

function makeWallet (chain: LocalChain, key: Hex) {
  return createWalletClient({ account: privateKeyToAccount(key), chain: chain.chain, transport: http(chain.rpcUrl), pollingInterval: 50 })
}
