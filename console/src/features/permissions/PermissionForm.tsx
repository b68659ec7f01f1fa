// Creating or changing a permission. The API validates it with the gateway's
// own compiler and answers 422 with messages per field; they are shown at
// the field they name (conditions and field rules at their sections).
import { useState } from "react";
import {
  Autocomplete,
  Button,
  CloseButton,
  Fieldset,
  Group,
  MultiSelect,
  NumberInput,
  SegmentedControl,
  Select,
  Stack,
  Switch,
  TagsInput,
  Text,
  TextInput,
  Textarea,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useQuery } from "@tanstack/react-query";
import { unwrap } from "@/api/client";
import { listParams } from "@/api/lists";
import { useApi, useMe, useTenantId } from "@/app/session-context";
import { ErrorAlert } from "@/ui/ErrorAlert";
import { reportToForm } from "@/ui/forms";
import {
  ATTRIBUTE_OPS,
  CONDITION_TYPES,
  FIELD_RULES,
  TIERS,
  WEEKDAYS,
  emptyCondition,
  type ConditionType,
  type PermissionValues,
} from "./model";

const ACTIONS = ["read", "create", "update", "delete"];
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

export function PermissionForm({
  initial,
  submitLabel,
  onSubmit,
  onCancel,
}: {
  initial: PermissionValues;
  submitLabel: string;
  /** Sends the values; rejects with the API's failure. */
  onSubmit: (v: PermissionValues) => Promise<unknown>;
  onCancel: () => void;
}) {
  const me = useMe();
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const form = useForm<PermissionValues>({ initialValues: initial });
  const fieldNames = useFieldNames(form.values.resource_type);

  const sectionError = (name: "conditions" | "field_rules") =>
    typeof form.errors[name] === "string" ? (
      <Text c="red" size="sm" role="alert" id={`${name}-error`} data-testid={`${name}-error`}>
        {form.errors[name]}
      </Text>
    ) : null;

  return (
    <form
      aria-label={submitLabel}
      onSubmit={form.onSubmit(async (v) => {
        setFailure(null);
        setBusy(true);
        try {
          await onSubmit(v);
        } catch (e) {
          setFailure(reportToForm(form, e, { resource: "resource_pattern", fields: "field_rules" }));
        } finally {
          setBusy(false);
        }
      })}
    >
      <Stack>
        <Group grow align="flex-start">
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <div>
            <Text size="sm" fw={500} id="effect-label">
              Effect
            </Text>
            <SegmentedControl
              aria-labelledby="effect-label"
              data={[
                { value: "allow", label: "Allow" },
                { value: "deny", label: "Deny (wins over allow)" },
              ]}
              {...form.getInputProps("effect")}
            />
            {typeof form.errors.effect === "string" && (
              <Text c="red" size="sm">
                {form.errors.effect}
              </Text>
            )}
          </div>
        </Group>
        <Textarea label="Description" autosize minRows={1} {...form.getInputProps("description")} />
        <Group grow align="flex-start">
          <TextInput
            label="Resource type"
            description="e.g. vessel, voyage, port_call; * for every type"
            required
            {...form.getInputProps("resource_type")}
          />
          <TextInput
            label="Resource pattern"
            description="* every resource, an exact id (v-a1), or a prefix (v-*)"
            {...form.getInputProps("resource_pattern")}
          />
        </Group>
        <Group grow align="flex-start">
          <TagsInput
            label="Actions"
            description="read, create, update, delete or a route's own action"
            data={ACTIONS}
            {...form.getInputProps("actions")}
          />
          <Select
            label="Tenant scope"
            data={[
              { value: "own", label: "own tenant" },
              { value: "own_and_children", label: "own tenant and sub-tenants" },
              ...(me.platform_admin ? [{ value: "any", label: "any tenant (platform only)" }] : []),
            ]}
            allowDeselect={false}
            {...form.getInputProps("tenant_scope")}
          />
        </Group>
        <Switch label="Active" {...form.getInputProps("is_active", { type: "checkbox" })} />

        <Fieldset legend="Conditions (all must hold)" aria-describedby="conditions-error">
          <Stack gap="sm">
            {form.values.conditions.length === 0 && (
              <Text size="sm" c="dimmed">
                No conditions: the permission applies whenever role, resource and action match.
              </Text>
            )}
            {form.values.conditions.map((c, i) => (
              <Group key={i} align="flex-end" gap="xs" wrap="wrap" data-testid={`condition-${i}`}>
                <Select
                  label={`Condition ${i + 1}`}
                  data={CONDITION_TYPES.map((t) => ({ value: t.value, label: t.label }))}
                  allowDeselect={false}
                  w={210}
                  value={c.type}
                  onChange={(t) => t && form.setFieldValue(`conditions.${i}`, emptyCondition(t as ConditionType))}
                />
                {c.type === "attribute" && (
                  <>
                    <TextInput label="Attribute" placeholder="department" w={150} {...form.getInputProps(`conditions.${i}.name`)} />
                    <Select label="Operator" data={ATTRIBUTE_OPS} w={110} allowDeselect={false} {...form.getInputProps(`conditions.${i}.op`)} />
                    <TextInput
                      label="Value"
                      placeholder='port-ops or ["a","b"]'
                      w={180}
                      {...form.getInputProps(`conditions.${i}.value`)}
                    />
                  </>
                )}
                {c.type === "client_ip" && (
                  <TagsInput
                    label="CIDRs"
                    placeholder="10.0.0.0/8, press Enter"
                    style={{ flex: 1, minWidth: 240 }}
                    {...form.getInputProps(`conditions.${i}.cidrs`)}
                  />
                )}
                {c.type === "time" && (
                  <>
                    <NumberInput label="From hour" min={0} max={24} w={100} {...form.getInputProps(`conditions.${i}.from`)} />
                    <NumberInput label="To hour" min={0} max={24} w={100} {...form.getInputProps(`conditions.${i}.to`)} />
                    <MultiSelect label="Weekdays" data={WEEKDAYS} w={260} {...form.getInputProps(`conditions.${i}.weekdays`)} />
                  </>
                )}
                {c.type === "risk" && (
                  <NumberInput
                    label="Highest risk score"
                    min={0}
                    max={1}
                    step={0.05}
                    decimalScale={2}
                    w={160}
                    {...form.getInputProps(`conditions.${i}.max`)}
                  />
                )}
                {c.type === "method" && (
                  <MultiSelect label="Methods" data={METHODS} w={300} {...form.getInputProps(`conditions.${i}.methods`)} />
                )}
                <CloseButton
                  size="lg"
                  aria-label={`Remove condition ${i + 1}`}
                  onClick={() => form.removeListItem("conditions", i)}
                />
              </Group>
            ))}
            {sectionError("conditions")}
            <Group>
              <Button variant="light" size="xs" onClick={() => form.insertListItem("conditions", emptyCondition())}>
                Add condition
              </Button>
            </Group>
          </Stack>
        </Fieldset>

        <Fieldset legend="Field rules (three tiers)" aria-describedby="field_rules-error">
          <Stack gap="sm">
            <Text size="sm" c="dimmed">
              Fields not named keep the gateway's default. Core and platform-dynamic fields are defined by the platform,
              tenant-specific ones by the tenant (see Field definitions).
            </Text>
            {form.values.field_rules.map((r, i) => (
              <Group key={i} align="flex-end" gap="xs">
                <Select label="Tier" data={[...TIERS]} allowDeselect={false} w={170} {...form.getInputProps(`field_rules.${i}.tier`)} />
                <Autocomplete
                  label="Field"
                  data={fieldNames[r.tier] ?? []}
                  w={200}
                  {...form.getInputProps(`field_rules.${i}.field`)}
                />
                <Select label="Rule" data={FIELD_RULES} allowDeselect={false} w={120} {...form.getInputProps(`field_rules.${i}.rule`)} />
                <CloseButton
                  size="lg"
                  aria-label={`Remove field rule ${i + 1}`}
                  onClick={() => form.removeListItem("field_rules", i)}
                />
              </Group>
            ))}
            {sectionError("field_rules")}
            <Group>
              <Button
                variant="light"
                size="xs"
                onClick={() => form.insertListItem("field_rules", { tier: "core", field: "", rule: "read" })}
              >
                Add field rule
              </Button>
            </Group>
          </Stack>
        </Fieldset>

        <ErrorAlert error={failure} title="The API refused the permission" />
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
          <Button type="submit" loading={busy}>
            {submitLabel}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** Field names defined for an entity type, per tier (suggestions only). */
function useFieldNames(entity: string): Partial<Record<string, string[]>> {
  const api = useApi();
  const tenantId = useTenantId();
  const type = entity.trim();
  const q = useQuery({
    queryKey: [tenantId, "field-definitions", "names", type],
    enabled: type !== "" && type !== "*",
    queryFn: () =>
      unwrap(api.GET("/api/v1/field-definitions", { params: { query: listParams({ limit: 200, entity_type: type }) } })),
  });
  const out: Record<string, string[]> = {};
  for (const f of q.data?.items ?? []) (out[f.tier] ??= []).push(f.field_name);
  return out;
}
