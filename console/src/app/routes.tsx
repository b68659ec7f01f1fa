// The route table: `/login`, and every feature under `/t/:tenantId/` (the
// tenant the page acts on, so a link names its tenant).
import { Link, useRouteError, type RouteObject } from "react-router";
import { Anchor, Center, Stack, Text, Title } from "@mantine/core";
import { LoginPage } from "@/features/auth/LoginPage";
import { AccessCheckPage } from "@/features/access-check/AccessCheckPage";
import { AuditPage } from "@/features/audit/AuditPage";
import { FieldDefinitionsPage } from "@/features/field-definitions/FieldDefinitionsPage";
import { GroupDetail } from "@/features/groups/GroupDetail";
import { GroupsPage } from "@/features/groups/GroupsPage";
import { NavigationPage } from "@/features/navigation/NavigationPage";
import { PermissionEdit, PermissionNew } from "@/features/permissions/PermissionEdit";
import { PermissionsPage } from "@/features/permissions/PermissionsPage";
import { ResourcesPage } from "@/features/resources/ResourcesPage";
import { RoleDetail } from "@/features/roles/RoleDetail";
import { RolesPage } from "@/features/roles/RolesPage";
import { ServiceAccountsPage } from "@/features/service-accounts/ServiceAccountsPage";
import { TenantDetail } from "@/features/tenants/TenantDetail";
import { TenantsPage } from "@/features/tenants/TenantsPage";
import { UserDetail } from "@/features/users/UserDetail";
import { UsersPage } from "@/features/users/UsersPage";
import { Home, RequireSession } from "./RequireSession";
import { Shell } from "./Shell";

function NotFound() {
  return (
    <Center p="xl">
      <Stack align="center">
        <Title order={2}>Not found</Title>
        <Text c="dimmed">No page at this address.</Text>
      </Stack>
    </Center>
  );
}

/** A page that failed to render: say so instead of a blank screen. */
function RouteError() {
  const error = useRouteError();
  return (
    <Center p="xl">
      <Stack align="center" role="alert">
        <Title order={2}>This page failed</Title>
        <Text c="dimmed">{error instanceof Error ? error.message : String(error)}</Text>
        <Anchor component={Link} to="/">
          Back to the console
        </Anchor>
      </Stack>
    </Center>
  );
}

export const routes: RouteObject[] = [
  { path: "/login", element: <LoginPage />, errorElement: <RouteError /> },
  {
    element: <RequireSession />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <Home /> },
      {
        path: "t/:tenantId",
        element: <Shell />,
        children: [
          { index: true, element: <Home /> },
          { path: "tenants", element: <TenantsPage /> },
          { path: "tenants/:id", element: <TenantDetail /> },
          { path: "users", element: <UsersPage /> },
          { path: "users/:id", element: <UserDetail /> },
          { path: "service-accounts", element: <ServiceAccountsPage /> },
          { path: "groups", element: <GroupsPage /> },
          { path: "groups/:id", element: <GroupDetail /> },
          { path: "roles", element: <RolesPage /> },
          { path: "roles/:id", element: <RoleDetail /> },
          { path: "permissions", element: <PermissionsPage /> },
          { path: "permissions/new", element: <PermissionNew /> },
          { path: "permissions/:id", element: <PermissionEdit /> },
          { path: "resources", element: <ResourcesPage /> },
          { path: "field-definitions", element: <FieldDefinitionsPage /> },
          { path: "navigation", element: <NavigationPage /> },
          { path: "access-check", element: <AccessCheckPage /> },
          { path: "audit", element: <AuditPage /> },
          { path: "*", element: <NotFound /> },
        ],
      },
    ],
  },
  { path: "*", element: <NotFound /> },
];
