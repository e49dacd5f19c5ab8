/**
 * The local EVM chain for payment tests. anvil comes from npm (@foundry-rs/anvil), so there is no
 * skip: a missing binary is an installation error, reported as such by startLocalChain.
 */
export {
  startLocalChain, anvilBinary, loadArtifacts, MULTICALL3_ADDRESS, MULTICALL_ABI, TOKEN_ABI,
  TRANSFER_WITH_AUTHORIZATION_TYPES,
  type LocalChain, type LocalChainOptions, type LocalAccount
} from '../../scripts/chain/local-chain.js'
