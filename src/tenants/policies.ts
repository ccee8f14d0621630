// Tenant policies: stored with the tenant, enforced by the login, session and network code.
import { z } from 'zod';

const cidr = z.string().refine(isCidr, { message: 'must be an IPv4 or IPv6 CIDR range, such as 10.0.0.0/8 or 2001:db8::/32' });

export const tenantPoliciesSchema = z
  .object({
    mfa: z.enum(['off', 'admins', 'all']).default('off'),
    // required: a self-registered user verifies the e-mail address before signing in.
    emailVerification: z.enum(['off', 'required']).default('off'),
    password: z
      .object({
        minLength: z.number().int().min(8).max(256).default(12),
        refuseCommon: z.boolean().default(true),
        historySize: z.number().int().min(0).max(50).default(0),
        maxAgeDays: z.number().int().min(0).max(3650).default(0),
      })
      .strict()
      .default({ minLength: 12, refuseCommon: true, historySize: 0, maxAgeDays: 0 }),
    sessions: z
      .object({
        idleTimeoutSeconds: z.number().int().positive().max(31_536_000).optional(),
        absoluteLifetimeSeconds: z.number().int().positive().max(31_536_000).optional(),
        // How long a remembered (persistent) session cookie lives; 0: the cookie ends with the browser.
        rememberMeLifetimeSeconds: z.number().int().min(0).max(31_536_000).optional(),
        maxConcurrent: z.number().int().positive().max(1000).optional(),
        onLimit: z.enum(['refuse', 'end_oldest']).default('end_oldest'),
      })
      .strict()
      .default({ onLimit: 'end_oldest' }),
    allowedIpRanges: z.array(cidr).max(500).default([]),
  })
  .strict();

export type TenantPolicies = z.infer<typeof tenantPoliciesSchema>;

function isCidr(value: string): boolean {
  const [address, prefix, ...rest] = value.split('/');
  if (rest.length || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return false;
  const bits = Number(prefix);
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return bits <= 32 && address.split('.').every((part) => Number(part) <= 255);
  return bits <= 128 && /^[0-9a-f:]+$/i.test(address) && address.includes(':') && (address.match(/::/g) ?? []).length <= 1;
}
