// React access to the one `Session` and to a client bound to the tenant the
// current page acts on (the `:tenantId` of the route).
import { createContext, useContext, useMemo, useSyncExternalStore } from "react";
import { useParams } from "react-router";
import { createApi, type Api } from "@/api/client";
import type { Me, Session } from "@/api/session";

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionContext");
  useSyncExternalStore(s.subscribe, s.snapshot);
  return s;
}

/** The signed-in principal; pages under the shell are only rendered with one. */
export function useMe(): Me {
  const me = useSession().me();
  if (!me) throw new Error("useMe without a session");
  return me;
}

/** The tenant the page acts on: the route's `:tenantId`. */
export function useTenantId(): string {
  const { tenantId } = useParams();
  const me = useMe();
  return tenantId ?? me.tenant_id;
}

/** The typed client acting on the page's tenant. */
export function useApi(): Api {
  const session = useSession();
  const tenant = useTenantId();
  return useMemo(() => createApi(session, tenant), [session, tenant]);
}
