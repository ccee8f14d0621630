// How a tenant's pages look: its name, a logo and two colours. The logo is stored as a data: URI
// (PNG, JPEG, WebP or SVG, at most 64 KiB) so pages never load anything from another origin.
import { z } from 'zod';
import { NotFoundError } from '../errors.ts';

const colour = z.string().regex(/^#[0-9a-fA-F]{6}$/, { message: 'must be a colour such as #2457c5' });
const MAX_LOGO = 64 * 1024;

export const brandingSchema = z
  .object({
    logo: z
      .string()
      .max(Math.ceil((MAX_LOGO * 4) / 3) + 64, { message: 'the logo may be at most 64 KiB' })
      .regex(/^data:image\/(png|jpeg|webp|svg\+xml);base64,[A-Za-z0-9+/]+=*$/, { message: 'must be a base64 data: URI of a PNG, JPEG, WebP or SVG image' })
      .optional(),
    primaryColor: colour.optional(),
    backgroundColor: colour.optional(),
  })
  .strict();

export type TenantBranding = z.infer<typeof brandingSchema>;

export interface Branding {
  name: string;
  logo?: string;
  primaryColor: string;
  backgroundColor?: string;
}

export const DEFAULT_BRANDING: Branding = { name: '', primaryColor: '#2457c5' };

export function brandingFor(tenant: { displayName: string; platform: boolean; branding: TenantBranding }): Branding {
  return {
    name: tenant.platform ? '' : tenant.displayName,
    logo: tenant.branding.logo,
    primaryColor: tenant.branding.primaryColor ?? DEFAULT_BRANDING.primaryColor,
    backgroundColor: tenant.branding.backgroundColor,
  };
}

// A tenant's branding by id, for pages reached outside a sign-in (logout); undefined when the
// tenant is gone.
export function brandingLookup(tenants: { get(id: string): Promise<{ displayName: string; platform: boolean; branding: TenantBranding }> }) {
  return async (tenantId: string): Promise<Branding | undefined> => {
    try {
      return brandingFor(await tenants.get(tenantId));
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  };
}
