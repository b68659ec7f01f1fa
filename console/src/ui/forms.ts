// Puts an API refusal where the user looks: per-field messages of a 422
// VALIDATION_ERROR at the form's fields, everything else above the buttons.
import { ApiFailure, splitFieldErrors } from "@/api/errors";

interface FormLike {
  setErrors: (errors: Record<string, string>) => void;
  getValues: () => object;
}

/**
 * Shows `error` on `form`. Returns what the fields could not hold (null when
 * every message found its field): a failure to render with `ErrorAlert`.
 */
export function reportToForm(
  form: FormLike,
  error: unknown,
  aliases: Record<string, string> = {},
): unknown {
  if (!(error instanceof ApiFailure) || error.code !== "VALIDATION_ERROR") return error;
  const fields = Object.keys(form.getValues());
  const { atFields, rest } = splitFieldErrors(error, fields, aliases);
  form.setErrors(atFields);
  if (rest.length === 0) return null;
  return new Error(rest.join("\n"));
}
