import { CmeshError } from '../market/errors.js'

export type NodeErrorCode =
  | 'KEY_FILE_EXISTS'
  | 'KEY_FILE_MISSING'
  | 'KEY_FILE_INSECURE'
  | 'KEY_FILE_INVALID'
  | 'INPUT_INVALID'
  | 'CONFIG_INVALID'
  | 'NODE_NOT_RUNNING'
  | 'NODE_API_ERROR'

/** Errors of the node layer (files, config, CLI input); the CLI prints `code: message`. */
export class NodeError extends CmeshError<NodeErrorCode> {}
