import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { main } from '../../src/node/cli.js'

const bin = fileURLToPath(new URL('../../src/node/bin.ts', import.meta.url))
// Resolved here: `--import tsx` would otherwise be looked up from the child's (temporary) cwd.
const tsx = import.meta.resolve('tsx')

export interface CliResult { code: number | null, stdout: string, stderr: string }

/**
 * Runs `cmesh` in this process through `main(argv, io)`, as if started in `cwd`: what a spawned
 * CLI does minus the seconds a child process costs on a busy machine. Test files run in separate
 * processes and their tests one at a time, so changing directory for the call is safe.
 */
export async function runCli (args: string[], cwd: string): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  const previous = process.cwd()
  process.chdir(cwd)
  try {
    const code = await main(args, { out: (text) => { stdout += text }, err: (text) => { stderr += text } })
    return { code, stdout, stderr }
  } finally {
    process.chdir(previous)
  }
}

/** Runs `cmesh` from source as a real child process: the smoke tests that the binary itself works. */
export async function spawnCli (args: string[], cwd: string): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', tsx, bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, stdout, stderr }
}
