// The MFA domain through its service, on every backend: TOTP enrolment and confirmation, drift,
// replay (also concurrent), re-enrolment, backup codes (single use, normalised, regenerated),
// secrets sealed and codes hashed at rest, tenant isolation, and rows gone with a deleted user.
// The service runs on a fixed clock, so no test depends on where in a 30-second step it runs.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV } from '../helpers/instance.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { createMfaService, PENDING_ENROLMENT_SECONDS, type MfaService } from '../../src/mfa/service.ts';
import { currentTotpCode } from '../../src/mfa/totp.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { ConflictError, NotFoundError } from '../../src/errors.ts';

const STEP_MS = 30_000;
const LABELS = { accountName: 'ada@example.com', issuer: 'Example IdP' };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

forEachBackend('mfa service', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  let mfa: MfaService;
  // The middle of a time step; tests move the clock in whole steps from here.
  const base = Math.floor(Date.now() / STEP_MS) * STEP_MS + STEP_MS / 2;
  let clock = new Date(base);
  const at = (steps: number) => new Date(base + steps * STEP_MS);

  async function tenant(): Promise<string> {
    const id = randomUUID();
    await runtime.db('tenants').insert({ id, slug: `t-${id.slice(0, 8)}`, display_name: 'Test tenant' });
    return id;
  }

  async function user(tenantId: string): Promise<string> {
    return (await runtime.users.create(tenantId, { email: `${randomUUID().slice(0, 8)}@example.com` })).id;
  }

  // A user with TOTP confirmed at step 0 (so step 0 is used).
  async function enrolled(tenantId: string): Promise<{ userId: string; secret: string; backupCodes: string[] }> {
    const userId = await user(tenantId);
    const { secret } = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
    clock = at(0);
    const confirmed = await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret, at(0)));
    expect(confirmed).to.not.equal(undefined);
    return { userId, secret, backupCodes: confirmed!.backupCodes };
  }

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
    mfa = createMfaService({ db: runtime.db, keyEncryptionKey: runtime.secrets.keyEncryptionKey, audit: runtime.audit, now: () => clock });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  describe('TOTP enrolment', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('starts an enrolment with a 20-byte base32 secret, an otpauth URI and an inline SVG QR code, not yet active', async () => {
      const userId = await user(tenantId);
      const enrolment = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      expect(enrolment.secret).to.match(/^[A-Z2-7]{32}$/);
      expect(enrolment.otpauthUri).to.match(/^otpauth:\/\/totp\/Example%20IdP:ada%40example\.com\?/);
      expect(new URL(enrolment.otpauthUri).searchParams.get('secret')).to.equal(enrolment.secret);
      expect(enrolment.qrSvg).to.match(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(await mfa.status(tenantId, userId)).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
      clock = at(0);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(enrolment.secret, at(0)))).to.equal(false);
    });

    it('confirms only with a right code, returns 10 distinct backup codes once, and then counts as active', async () => {
      const userId = await user(tenantId);
      clock = at(0);
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, '123456')).to.equal(undefined, 'nothing pending');
      const { secret } = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret, at(3)))).to.equal(undefined, 'wrong code');
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, 'not a code')).to.equal(undefined);
      const confirmed = await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret, at(0)));
      expect(confirmed!.backupCodes).to.have.length(10);
      expect(new Set(confirmed!.backupCodes).size).to.equal(10);
      for (const code of confirmed!.backupCodes) expect(code).to.match(/^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$/);
      const status = await mfa.status(tenantId, userId);
      expect(status.totp).to.equal(true);
      expect(status.confirmedAt).to.be.instanceOf(Date);
      expect(status.backupCodesRemaining).to.equal(10);
      // Confirmed once: a second confirmation finds nothing pending.
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret, at(1)))).to.equal(undefined);
      // The confirming code's step is used up: it does not also pass a login.
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(0)))).to.equal(false);
    });

    it('accepts the confirmation of an enrolment for 30 minutes after it started, and then counts it as never started', async () => {
      const startedAt = async (userId: string) =>
        new Date((await withTenant(runtime.db, tenantId, (trx) => trx('mfa_totp').where({ tenant_id: tenantId, user_id: userId }).first('pending_created_at'))).pending_created_at);
      const minutes = (from: Date, count: number) => new Date(from.getTime() + count * 60_000);

      const late = await user(tenantId);
      const { secret: stale } = await mfa.beginTotpEnrolment(tenantId, late, LABELS);
      clock = minutes(await startedAt(late), PENDING_ENROLMENT_SECONDS / 60 + 1);
      expect((await mfa.enrolments(tenantId, late)).totp.enrolmentPendingSince, 'no longer pending').to.equal(null);
      expect(await mfa.confirmTotpEnrolment(tenantId, late, currentTotpCode(stale, clock))).to.equal(undefined);
      expect((await mfa.status(tenantId, late)).totp).to.equal(false);

      const inTime = await user(tenantId);
      const { secret } = await mfa.beginTotpEnrolment(tenantId, inTime, LABELS);
      const started = await startedAt(inTime);
      clock = minutes(started, PENDING_ENROLMENT_SECONDS / 60 - 1);
      expect((await mfa.enrolments(tenantId, inTime)).totp.enrolmentPendingSince?.getTime()).to.equal(started.getTime());
      expect(await mfa.confirmTotpEnrolment(tenantId, inTime, currentTotpCode(secret, clock))).to.have.property('backupCodes');
      expect((await mfa.status(tenantId, inTime)).totp).to.equal(true);
      clock = at(0);
    });

    it('keeps the active secret during a new enrolment and replaces it only when the new one is confirmed', async () => {
      const { userId, secret: first } = await enrolled(tenantId);
      const { secret: second } = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      const { secret: third } = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      expect(new Set([first, second, third]).size).to.equal(3);
      clock = at(1);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(first, at(1)))).to.equal(true);
      expect((await mfa.status(tenantId, userId)).totp).to.equal(true);
      clock = at(2);
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(second, at(2)))).to.equal(undefined, 'replaced by the restart');
      expect(await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(third, at(2)))).to.not.equal(undefined);
      clock = at(3);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(first, at(3)))).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(third, at(3)))).to.equal(true);
    });

    it('refuses an enrolment for a user of another tenant or an unknown user, and bad labels', async () => {
      const other = await tenant();
      const stranger = await user(other);
      expect(await rejection(mfa.beginTotpEnrolment(tenantId, stranger, LABELS))).to.be.instanceOf(NotFoundError);
      expect(await rejection(mfa.beginTotpEnrolment(tenantId, randomUUID(), LABELS))).to.be.instanceOf(NotFoundError);
      expect(await rejection(mfa.beginTotpEnrolment(tenantId, 'not-a-uuid', LABELS))).to.be.instanceOf(NotFoundError);
      expect(await rejection(mfa.beginTotpEnrolment(tenantId, await user(tenantId), { accountName: '', issuer: 'x' }))).to.have.property('status', 422);
      expect((await runtime.db('mfa_totp').where({ user_id: stranger })).length).to.equal(0);
    });
  });

  describe('TOTP verification', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('accepts the codes of the previous and the next step, and refuses codes two steps away', async () => {
      const { userId, secret } = await enrolled(tenantId);
      clock = at(10);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(8)))).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(12)))).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(9)))).to.equal(true);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(11)))).to.equal(true);
    });

    it('accepts a code once: a replay, and an older step after a newer one, are refused', async () => {
      const { userId, secret } = await enrolled(tenantId);
      clock = at(5);
      const code = currentTotpCode(secret, at(5));
      expect(await mfa.verifyTotp(tenantId, userId, code)).to.equal(true);
      expect(await mfa.verifyTotp(tenantId, userId, code)).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(4)))).to.equal(false);
      clock = at(6);
      expect(await mfa.verifyTotp(tenantId, userId, code)).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(6)))).to.equal(true);
    });

    it('lets exactly one of many concurrent requests with the same code through', async () => {
      const { userId, secret } = await enrolled(tenantId);
      clock = at(20);
      const code = currentTotpCode(secret, at(20));
      const results = await Promise.all(Array.from({ length: 8 }, () => mfa.verifyTotp(tenantId, userId, code)));
      expect(results.filter(Boolean)).to.have.length(1);
    });

    it('answers false, without throwing, for malformed codes and unknown users; spaces in a code are fine', async () => {
      const { userId, secret } = await enrolled(tenantId);
      clock = at(30);
      for (const bad of ['', 'abcdef', '12345', '1234567', '1'.repeat(10_000), undefined as never, 123456 as never]) {
        expect(await mfa.verifyTotp(tenantId, userId, bad)).to.equal(false);
      }
      expect(await mfa.verifyTotp(tenantId, randomUUID(), currentTotpCode(secret, at(30)))).to.equal(false);
      expect(await mfa.verifyTotp(tenantId, 'nobody', currentTotpCode(secret, at(30)))).to.equal(false);
      const code = currentTotpCode(secret, at(30));
      expect(await mfa.verifyTotp(tenantId, userId, `${code.slice(0, 3)} ${code.slice(3)}`)).to.equal(true);
    });

    it('does not accept one tenant’s user’s code in another tenant', async () => {
      const { userId, secret } = await enrolled(tenantId);
      const other = await tenant();
      clock = at(40);
      expect(await mfa.verifyTotp(other, userId, currentTotpCode(secret, at(40)))).to.equal(false);
      expect(await mfa.status(other, userId)).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(40)))).to.equal(true);
    });
  });

  describe('backup codes', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('works once per code', async () => {
      const { userId, backupCodes } = await enrolled(tenantId);
      expect(await mfa.verifyBackupCode(tenantId, userId, backupCodes[0])).to.equal(true);
      expect(await mfa.verifyBackupCode(tenantId, userId, backupCodes[0])).to.equal(false);
      expect((await mfa.status(tenantId, userId)).backupCodesRemaining).to.equal(9);
      const results = await Promise.all(Array.from({ length: 6 }, () => mfa.verifyBackupCode(tenantId, userId, backupCodes[1])));
      expect(results.filter(Boolean)).to.have.length(1);
      expect((await mfa.status(tenantId, userId)).backupCodesRemaining).to.equal(8);
    });

    it('ignores case, spaces and dashes, and refuses what cannot be a code', async () => {
      const { userId, backupCodes } = await enrolled(tenantId);
      expect(await mfa.verifyBackupCode(tenantId, userId, ` ${backupCodes[2].toUpperCase().replace('-', ' ')} `)).to.equal(true);
      expect(await mfa.verifyBackupCode(tenantId, userId, backupCodes[3].replace('-', ''))).to.equal(true);
      const chunked = backupCodes[4].replace('-', '').replace(/(..)/g, '$1-');
      expect(await mfa.verifyBackupCode(tenantId, userId, chunked)).to.equal(true);
      for (const bad of ['', 'xxxxx-xxxxx', 'a'.repeat(10_000), undefined as never]) {
        expect(await mfa.verifyBackupCode(tenantId, userId, bad)).to.equal(false);
      }
      expect(await mfa.verifyBackupCode(tenantId, randomUUID(), backupCodes[5])).to.equal(false);
      expect(await mfa.verifyBackupCode(await tenant(), userId, backupCodes[5])).to.equal(false);
      expect((await mfa.status(tenantId, userId)).backupCodesRemaining).to.equal(7);
    });

    it('regenerates: the old codes stop working, the new ones work', async () => {
      const { userId, backupCodes: old } = await enrolled(tenantId);
      const fresh = await mfa.regenerateBackupCodes(tenantId, userId);
      expect(fresh).to.have.length(10);
      expect(fresh.filter((code) => old.includes(code))).to.have.length(0);
      for (const code of old) expect(await mfa.verifyBackupCode(tenantId, userId, code)).to.equal(false);
      expect(await mfa.verifyBackupCode(tenantId, userId, fresh[9])).to.equal(true);
      expect((await mfa.status(tenantId, userId)).backupCodesRemaining).to.equal(9);
    });

    it('cannot be regenerated without an active TOTP', async () => {
      const userId = await user(tenantId);
      await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      const error = await rejection(mfa.regenerateBackupCodes(tenantId, userId));
      expect(error).to.be.instanceOf(ConflictError);
      expect((await mfa.status(tenantId, userId)).backupCodesRemaining).to.equal(0);
    });
  });

  describe('at rest', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('stores the TOTP secret sealed (pending and active) and backup codes only as SHA-256 digests', async () => {
      const userId = await user(tenantId);
      const { secret } = await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      const pending = await runtime.db('mfa_totp').where({ user_id: userId }).first();
      expect(pending.pending_secret_sealed).to.match(/^v1\./);
      expect(JSON.stringify(pending)).to.not.include(secret);
      clock = at(0);
      const { backupCodes } = (await mfa.confirmTotpEnrolment(tenantId, userId, currentTotpCode(secret, at(0))))!;
      const active = await runtime.db('mfa_totp').where({ user_id: userId }).first();
      expect(active.secret_sealed).to.match(/^v1\./);
      expect(active.pending_secret_sealed).to.equal(null);
      expect(JSON.stringify(active)).to.not.include(secret);
      expect(JSON.stringify(active).toLowerCase()).to.not.include(secret.toLowerCase());

      const rows = await runtime.db('mfa_backup_codes').where({ user_id: userId });
      expect(rows).to.have.length(10);
      const stored = JSON.stringify(rows);
      for (const code of backupCodes) {
        expect(stored).to.not.include(code);
        expect(stored).to.not.include(code.replace('-', ''));
      }
      for (const row of rows) expect(row.code_hash).to.match(/^[0-9a-f]{64}$/);
    });

    it('is invisible to another tenant under row-level security', async () => {
      const { userId } = await enrolled(tenantId);
      const other = await tenant();
      const seen = await withTenant(runtime.db, other, async (trx) => ({
        totp: await trx('mfa_totp').select('user_id'),
        codes: await trx('mfa_backup_codes').select('user_id'),
      }));
      expect(seen).to.deep.equal({ totp: [], codes: [] });
      const own = await withTenant(runtime.db, tenantId, (trx) => trx('mfa_backup_codes').where({ user_id: userId }).select('user_id'));
      expect(own).to.have.length(10);
    });
  });

  describe('removal', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('removes TOTP and backup codes', async () => {
      const { userId, secret, backupCodes } = await enrolled(tenantId);
      await mfa.remove(tenantId, userId);
      expect(await mfa.status(tenantId, userId)).to.deep.equal({ totp: false, confirmedAt: null, backupCodesRemaining: 0 });
      clock = at(1);
      expect(await mfa.verifyTotp(tenantId, userId, currentTotpCode(secret, at(1)))).to.equal(false);
      expect(await mfa.verifyBackupCode(tenantId, userId, backupCodes[0])).to.equal(false);
      await mfa.remove(tenantId, userId);
    });

    it('goes with the user when the user is deleted for good', async () => {
      const { userId } = await enrolled(tenantId);
      await mfa.beginTotpEnrolment(tenantId, userId, LABELS);
      await runtime.users.hardDelete(tenantId, userId);
      expect(await runtime.db('mfa_totp').where({ user_id: userId })).to.have.length(0);
      expect(await runtime.db('mfa_backup_codes').where({ user_id: userId })).to.have.length(0);
    });
  });
});
