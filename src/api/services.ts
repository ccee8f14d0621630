import type { TenantService } from '../tenants/service.ts';
import type { RbacService } from '../rbac/service.ts';
import type { ClientService } from '../clients/service.ts';
import type { ApiResourceService } from '../oidc/api-resources.ts';
import type { UserService } from '../users/service.ts';
import type { MfaService } from '../mfa/service.ts';
import type { CredentialService } from '../credentials/service.ts';
import type { SessionService } from '../sessions/service.ts';
import type { WebhookService } from '../webhooks/service.ts';
import type { AuditService } from '../audit/service.ts';
import type { PrivacyService } from '../privacy/service.ts';
import type { ComplianceService } from '../compliance/service.ts';
import type { IpRuleService } from '../security/ip-rules.ts';
import type { BruteForceProtection } from '../security/brute-force.ts';
import type { ApiKeyService } from '../apikeys/service.ts';
import type { ConnectorService } from '../federation/connectors/service.ts';

// What the admin API's handlers may call: services, never tables.
export interface ApiServices {
  tenants: TenantService;
  rbac: RbacService;
  clients: ClientService;
  apis: ApiResourceService;
  users: UserService;
  mfa: MfaService;
  credentials: CredentialService;
  sessions: SessionService;
  webhooks: WebhookService;
  audit: AuditService;
  privacy: PrivacyService;
  compliance: ComplianceService;
  ipRules: IpRuleService;
  apiKeys: ApiKeyService;
  connectors: ConnectorService;
  // Sign-in lockouts (an administrator lifts them).
  lockouts: Pick<BruteForceProtection, 'unlock'>;
  adminApi: string;
}
