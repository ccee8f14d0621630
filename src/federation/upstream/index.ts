// The upstream protocol client for federation: sends a person to a connector's upstream identity
// provider and turns the callback into a verified profile. The login glue keeps the transaction
// server-side between the two calls; failures are UpstreamErrors whose `failure` says what to tell
// the person and the audit trail.
import type { ConnectorWithSecrets, UpstreamProfile } from '../connector.ts';
import { createGenesysFlow } from './genesys.ts';
import { createOAuth2Flow } from './oauth2.ts';
import { createOidcFlow } from './oidc.ts';
import { createOutboundFetch } from './outbound-fetch.ts';
import type { UpstreamClientOptions, UpstreamTransaction } from './types.ts';

export type { UpstreamClientOptions, UpstreamTransaction } from './types.ts';

export function createUpstreamClient(options: UpstreamClientOptions) {
  const outboundFetch = createOutboundFetch(options);
  const oidc = createOidcFlow(options, outboundFetch);
  const oauth2 = createOAuth2Flow(outboundFetch);
  const genesys = createGenesysFlow(oauth2);
  const flowOf = (connector: ConnectorWithSecrets) => {
    switch (connector.kind) {
      case 'oidc':
        return oidc;
      case 'genesys':
        return genesys;
      default:
        return { begin: oauth2.beginConnector, complete: oauth2.complete };
    }
  };

  return {
    // The URL to send the browser to, and what to keep server-side until the callback.
    begin(connector: ConnectorWithSecrets, redirectUri: string, extra?: { loginHint?: string }): Promise<{ url: string; transaction: UpstreamTransaction }> {
      return flowOf(connector).begin(connector, redirectUri, extra);
    },
    // callback: the query parameters the upstream sent back. Throws UpstreamError with the right `failure`.
    complete(connector: ConnectorWithSecrets, transaction: UpstreamTransaction, callback: URLSearchParams): Promise<UpstreamProfile> {
      return flowOf(connector).complete(connector, transaction, callback);
    },
  };
}

export type UpstreamClient = ReturnType<typeof createUpstreamClient>;
