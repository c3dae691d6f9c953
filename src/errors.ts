/**
 * Every error the HTTP API answers with, in one table: code, HTTP status and
 * the message the caller sees. Messages say what to do, never what is inside
 * (no stack, no SQL, no configuration).
 */
export const ERRORS = {
  OPS_UNAUTHORIZED: { statusCode: 401, message: 'Missing, malformed, expired or unknown credentials: send Authorization: Bearer <token>.' },
  OPS_FORBIDDEN: { statusCode: 403, message: 'These credentials lack the scope ops:overview:read (or ops:*).' },
  OPS_AUTH_NOT_CONFIGURED: { statusCode: 503, message: 'The API has no credentials configured and refuses all requests; see the README (OPS_API_TOKENS, OPS_JWT_*).' },
  OPS_NOT_READY: { statusCode: 503, message: 'Not every source has been collected yet; try again shortly.' },
  OPS_NOT_FOUND: { statusCode: 404, message: 'No such route.' },
  OPS_METHOD_NOT_ALLOWED: { statusCode: 405, message: 'Method not allowed on this route.' },
  OPS_BAD_REQUEST: { statusCode: 400, message: 'The request is malformed.' },
  OPS_PAYLOAD_TOO_LARGE: { statusCode: 413, message: 'The request is too large.' },
  OPS_HEADERS_TOO_LARGE: { statusCode: 431, message: 'The request headers are too large.' },
  OPS_REQUEST_TIMEOUT: { statusCode: 408, message: 'The request took too long to arrive.' },
  OPS_RATE_LIMITED: { statusCode: 429, message: 'Too many requests; slow down.' },
  OPS_INTERNAL: { statusCode: 500, message: 'Internal error.' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** The body of every error response. */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
  statusCode: number;
}

/** An error that maps to a row of ERRORS. */
export class OpsError extends Error {
  readonly statusCode: number;
  constructor(readonly code: ErrorCode) {
    super(ERRORS[code].message);
    this.statusCode = ERRORS[code].statusCode;
    this.name = 'OpsError';
  }
}

/** The response body for `code`. */
export function errorBody(code: ErrorCode): ErrorBody {
  return { error: code, message: ERRORS[code].message, statusCode: ERRORS[code].statusCode };
}

/** JSON schema of ErrorBody, for route response schemas. */
export const errorBodySchema = {
  type: 'object',
  required: ['error', 'message', 'statusCode'],
  properties: {
    error: { type: 'string' },
    message: { type: 'string' },
    statusCode: { type: 'integer' },
  },
} as const;
