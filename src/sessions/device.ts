// Human labels for a User-Agent ("Firefox 128", "Windows 10", "mobile · iPhone"), parsed with
// bowser. Stored with the session, so the list shows what signed in, not what asks now.
import Bowser from 'bowser';

const MAX_USER_AGENT = 512;
const MAX_LABEL = 64;

export interface DeviceLabels {
  userAgent: string | null;
  browser: string | null;
  os: string | null;
  device: string | null;
}

function label(...parts: Array<string | undefined>): string | null {
  const text = parts.filter((part) => part && part.trim()).join(' ').trim();
  return text ? text.slice(0, MAX_LABEL) : null;
}

function majorMinor(version: string | undefined): string | undefined {
  return version?.split('.').slice(0, 2).join('.').replace(/\.0$/, '');
}

export function deviceLabels(userAgent: string | undefined): DeviceLabels {
  // eslint-disable-next-line no-control-regex
  const ua = (userAgent ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, MAX_USER_AGENT);
  if (!ua) return { userAgent: null, browser: null, os: null, device: null };
  const parsed = Bowser.parse(ua);
  const platform = parsed.platform ?? {};
  return {
    userAgent: ua,
    browser: label(parsed.browser?.name, majorMinor(parsed.browser?.version)),
    os: label(parsed.os?.name, parsed.os?.versionName ?? majorMinor(parsed.os?.version)),
    device: label(platform.type, platform.model ?? platform.vendor),
  };
}
