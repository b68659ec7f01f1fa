// The admin API's error body (SPEC: {"error": {code, message, details}, request_id})
// as a thrown value, and the mapping of VALIDATION_ERROR details onto form fields.

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
  request_id?: string;
}

/** A non-2xx answer of the admin API (or a network failure, status 0). */
export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly requestId: string | undefined;

  constructor(status: number, body: unknown) {
    const parsed = asErrorBody(body);
    super(parsed?.error.message ?? (status === 0 ? "the admin API cannot be reached" : `HTTP ${status}`));
    this.name = "ApiFailure";
    this.status = status;
    this.code = parsed?.error.code ?? (status === 0 ? "NETWORK_ERROR" : "UNEXPECTED_RESPONSE");
    this.details = parsed?.error.details ?? {};
    this.requestId = parsed?.request_id;
  }

  /** Per-field messages of a 422 VALIDATION_ERROR: field name to one joined message. */
  fieldErrors(): Record<string, string> {
    if (this.code !== "VALIDATION_ERROR") return {};
    const out: Record<string, string> = {};
    for (const [field, messages] of Object.entries(this.details)) {
      out[field] = Array.isArray(messages) ? messages.map(String).join("; ") : String(messages);
    }
    return out;
  }
}

function asErrorBody(body: unknown): ErrorBody | null {
  if (typeof body !== "object" || body === null || !("error" in body)) return null;
  const e = (body as { error: unknown }).error;
  if (typeof e !== "object" || e === null) return null;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== "string" || typeof message !== "string") return null;
  return body as ErrorBody;
}

/**
 * Splits a validation failure into the errors a form can show at its fields
 * and the rest (fields the form does not have, e.g. `body`), which the form
 * shows above its buttons. `aliases` maps API field names to form paths.
 */
export function splitFieldErrors(
  failure: ApiFailure,
  formFields: readonly string[],
  aliases: Record<string, string> = {},
): { atFields: Record<string, string>; rest: string[] } {
  const atFields: Record<string, string> = {};
  const rest: string[] = [];
  for (const [field, message] of Object.entries(failure.fieldErrors())) {
    const target = aliases[field] ?? field;
    const root = target.split(/[.[]/)[0] ?? target;
    if (formFields.includes(root)) {
      atFields[target] = atFields[target] ? `${atFields[target]}; ${message}` : message;
    } else {
      rest.push(`${field}: ${message}`);
    }
  }
  return { atFields, rest };
}
