import { Navigate, Outlet, useLocation } from "react-router";
import { NAV, offered } from "./nav";
import { useSession } from "./session-context";

/** Pages below need a principal; without one, the login page (and back after). */
export function RequireSession() {
  const session = useSession();
  const location = useLocation();
  if (!session.me()) return <Navigate to="/login" replace state={{ from: location.pathname }} />;
  return <Outlet />;
}

/** The first page the principal may open, in its own tenant. */
export function Home() {
  const session = useSession();
  const me = session.me();
  if (!me) return <Navigate to="/login" replace />;
  const first = NAV.flatMap((s) => s.entries).find((e) => offered(session, e));
  return <Navigate to={`/t/${me.tenant_id}/${first?.path ?? "access-check"}`} replace />;
}
