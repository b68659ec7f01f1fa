// The frame of every page after login: header (tenant switcher, principal,
// log out), navigation filtered by scope, and the page.
import { AppShell, Anchor, Burger, Group, NavLink, ScrollArea, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { Link, Outlet, useLocation } from "react-router";
import { NAV, offered } from "./nav";
import { useSession, useTenantId } from "./session-context";
import { TenantSwitcher } from "./TenantSwitcher";
import { UserMenu } from "./UserMenu";

export function Shell() {
  const session = useSession();
  const tenantId = useTenantId();
  const location = useLocation();
  const [opened, { toggle, close }] = useDisclosure();
  const here = location.pathname.split("/")[3] ?? "";

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 230, breakpoint: "md", collapsed: { mobile: !opened } }}
      padding="md"
    >
      <Anchor href="#main" className="skip-link">
        Skip to content
      </Anchor>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="md" size="sm" aria-label="Toggle navigation" />
            <Title order={1} size="h4">
              Sentinel
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <TenantSwitcher />
            <UserMenu />
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Console sections">
        <ScrollArea>
          {NAV.map((section) => {
            const entries = section.entries.filter((e) => offered(session, e));
            if (entries.length === 0) return null;
            return (
              <nav key={section.label} aria-label={section.label}>
                <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" pt="sm" pb={4}>
                  {section.label}
                </Text>
                {entries.map((e) => (
                  <NavLink
                    key={e.path}
                    component={Link}
                    to={`/t/${tenantId}/${e.path}`}
                    label={e.label}
                    active={here === e.path}
                    aria-current={here === e.path ? "page" : undefined}
                    onClick={close}
                  />
                ))}
              </nav>
            );
          })}
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main id="main" tabIndex={-1}>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
