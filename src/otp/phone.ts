// Phone numbers as the one-time-code channels and the user records keep them: E.164 (+4915112345678).
// Input may be written the national way with spaces, dashes or brackets, as long as it carries a
// country code (+49 or 0049) or the caller knows the region it was typed in.
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';

const MAX_INPUT = 40;

// The number in E.164, or undefined when it is not a valid phone number.
export function toE164(input: string, defaultRegion?: string): string | undefined {
  if (typeof input !== 'string' || input.length > MAX_INPUT) return undefined;
  // "00" is the international prefix in most of the world; without a region it would not parse.
  const text = input.trim().replace(/^00(?=[1-9])/, '+');
  if (!/^[+0-9][0-9 ().\-/]*$/.test(text)) return undefined;
  const region = defaultRegion && /^[A-Z]{2}$/.test(defaultRegion) ? (defaultRegion as CountryCode) : undefined;
  const parsed = parsePhoneNumberFromString(text, region);
  return parsed?.isValid() ? parsed.number : undefined;
}

// A number for logs and pages that must not reveal it whole: +49••••••••78.
export function maskPhone(e164: string): string {
  return e164.length <= 6 ? '••••' : `${e164.slice(0, 3)}${'•'.repeat(e164.length - 5)}${e164.slice(-2)}`;
}
