// Tenant policies: stored with the tenant, enforced by the login and session code. Network
// restrictions are the tenant's IP rules (src/security/ip-rules.ts), not a policy.
import { z } from 'zod';

export const LOCKOUT_DEFAULTS = {
  maxFailures: 10,
  failureWindowSeconds: 900,
  baseLockoutSeconds: 60,
  maxLockoutSeconds: 3600,
  permanentAfterLockouts: 0,
  lockoutMemorySeconds: 86_400,
  delayStepMs: 250,
  maxDelayMs: 2000,
};

// Consecutive failed passwords per identifier: a small growing delay, then a lockout that doubles
// with each repetition (base .. max), and optionally a permanent one only an administrator lifts.
const lockoutPolicySchema = z
  .object({
    // Failed passwords in a row (within failureWindowSeconds) that lock the identifier; 0: never.
    maxFailures: z.number().int().min(0).max(1000).default(LOCKOUT_DEFAULTS.maxFailures),
    failureWindowSeconds: z.number().int().min(1).max(86_400).default(LOCKOUT_DEFAULTS.failureWindowSeconds),
    baseLockoutSeconds: z.number().int().min(1).max(86_400).default(LOCKOUT_DEFAULTS.baseLockoutSeconds),
    maxLockoutSeconds: z.number().int().min(1).max(2_592_000).default(LOCKOUT_DEFAULTS.maxLockoutSeconds),
    // The Nth lockout (without a successful sign-in between) is permanent; 0: never.
    permanentAfterLockouts: z.number().int().min(0).max(100).default(LOCKOUT_DEFAULTS.permanentAfterLockouts),
    // How long earlier lockouts count towards the back-off and the permanent lockout.
    lockoutMemorySeconds: z.number().int().min(1).max(2_592_000).default(LOCKOUT_DEFAULTS.lockoutMemorySeconds),
    // Added to the answer of each failed password after the first, up to maxDelayMs.
    delayStepMs: z.number().int().min(0).max(5000).default(LOCKOUT_DEFAULTS.delayStepMs),
    maxDelayMs: z.number().int().min(0).max(10_000).default(LOCKOUT_DEFAULTS.maxDelayMs),
  })
  .strict()
  .refine((policy) => policy.maxLockoutSeconds >= policy.baseLockoutSeconds, { message: 'maxLockoutSeconds must be at least baseLockoutSeconds', path: ['maxLockoutSeconds'] });

export type LockoutPolicy = z.infer<typeof lockoutPolicySchema>;

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
    // Password sign-in brute-force protection (src/security/brute-force.ts, docs/login-experience.md).
    lockout: lockoutPolicySchema.default(LOCKOUT_DEFAULTS),
    // Sign-in with a code sent by e-mail, SMS or WhatsApp, and such codes as a second factor
    // (docs/one-time-codes.md). Off until an administrator lists the channels.
    oneTimeCodes: z
      .object({
        signIn: z.array(z.enum(['email', 'sms', 'whatsapp'])).max(3).refine(unique, { message: 'must not repeat a channel' }).default([]),
        secondFactor: z.array(z.enum(['sms', 'whatsapp', 'email'])).max(3).refine(unique, { message: 'must not repeat a channel' }).default([]),
      })
      .strict()
      .default({ signIn: [], secondFactor: [] }),
  })
  .strict();

export type TenantPolicies = z.infer<typeof tenantPoliciesSchema>;

function unique(values: string[]): boolean {
  return new Set(values).size === values.length;
}
