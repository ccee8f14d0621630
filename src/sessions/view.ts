// A device session as the APIs show it (account and admin): never the provider's session id.
import type { DeviceSession } from './service.ts';

export function sessionView(session: DeviceSession) {
  return {
    id: session.id,
    browser: session.browser,
    os: session.os,
    device: session.device,
    ip: session.ip,
    clientIds: session.clientIds,
    amr: session.amr,
    createdAt: session.createdAt.toISOString(),
    lastActiveAt: session.lastActiveAt.toISOString(),
  };
}
