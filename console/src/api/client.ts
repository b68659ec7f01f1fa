// The one typed client of the admin API (openapi-fetch over the generated
// `paths`). Every request of the console goes through `createApi`: same
// origin, bearer token from the session, `X-Tenant-ID` when acting on a
// tenant other than the caller's own.
import createClient from "openapi-fetch";
import type { paths } from "./schema";
import { ApiFailure } from "./errors";
import type { Session } from "./session";

export type Api = ReturnType<typeof createClient<paths>>;

/** A client without credentials: login, refresh. */
export function publicApi(): Api {
  return createClient<paths>({ baseUrl: "" });
}

/** A client acting as the session's principal on `actingTenant`. */
export function createApi(session: Session, actingTenant: string | null): Api {
  const client = createClient<paths>({ baseUrl: "" });
  client.use({
    async onRequest({ request }) {
      const token = await session.accessToken();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      const own = session.me()?.tenant_id;
      if (actingTenant && actingTenant !== own) request.headers.set("X-Tenant-ID", actingTenant);
      return request;
    },
    onResponse({ response }) {
      if (response.status === 401) session.expire("Your session has ended: log in again.");
      return response;
    },
  });
  return client;
}

/**
 * The data of an openapi-fetch answer, or an `ApiFailure` carrying the API's
 * error body. Network failures become `ApiFailure` with status 0.
 */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch {
    throw new ApiFailure(0, null);
  }
  if (!result.response.ok) throw new ApiFailure(result.response.status, result.error);
  return result.data as T;
}
