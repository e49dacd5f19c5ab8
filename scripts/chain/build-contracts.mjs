#!/usr/bin/env node
// Compiles the local chain's contracts (the EIP-3009 test token and the tryAggregate-only
// Multicall) with the pinned solc devDependency and writes scripts/chain/artifacts.json. The
// artifacts are committed so tests and the demo never compile at run time; a test checks that they
// still match what this script produces. `npm run build:contracts` after editing a .sol file.
import { createRequire } from 'node:module'
import { readFileSync, writeFileSync, realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))

export const SOURCES = ['Eip3009Token.sol', 'Multicall.sol']
export const ARTIFACTS_PATH = join(here, 'artifacts.json')

// cancun: supported by every anvil since 0.2 (1.x defaults to a later fork) and by public L2s.
export const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun'
}

/**
 * The artifacts object, compiled in memory. Throws with solc's messages on any error.
 * @param {{ onWarning?: (message: string) => void }} [options]
 * @returns {{ compiler: string, settings: typeof SETTINGS, contracts: Record<string, { abi: unknown[], bytecode: string, deployedBytecode: string }> }}
 */
export function compileContracts ({ onWarning } = {}) {
  const solc = require('solc')
  const sources = {}
  // Line endings normalised: the metadata hash inside the bytecode covers the source text, and a
  // CRLF checkout must not produce different artifacts.
  for (const file of SOURCES) sources[file] = { content: readFileSync(join(here, file), 'utf8').replace(/\r\n/g, '\n') }
  const input = {
    language: 'Solidity',
    sources,
    settings: {
      ...SETTINGS,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } }
    }
  }
  const output = JSON.parse(solc.compile(JSON.stringify(input)))
  const problems = output.errors ?? []
  const errors = problems.filter((e) => e.severity === 'error')
  if (errors.length > 0) throw new Error('solc failed:\n' + errors.map((e) => e.formattedMessage).join('\n'))
  for (const w of problems) if (w.severity !== 'error') onWarning?.(w.formattedMessage)

  const contracts = {}
  for (const file of SOURCES) {
    for (const [name, c] of Object.entries(output.contracts[file] ?? {})) {
      contracts[name] = {
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object
      }
    }
  }
  return { compiler: solc.version(), settings: SETTINGS, contracts }
}

/** Stable text for the artifacts file: two-space JSON and a final newline. */
export function formatArtifacts (artifacts) {
  return JSON.stringify(artifacts, null, 2) + '\n'
}

const invokedDirectly = process.argv[1] !== undefined &&
  pathToFileURL(realpathSync(process.argv[1])).href === import.meta.url
if (invokedDirectly) {
  const artifacts = compileContracts({ onWarning: (m) => process.stderr.write(m + '\n') })
  writeFileSync(ARTIFACTS_PATH, formatArtifacts(artifacts))
  const names = Object.keys(artifacts.contracts).join(', ')
  process.stdout.write(`wrote ${ARTIFACTS_PATH} (${names}; solc ${artifacts.compiler})\n`)
}
