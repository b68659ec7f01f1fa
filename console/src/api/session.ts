// The signed-in principal. The token pair is kept in this tab's
// sessionStorage (never localStorage or cookies), so a reload keeps the
// session and closing the tab or logging out forgets it; the principal itself
// (`/auth/me`) is always read from the API. The page allows no script but its
// own (Content-Security-Policy), which is what keeps the tokens to it.
import { ApiFailure } from "./errors";
import { publicApi, unwrap } from "./client";

/** `GET /api/v1/auth/me`. */
export interface Me {
  user_id: string;
  tenant_id: string;
  email: string | null;
  name: string;
  is_service_account: boolean;
  roles: string[];
  scopes: string[];
  platform_admin: boolean;
}

interface Tokens {
  access: string;
  refresh: string | null;
  /** Epoch ms at which the access token expires. */
  expiresAt: number;
}

export type Level = "read" | "write" | "admin";
const RANK: Record<Level, number> = { read: 1, write: 2, admin: 3 };

/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;
const STORAGE_KEY = "sentinel-console-session";

function stored(): Tokens | null {
  try {
    const t = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Tokens | null;
    return t && typeof t.access === "string" && typeof t.expiresAt === "number" ? t : null;
  } catch {
    return null;
  }
}

export class Session {
  private tokens: Tokens | null = stored();
  private current: Me | null = null;
  /** Resolves once a session kept from before a reload has been checked with the API. */
  readonly restored: Promise<void> = this.restore();
  private endedBecause: string | null = null;
  private refreshing: Promise<string | null> | null = null;
  private listeners = new Set<() => void>();
  private version = 0;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Changes whenever the principal or the reason a session ended changes. */
  snapshot = (): number => this.version;

  private async restore(): Promise<void> {
    if (!this.tokens) return;
    try {
      await this.accessToken();
      this.current = await this.fetchMe();
    } catch {
      this.setTokens(null);
    }
    this.changed();
  }

  private setTokens(t: Tokens | null) {
    this.tokens = t;
    if (t) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(t));
    else sessionStorage.removeItem(STORAGE_KEY);
  }

  me(): Me | null {
    return this.current;
  }

  endedReason(): string | null {
    return this.endedBecause;
  }

  private changed() {
    this.version++;
    for (const l of this.listeners) l();
  }

  /** Logs in; throws `ApiFailure` with the API's own message on refusal. */
  async login(email: string, password: string, tenantCode: string): Promise<void> {
    const pair = await unwrap(
      publicApi().POST("/api/v1/auth/login", {
        body: { email, password, tenant_code: tenantCode },
      }),
    );
    this.setTokens({
      access: pair.access_token,
      refresh: pair.refresh_token ?? null,
      expiresAt: Date.now() + pair.expires_in * 1000,
    });
    let me: Me;
    try {
      me = await this.fetchMe();
    } catch (e) {
      this.setTokens(null);
      throw e;
    }
    this.current = me;
    this.endedBecause = null;
    this.changed();
  }

  private async fetchMe(): Promise<Me> {
    const me = await unwrap(
      publicApi().GET("/api/v1/auth/me", { headers: { Authorization: `Bearer ${this.tokens?.access}` } }),
    );
    // The document of this API version describes /auth/me as an object only.
    return me as unknown as Me;
  }

  /** The access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string | null> {
    const t = this.tokens;
    if (!t) return null;
    if (Date.now() < t.expiresAt - REFRESH_MARGIN_MS || !t.refresh) return t.access;
    this.refreshing ??= this.refresh(t.refresh).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async refresh(refreshToken: string): Promise<string | null> {
    try {
      const pair = await unwrap(
        publicApi().POST("/api/v1/auth/refresh", { body: { refresh_token: refreshToken } }),
      );
      this.setTokens({
        access: pair.access_token,
        refresh: pair.refresh_token ?? null,
        expiresAt: Date.now() + pair.expires_in * 1000,
      });
      return pair.access_token;
    } catch (e) {
      this.expire(e instanceof ApiFailure ? e.message : "Your session has ended: log in again.");
      return null;
    }
  }

  /** Ends the session on the API (token blacklisted, refresh family revoked), then locally. */
  async logout(): Promise<void> {
    const t = this.tokens;
    if (t) {
      await publicApi()
        .POST("/api/v1/auth/logout", {
          headers: { Authorization: `Bearer ${t.access}` },
          body: t.refresh ? { refresh_token: t.refresh } : {},
        })
        .catch(() => undefined);
    }
    this.setTokens(null);
    this.current = null;
    this.endedBecause = null;
    this.changed();
  }

  /** Forgets the tokens after the API refused them. */
  expire(reason: string): void {
    if (!this.tokens) return;
    this.setTokens(null);
    this.current = null;
    this.endedBecause = reason;
    this.changed();
  }

  /**
   * Whether the principal holds the scope `scope` itself (scopes that are not
   * levels of an area: `audit:read`, `audit:export`). Only decides what the
   * console offers; the API decides what is allowed.
   */
  holds(scope: string): boolean {
    const me = this.current;
    if (!me) return false;
    return me.platform_admin || me.scopes.includes(scope);
  }

  /**
   * Whether the principal holds `area:level` (or more). Only decides what the
   * console offers; the API decides what is allowed.
   */
  can(area: string, level: Level = "read"): boolean {
    const me = this.current;
    if (!me) return false;
    if (me.platform_admin) return true;
    return me.scopes.some((s) => {
      const [a, l] = s.split(":");
      return a === area && l !== undefined && l in RANK && RANK[l as Level] >= RANK[level];
    });
  }
}
