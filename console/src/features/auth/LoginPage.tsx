// Password login. Refusals are shown as the API words them: "invalid
// credentials", "account is locked" (with until when), "tenant is suspended".
import { useState } from "react";
import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { Navigate, useLocation } from "react-router";
import { ApiFailure } from "@/api/errors";
import { useSession } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { reportToForm } from "@/ui/forms";
import { when } from "@/ui/format";

export function LoginPage() {
  const session = useSession();
  const location = useLocation();
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const form = useForm({
    initialValues: { tenant_code: "", email: "", password: "" },
    validate: {
      tenant_code: (v) => (v.trim() ? null : "Enter your organisation's tenant code"),
      email: (v) => (v.trim() ? null : "Enter your email"),
      password: (v) => (v ? null : "Enter your password"),
    },
  });
  const me = session.me();
  if (me) {
    const from = (location.state as { from?: string } | null)?.from;
    return <Navigate to={from ?? "/"} replace />;
  }
  const ended = session.endedReason();
  const locked = failure instanceof ApiFailure && failure.code === "ACCOUNT_LOCKED";
  const until = locked ? (failure as ApiFailure).details["locked_until"] : undefined;

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={{ base: "100%", xs: 420 }} component="main">
        <form
          aria-label="Log in"
          onSubmit={form.onSubmit(async (v) => {
            setBusy(true);
            setFailure(null);
            try {
              // On success the session changes and this page redirects itself.
              await session.login(v.email.trim(), v.password, v.tenant_code.trim().toUpperCase());
            } catch (e) {
              setFailure(reportToForm(form, e));
            } finally {
              setBusy(false);
            }
          })}
        >
          <Stack>
            <Title order={1} size="h2">
              Sentinel console
            </Title>
            {ended && !failure && (
              <Alert color="yellow" role="status">
                {ended}
              </Alert>
            )}
            <TextInput
              label="Tenant code"
              description="PLATFORM for platform administrators"
              autoComplete="organization"
              autoFocus
              {...form.getInputProps("tenant_code")}
            />
            <TextInput label="Email" type="email" autoComplete="username" {...form.getInputProps("email")} />
            <PasswordInput label="Password" autoComplete="current-password" {...form.getInputProps("password")} />
            {failure !== null && <ErrorAlert error={failure} title="Login refused" />}
            {locked && typeof until === "string" && (
              <Text size="sm" data-testid="locked-until">
                Locked until {when(until)}.
              </Text>
            )}
            <Button type="submit" loading={busy}>
              Log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
