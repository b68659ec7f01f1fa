// Providers and routes. Theme follows the system's light/dark setting.
import { useEffect, useMemo, useState } from "react";
import { Badge, Center, Loader, MantineProvider, Modal, MultiSelect, NumberInput, Select, createTheme } from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { RouterProvider, createBrowserRouter } from "react-router";
import { Session } from "@/api/session";
import { ApiFailure } from "@/api/errors";
import { SessionContext } from "./session-context";
import { routes } from "./routes";

const theme = createTheme({
  primaryColor: "indigo",
  defaultRadius: "sm",
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
  components: {
    // Names for the library's icon-only buttons; steppers hidden (arrow keys step).
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close dialog" } } }),
    Select: Select.extend({ defaultProps: { clearButtonProps: { "aria-label": "Clear" } } }),
    MultiSelect: MultiSelect.extend({ defaultProps: { clearButtonProps: { "aria-label": "Clear" } } }),
    NumberInput: NumberInput.extend({ defaultProps: { hideControls: true } }),
    // Badges carry names and emails: keep their case.
    Badge: Badge.extend({ defaultProps: { tt: "none" } }),
  },
});

export function App() {
  const session = useMemo(() => new Session(), []);
  const queryClient = useMemo(
    () =>
      new QueryClient({
        defaultOptions: {
          queries: {
            // The API owns the data: refetch on focus, never retry a refusal.
            retry: (count, error) => !(error instanceof ApiFailure && error.status > 0) && count < 2,
            staleTime: 5_000,
          },
        },
      }),
    [],
  );
  const router = useMemo(() => createBrowserRouter(routes, { basename: "/console" }), []);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    void session.restored.then(() => setReady(true));
  }, [session]);
  return (
    <MantineProvider theme={theme} defaultColorScheme="auto">
      <Notifications position="top-right" />
      <SessionContext.Provider value={session}>
        <QueryClientProvider client={queryClient}>
          {ready ? (
            <RouterProvider router={router} />
          ) : (
            <Center mih="100vh">
              <Loader aria-label="Loading" />
            </Center>
          )}
        </QueryClientProvider>
      </SessionContext.Provider>
    </MantineProvider>
  );
}
