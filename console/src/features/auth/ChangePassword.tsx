// Changing one's own password: the API checks the current one and its
// password policy; both answer at their fields.
import { useMemo, useState } from "react";
import { Modal, PasswordInput, Stack } from "@mantine/core";
import { useForm } from "@mantine/form";
import { notifications } from "@mantine/notifications";
import { useMutation } from "@tanstack/react-query";
import { createApi, unwrap } from "@/api/client";
import { useMe, useSession } from "@/app/session-context";
import { FormActions } from "@/ui/FormActions";
import { reportToForm } from "@/ui/forms";

export function ChangePassword({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const session = useSession();
  const me = useMe();
  // One's own account lives in one's own tenant, whatever tenant the page acts on.
  const api = useMemo(() => createApi(session, me.tenant_id), [session, me.tenant_id]);
  const [failure, setFailure] = useState<unknown>(null);
  const form = useForm({ initialValues: { current_password: "", new_password: "" } });
  const change = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(api.POST("/api/v1/users/{id}/change-password", { params: { path: { id: me.user_id } }, body: v })),
    onSuccess: () => {
      notifications.show({ message: "Password changed; your other sessions were ended." });
      form.reset();
      onClose();
    },
    onError: (e) => setFailure(reportToForm(form, e)),
  });
  return (
    <Modal opened={opened} onClose={onClose} title="Change your password">
      <form onSubmit={form.onSubmit((v) => (setFailure(null), change.mutate(v)))}>
        <Stack>
          <PasswordInput
            label="Current password"
            autoComplete="current-password"
            required
            {...form.getInputProps("current_password")}
          />
          <PasswordInput
            label="New password"
            description="The API's policy: 8–128 characters, an upper-case letter, a lower-case letter and a digit."
            autoComplete="new-password"
            required
            {...form.getInputProps("new_password")}
          />
          <FormActions failure={failure} onCancel={onClose} submitLabel="Change password" busy={change.isPending} />
        </Stack>
      </form>
    </Modal>
  );
}
