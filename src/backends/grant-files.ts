/**
 * Grant files (the workload identity credential and issuer URL) for backends whose machine runs
 * user_data with /bin/sh: a shell prelude that writes each file, base64-decoded, under the grant
 * user's home with its mode (and owner, when the script runs as root), then runs the requester's
 * user_data unchanged from where it would have run. The requester's bytes and the credential never
 * appear in a command line or in YAML as text. No files: the user_data as it is.
 */
import type { GrantFile } from './backend.js'

/** Paths a prelude may write: relative, plain characters, no `..`. */
const PLAIN_PATH = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/

export function isPlainGrantPath (path: string): boolean {
  return path.length <= 256 && PLAIN_PATH.test(path) && !path.split('/').includes('..')
}

export interface PreludeTarget {
  /** The grant user's home: `$HOME` when the script runs as that user, an absolute path when it runs as root. */
  home: string
  /** When the script runs as root: the user who must own the files. */
  owner?: string
  /** Where the requester's user_data is written before it runs (its own directory must exist or be creatable). */
  innerPath: string
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

export function userDataWithFiles (userData: Uint8Array, files: readonly GrantFile[], target: PreludeTarget): Uint8Array {
  if (files.length === 0) return userData
  for (const f of files) if (!isPlainGrantPath(f.path)) throw new TypeError(`grant file path ${f.path} is not a plain relative path`)
  if (!/^(\$HOME|\/[A-Za-z0-9._/-]+)$/.test(target.home) || !/^[A-Za-z0-9._/-]+$/.test(target.innerPath) || (target.owner !== undefined && !/^[a-z_][a-z0-9_-]*$/.test(target.owner))) {
    throw new TypeError('bad prelude target')
  }
  const home = target.home === '$HOME' ? '"$HOME"' : `'${target.home}'`
  const lines = [
    '#!/bin/sh',
    '# cmesh: the files the provider places for this grant, then the requester\'s user_data, unchanged.',
    '( set -e',
    `  cd ${home}`,
    '  umask 077'
  ]
  for (const f of files) {
    const dir = f.path.includes('/') ? f.path.slice(0, f.path.lastIndexOf('/')) : ''
    if (dir !== '') lines.push(`  mkdir -p '${dir}'`)
    lines.push(`  printf '%s' '${b64(f.content)}' | base64 -d > '${f.path}'`, `  chmod ${(f.mode & 0o777).toString(8)} '${f.path}'`)
    if (target.owner !== undefined) lines.push(`  chown ${target.owner}: '${f.path}'${dir !== '' ? ` '${dir}'` : ''}`)
  }
  lines.push(
    ') || { echo "cmesh: could not place the grant files" >&2; exit 97; }',
    `umask 077; mkdir -p "$(dirname '${target.innerPath}')"`,
    `printf '%s' '${b64(userData)}' | base64 -d > '${target.innerPath}'`,
    `exec /bin/sh '${target.innerPath}'`,
    ''
  )
  return new TextEncoder().encode(lines.join('\n'))
}
