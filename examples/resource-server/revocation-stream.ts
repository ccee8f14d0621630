// Follows the provider's revocation stream (Server-Sent Events over fetch), reconnecting with a
// pause when it drops. The provider does not replay missed events (no Last-Event-ID), so the time
// between a drop and the next connection is a gap: see README.md.
export interface RevocationStreamEvent {
  type: 'session.revoked' | 'token.revoked' | 'user.suspended';
  id: string;
  tenantId?: string;
  userId?: string;
  sessionId?: string;
  jti?: string;
  clientIds?: string[];
  at: string;
}

export interface RevocationStreamOptions {
  url: string;
  clientId: string;
  clientSecret: string;
  onEvent(event: RevocationStreamEvent): void;
  // Each time the stream is (re)established; the provider subscribes before it answers.
  onConnected?(): void;
  onProblem?(message: string): void;
}

// The provider sends a comment every 15 s: silence for longer than this means a dead connection.
const SILENCE_LIMIT_MS = 40_000;
const REFUSED_RETRY_MS = 30_000;

export function followRevocationStream(options: RevocationStreamOptions): { stop(): void } {
  const authorization = `Basic ${Buffer.from(`${encodeURIComponent(options.clientId)}:${encodeURIComponent(options.clientSecret)}`).toString('base64')}`;
  let stopped = false;
  let current: AbortController | undefined;
  let retryMs = 2_000;

  async function connectOnce(): Promise<number> {
    current = new AbortController();
    const abort = current;
    let silence = setTimeout(() => abort.abort(), SILENCE_LIMIT_MS);
    try {
      const response = await fetch(options.url, { headers: { authorization, accept: 'text/event-stream' }, signal: abort.signal });
      if (response.status !== 200 || !response.body) {
        options.onProblem?.(`revocation stream refused: ${response.status} ${await response.text().catch(() => '')}`);
        return response.status === 401 || response.status === 403 ? REFUSED_RETRY_MS : retryMs;
      }
      options.onConnected?.();
      const parser = sseParser((field, value) => {
        if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
      }, (data) => {
        try {
          options.onEvent(JSON.parse(data) as RevocationStreamEvent);
        } catch {
          options.onProblem?.('unreadable revocation event');
        }
      });
      const decoder = new TextDecoder();
      for await (const chunk of response.body) {
        clearTimeout(silence);
        silence = setTimeout(() => abort.abort(), SILENCE_LIMIT_MS);
        parser(decoder.decode(chunk, { stream: true }));
      }
      options.onProblem?.('revocation stream ended');
    } catch (error) {
      if (!stopped) options.onProblem?.(`revocation stream failed: ${(error as Error).message}`);
    } finally {
      clearTimeout(silence);
    }
    return retryMs;
  }

  void (async () => {
    while (!stopped) {
      const pause = await connectOnce();
      if (stopped) break;
      await new Promise((resolve) => setTimeout(resolve, pause).unref());
    }
  })();

  return {
    stop() {
      stopped = true;
      current?.abort();
    },
  };
}

// The text/event-stream format: lines "field: value", events end at a blank line, ":" comments
// (lines end in LF or CRLF; the lone CR the format also allows is not used by the provider).
function sseParser(onField: (field: string, value: string) => void, onData: (data: string) => void): (text: string) => void {
  let buffer = '';
  let data: string[] = [];
  return (text) => {
    buffer += text;
    const lines = buffer.split(/\r?\n/);
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (data.length) onData(data.join('\n'));
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else onField(field, value);
    }
  };
}
