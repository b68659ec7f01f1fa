// `permissions/new` and `permissions/:id`: the form, and deleting.
import { Anchor, Breadcrumbs, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "react-router";
import { unwrap } from "@/api/client";
import { useApi, useSession, useTenantId } from "@/app/session-context";
import { ConfirmButton } from "@/ui/ConfirmButton";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { PageHeader } from "@/ui/PageHeader";
import { QueryView } from "@/ui/QueryView";
import { EMPTY_PERMISSION, fromPermission, toApi } from "./model";
import { PermissionForm } from "./PermissionForm";

function Crumbs({ name }: { name: string }) {
  const tenantId = useTenantId();
  return (
    <Breadcrumbs mb="xs">
      <Anchor component={Link} to={`/t/${tenantId}/permissions`}>
        Permissions
      </Anchor>
      <Text>{name}</Text>
    </Breadcrumbs>
  );
}

export function PermissionNew() {
  const api = useApi();
  const tenantId = useTenantId();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const back = () => navigate(`/t/${tenantId}/permissions`);
  return (
    <>
      <Crumbs name="New" />
      <PageHeader title="New permission" />
      <PermissionForm
        initial={EMPTY_PERMISSION}
        submitLabel="Create permission"
        onCancel={back}
        onSubmit={async (v) => {
          await unwrap(api.POST("/api/v1/permissions", { body: toApi(v) }));
          await queryClient.invalidateQueries({ queryKey: [tenantId, "permissions"] });
          back();
        }}
      />
    </>
  );
}

export function PermissionEdit() {
  const { id = "" } = useParams();
  const api = useApi();
  const tenantId = useTenantId();
  const session = useSession();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const back = () => navigate(`/t/${tenantId}/permissions`);
  const perm = useQuery({
    queryKey: [tenantId, "permissions", id],
    queryFn: () => unwrap(api.GET("/api/v1/permissions/{id}", { params: { path: { id } } })),
    staleTime: Infinity,
  });
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/v1/permissions/{id}", { params: { path: { id } } })),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: [tenantId, "permissions"] });
      back();
    },
  });
  return (
    <QueryView query={perm}>
      {(p) => (
        <>
          <Crumbs name={p.name} />
          <PageHeader
            title={p.name}
            actions={
              session.can("permission", "admin") && (
                <ConfirmButton
                  question={`Delete ${p.name}? Roles that hold it lose it at once.`}
                  confirmLabel="Delete permission"
                  loading={remove.isPending}
                  onConfirm={() => remove.mutate()}
                >
                  Delete
                </ConfirmButton>
              )
            }
          />
          <ErrorAlert error={remove.error} />
          <PermissionForm
            initial={fromPermission(p)}
            submitLabel="Save permission"
            onCancel={back}
            onSubmit={async (v) => {
              await unwrap(api.PATCH("/api/v1/permissions/{id}", { params: { path: { id } }, body: toApi(v) }));
              await queryClient.invalidateQueries({ queryKey: [tenantId, "permissions"] });
              back();
            }}
          />
        </>
      )}
    </QueryView>
  );
}
