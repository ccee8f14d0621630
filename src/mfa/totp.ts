// TOTP as authenticator apps do it (RFC 6238: SHA-1, 6 digits, 30-second steps), through otplib.
import { generateSecret, generateSync, generateURI, verify } from 'otplib';

export const TOTP_PERIOD_SECONDS = 30;
const SECRET_BYTES = 20;
// One step either side of now: a phone clock a little off, or a code typed just as it changed.
const DRIFT_STEPS = 1;

export function newTotpSecret(): string {
  return generateSecret({ length: SECRET_BYTES });
}

export function otpauthUri(secret: string, labels: { accountName: string; issuer: string }): string {
  return generateURI({ issuer: labels.issuer, label: labels.accountName, secret });
}

// What someone types: six digits, perhaps with spaces ("123 456"). Anything else is no code.
export function normaliseTotpCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > 32) return undefined;
  const code = input.replace(/\s+/g, '');
  return /^\d{6}$/.test(code) ? code : undefined;
}

// The time step the code belongs to, when it matches one within the drift window after
// `afterStep`; undefined otherwise.
export async function matchingTimeStep(secret: string, code: string, at: Date, afterStep?: number): Promise<number | undefined> {
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(at.getTime() / 1000),
    epochTolerance: DRIFT_STEPS * TOTP_PERIOD_SECONDS,
    ...(afterStep === undefined ? {} : { afterTimeStep: afterStep }),
  });
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

// The code an authenticator app shows for this secret at `at` (tests and the browser test use it).
export function currentTotpCode(secret: string, at: Date = new Date()): string {
  return generateSync({ secret, epoch: Math.floor(at.getTime() / 1000) });
}
