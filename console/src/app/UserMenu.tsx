import { useState } from "react";
import { Button, Menu, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { ChangePassword } from "@/features/auth/ChangePassword";
import { useMe, useSession } from "./session-context";

export function UserMenu() {
  const session = useSession();
  const me = useMe();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [changing, setChanging] = useState(false);
  return (
    <>
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <Button variant="subtle" aria-label={`Account: ${me.email ?? me.name}`}>
          {me.email ?? me.name}
        </Button>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>
          <Text size="xs">Roles: {me.roles.join(", ") || "none"}</Text>
        </Menu.Label>
        {!me.is_service_account && <Menu.Item onClick={() => setChanging(true)}>Change password</Menu.Item>}
        <Menu.Item
          onClick={async () => {
            await session.logout();
            queryClient.clear();
            navigate("/login");
          }}
        >
          Log out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
    <ChangePassword opened={changing} onClose={() => setChanging(false)} />
    </>
  );
}
