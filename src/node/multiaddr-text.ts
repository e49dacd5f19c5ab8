/**
 * Multiaddrs as an operator writes them (config, command line): checked when read, so a bad
 * address is a usage or config error with its reason, never a failure deep inside libp2p.
 */
import { multiaddr } from '@multiformats/multiaddr'

/** Why `text` is not a usable multiaddr (undefined when it is); `peer` requires a `/p2p/<peer id>`. */
export function multiaddrProblem (text: string, { peer = false } = {}): string | undefined {
  let addr
  try {
    addr = multiaddr(text)
  } catch (err) {
    return `not a multiaddr (${(err as Error).message})`
  }
  if (peer && addr.getComponents().every((c) => c.name !== 'p2p')) return 'needs /p2p/<peer id> (whom to expect there)'
  return undefined
}
