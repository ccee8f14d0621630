// The users domain through its service, on every backend: create, self-registration, get, list
// with filters and keyset pagination, self and admin changes, status, soft and hard delete,
// custom attributes; and end to end, that suspending a user ends their sign-in, refresh tokens,
// userinfo and SSO session at once.
import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import * as oidc from 'openid-client';
import { pino } from 'pino';
import { forEachBackend, type BackendEnv } from '../helpers/backends.ts';
import { TEST_ENV, startInstance, type Instance } from '../helpers/instance.ts';
import { createFixtures, USER, type Fixtures, introspect as introspectToken } from '../helpers/fixtures.ts';
import { discover, loginWithCode, REDIRECT_URI } from '../helpers/rp.ts';
import { expectOAuthError } from '../helpers/oauth-errors.ts';
import { loadConfig } from '../../src/config.ts';
import { createRuntime, type Runtime } from '../../src/runtime.ts';
import { createPasswordHashing, type PasswordHashing } from '../../src/security/passwords.ts';
import { createUserService, type User, type UserService } from '../../src/users/service.ts';
import { rbacQueries, usersHoldingRole } from '../../src/rbac/queries.ts';
import { withTenant } from '../../src/store/tenant-scope.ts';
import { DEFAULT_TENANT_ID } from '../../src/tenants/constants.ts';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError, VersionMismatchError } from '../../src/errors.ts';

const PASSWORD = 'a long enough password';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves to the error a promise rejects with, failing when it does not reject.
async function rejection<T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected ${type.name}`).to.be.instanceOf(type);
  return error as T;
}

forEachBackend('users', (backend) => {
  let store: BackendEnv;
  let runtime: Runtime;
  let users: UserService;
  let verifications = 0;
  const revoked: string[] = [];

  // Tenants are inserted directly: this suite is about users, not about creating tenants.
  async function tenant(options: { schema?: Record<string, unknown>; selfRegistration?: boolean } = {}): Promise<string> {
    const id = randomUUID();
    await runtime.db('tenants').insert({
      id,
      slug: `t-${id.slice(0, 8)}`,
      display_name: 'Test tenant',
      user_attribute_schema: JSON.stringify(options.schema ?? {}),
      self_registration: options.selfRegistration ?? false,
    });
    return id;
  }

  before(async () => {
    store = await backend.create();
    runtime = await createRuntime(loadConfig({ ...TEST_ENV, ...store.env }), { log: pino({ level: 'silent' }) });
    const hashing = createPasswordHashing(runtime.config.argon2);
    const passwords: PasswordHashing = {
      hash: (password) => hashing.hash(password),
      verify: (hash, password) => {
        verifications++;
        return hashing.verify(hash, password);
      },
    };
    users = createUserService({
      db: runtime.db,
      passwords,
      tenantAttributeSchema: async (tenantId) => (await runtime.tenants.get(tenantId)).userAttributeSchema,
      tenantAllowsSelfRegistration: async (tenantId) => (await runtime.tenants.get(tenantId)).selfRegistration,
      rolesFilter: usersHoldingRole,
      onAccessRevoked: async (userId) => {
        revoked.push(userId);
      },
      forgetRoles: (trx, userId) => rbacQueries.forgetSubject(trx, 'user', userId),
      audit: runtime.audit,
      outbox: runtime.outbox,
    });
  });
  after(async () => {
    await runtime?.close();
    await store?.cleanup();
  });

  describe('create and get', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('creates a user with standard claims and reads it back, never exposing the password hash', async () => {
      const created = await users.create(tenantId, {
        email: '  Grace@Example.com ',
        username: 'grace',
        password: PASSWORD,
        name: 'Grace Hopper',
        givenName: 'Grace',
        familyName: 'Hopper',
        middleName: 'Brewster',
        nickname: 'Amazing Grace',
        picture: 'https://example.com/grace.png',
        website: 'https://example.com/',
        gender: 'female',
        birthdate: '1906-12-09',
        zoneinfo: 'America/New_York',
        locale: 'en-US',
        phoneNumber: '+14155550123',
        phoneNumberVerified: true,
        emailVerified: true,
      });
      expect(created).to.include({
        tenantId,
        email: 'Grace@Example.com',
        username: 'grace',
        givenName: 'Grace',
        birthdate: '1906-12-09',
        phoneNumber: '+14155550123',
        phoneNumberVerified: true,
        emailVerified: true,
        status: 'active',
        statusReason: null,
        version: 1,
        hasPassword: true,
        isAdmin: false,
      });
      expect(created.createdAt).to.be.instanceOf(Date);
      expect(JSON.stringify(created)).to.not.match(/argon2|password_hash/);
      expect(await users.get(tenantId, created.id)).to.deep.equal(created);
    });

    it('creates a user without a password, who cannot sign in with one', async () => {
      const user = await users.create(tenantId, { email: 'nopassword@example.com' });
      expect(user.hasPassword).to.equal(false);
      expect(await users.authenticate('nopassword@example.com', '', tenantId)).to.equal(undefined);
    });

    it('answers 404 for an unknown id, a malformed id or an unknown tenant', async () => {
      await rejection(users.get(tenantId, randomUUID()), NotFoundError);
      await rejection(users.get(tenantId, 'not-a-uuid'), NotFoundError);
      await rejection(users.get('not-a-tenant', randomUUID()), NotFoundError);
      await rejection(users.create(randomUUID(), { email: 'x@example.com' }), NotFoundError);
    });

    it('refuses invalid input with an error per field', async () => {
      const error = await rejection(
        users.create(tenantId, {
          email: 'not an address',
          username: 'has space',
          password: 'short',
          name: 'x'.repeat(257),
          givenName: 42 as never,
          picture: 'javascript:alert(1)',
          birthdate: '1999-02-30',
          zoneinfo: 'Mars/Olympus',
          locale: '!!',
          phoneNumber: '555-1234',
          emailVerified: 'yes' as never,
          favouriteColour: 'blue',
        } as never),
        ValidationError,
      );
      expect(error.fields).to.deep.equal({
        email: 'not an e-mail address',
        username: 'letters, digits, . _ and -, starting and ending with a letter or digit',
        password: 'at least 8 characters',
        name: 'at most 256 characters',
        givenName: 'must be a string',
        picture: 'must be an http or https URL',
        birthdate: 'not a real date',
        zoneinfo: 'must be an IANA time zone such as Europe/Paris',
        locale: 'must be a BCP 47 language tag such as en-US',
        phoneNumber: 'must be in E.164 form, such as +14155550123',
        emailVerified: 'must be true or false',
        favouriteColour: 'not a field of a user',
      });
      expect(error.message).to.match(/^invalid user data: email: not an e-mail address/);
    });

    it('enforces the size limits: e-mail 254, names 256, password 8..1024', async () => {
      const long = `${'a'.repeat(64)}@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.example.com`;
      expect(long.length).to.be.greaterThan(254);
      expect((await rejection(users.create(tenantId, { email: long }), ValidationError)).fields).to.deep.equal({ email: 'at most 254 characters' });
      expect((await rejection(users.create(tenantId, { email: 'p@example.com', password: 'x'.repeat(1025) }), ValidationError)).fields).to.deep.equal({
        password: 'at most 1024 characters',
      });
      expect((await rejection(users.create(tenantId, { email: 'n@example.com', familyName: 'x'.repeat(257) }), ValidationError)).fields).to.deep.equal({
        familyName: 'at most 256 characters',
      });
      const fits = await users.create(tenantId, { email: 'fits@example.com', password: 'x'.repeat(1024), familyName: 'x'.repeat(256) });
      expect(fits.familyName).to.have.length(256);
    });

    it('refuses what PostgreSQL could not store, a missing e-mail and a non-object', async () => {
      expect((await rejection(users.create(tenantId, { email: 'nul@example.com', name: 'a\u0000b' }), ValidationError)).fields).to.deep.equal({
        name: 'must not contain control characters',
      });
      expect((await rejection(users.create(tenantId, { password: PASSWORD } as never), ValidationError)).fields).to.deep.equal({ email: 'required' });
      await rejection(users.create(tenantId, null as never), ValidationError);
      await rejection(users.create(tenantId, ['x'] as never), ValidationError);
    });

    it('refuses a duplicate e-mail or username within a tenant, ignoring case, and allows them across tenants', async () => {
      await users.create(tenantId, { email: 'dup@example.com', username: 'dup' });
      const email = await rejection(users.create(tenantId, { email: 'DUP@example.COM' }), ConflictError);
      expect(email.fields).to.deep.equal({ email: 'already used by another user of this tenant' });
      const username = await rejection(users.create(tenantId, { email: 'other@example.com', username: 'DUP' }), ConflictError);
      expect(username.fields).to.deep.equal({ username: 'already used by another user of this tenant' });
      const elsewhere = await users.create(await tenant(), { email: 'dup@example.com', username: 'dup' });
      expect(elsewhere.email).to.equal('dup@example.com');
    });

    it('turns a race past the check into a conflict too (the unique index decides)', async () => {
      const results = await Promise.allSettled([1, 2, 3].map(() => users.create(tenantId, { email: 'race@example.com' })));
      expect(results.filter((result) => result.status === 'fulfilled')).to.have.length(1);
      for (const result of results.filter((r) => r.status === 'rejected')) {
        expect((result as PromiseRejectedResult).reason).to.be.instanceOf(ConflictError);
      }
    });

    it('keeps tenants apart: another tenant’s user is not found', async () => {
      const other = await tenant();
      const user = await users.create(other, { email: 'isolated@example.com' });
      await rejection(users.get(tenantId, user.id), NotFoundError);
      await rejection(users.update(tenantId, user.id, 1, { name: 'x' }, { as: 'admin' }), NotFoundError);
      await rejection(users.setStatus(tenantId, user.id, 'suspended'), NotFoundError);
      await rejection(users.softDelete(tenantId, user.id), NotFoundError);
      await rejection(users.hardDelete(tenantId, user.id), NotFoundError);
      expect(await users.authenticate('isolated@example.com', PASSWORD, tenantId)).to.equal(undefined);
      expect((await users.get(other, user.id)).id).to.equal(user.id);
    });
  });

  describe('custom attributes', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant({
        schema: {
          employee_id: { type: 'string', required: true, maxLength: 8 },
          department: { type: 'string', enum: ['engineering', 'operations'] },
          level: { type: 'number', min: 1, max: 10 },
          contractor: { type: 'boolean' },
        },
      });
    });

    it('stores values that fit the tenant’s schema', async () => {
      const user = await users.create(tenantId, { email: 'attrs@example.com', customAttributes: { employee_id: 'E1', department: 'engineering', level: 3 } });
      expect(user.customAttributes).to.deep.equal({ employee_id: 'E1', department: 'engineering', level: 3 });
      expect((await users.get(tenantId, user.id)).customAttributes).to.deep.equal(user.customAttributes);
    });

    it('refuses unknown attributes, wrong types, values out of range and missing required ones', async () => {
      const error = await rejection(
        users.create(tenantId, { email: 'bad-attrs@example.com', customAttributes: { department: 'sales', level: 11, contractor: 'no', shoe_size: 44 } }),
        ValidationError,
      );
      expect(error.fields).to.deep.equal({
        'customAttributes.employee_id': 'required',
        'customAttributes.department': 'one of engineering, operations',
        'customAttributes.level': 'at most 10',
        'customAttributes.contractor': 'must be true or false',
        'customAttributes.shoe_size': 'not an attribute this tenant defines',
      });
      expect((await rejection(users.create(tenantId, { email: 'arr@example.com', customAttributes: [] as never }), ValidationError)).fields).to.deep.equal({
        customAttributes: 'must be an object',
      });
      expect(
        (await rejection(users.create(tenantId, { email: 'nul@example.com', customAttributes: { employee_id: 'a\u0000' } }), ValidationError)).fields,
      ).to.deep.equal({ 'customAttributes.employee_id': 'must not contain NUL characters' });
    });

    it('merges a change into the stored attributes; null removes one, but never a required one', async () => {
      const user = await users.create(tenantId, { email: 'merge@example.com', customAttributes: { employee_id: 'E2', level: 2 } });
      const changed = await users.update(tenantId, user.id, 1, { customAttributes: { contractor: true, level: null } }, { as: 'self' });
      expect(changed.customAttributes).to.deep.equal({ employee_id: 'E2', contractor: true });
      const error = await rejection(users.update(tenantId, user.id, 2, { customAttributes: { employee_id: null } }, { as: 'admin' }), ValidationError);
      expect(error.fields).to.deep.equal({ 'customAttributes.employee_id': 'required: it cannot be removed' });
      await rejection(users.update(tenantId, user.id, 2, { customAttributes: { level: 0 } }, { as: 'admin' }), ValidationError);
    });
  });

  describe('self-registration', () => {
    it('is refused where the tenant does not allow it', async () => {
      const closed = await tenant();
      const error = await rejection(users.selfRegister(closed, { email: 'me@example.com', password: PASSWORD }), ForbiddenError);
      expect(error.message).to.match(/does not allow self-registration/);
    });

    it('creates an active, unverified user where it is allowed, with a password and only self-service fields', async () => {
      const open = await tenant({ selfRegistration: true, schema: { newsletter: { type: 'boolean' } } });
      const user = await users.selfRegister(open, { email: 'me@example.com', password: PASSWORD, name: 'Me', customAttributes: { newsletter: true } });
      expect(user).to.include({ status: 'active', emailVerified: false, isAdmin: false, name: 'Me' });
      expect((await users.authenticate('me@example.com', PASSWORD, open))?.id).to.equal(user.id);
      const sneaky = await rejection(users.selfRegister(open, { email: 'x@example.com', password: PASSWORD, emailVerified: true, isAdmin: true } as never), ValidationError);
      expect(sneaky.fields).to.deep.equal({ emailVerified: 'only an administrator may set this', isAdmin: 'only an administrator may set this' });
      expect((await rejection(users.selfRegister(open, { email: 'y@example.com' } as never), ValidationError)).fields).to.deep.equal({ password: 'required' });
      await rejection(users.selfRegister(open, { email: 'ME@example.com', password: PASSWORD }), ConflictError);
    });
  });

  describe('update', () => {
    let tenantId: string;
    let user: User;
    beforeEach(async () => {
      tenantId ??= await tenant();
      user = await users.create(tenantId, { email: `u-${randomUUID().slice(0, 8)}@example.com`, password: PASSWORD, emailVerified: true, phoneNumber: '+33123456789', phoneNumberVerified: true });
    });

    it('lets a user change their own profile claims, and nothing else', async () => {
      const changed = await users.update(tenantId, user.id, 1, { name: 'New Name', givenName: 'New', locale: 'fr-FR', zoneinfo: 'Europe/Paris', website: null }, { as: 'self' });
      expect(changed).to.include({ name: 'New Name', givenName: 'New', locale: 'fr-FR', zoneinfo: 'Europe/Paris', website: null, version: 2 });
      expect(changed.updatedAt.getTime()).to.be.at.least(user.updatedAt.getTime());
      const error = await rejection(
        users.update(tenantId, user.id, 2, { email: 'else@example.com', emailVerified: true, password: 'a new long password', isAdmin: true, username: 'me', phoneNumber: '+15550000000' }, { as: 'self' }),
        ValidationError,
      );
      expect(Object.keys(error.fields!).sort()).to.deep.equal(['email', 'emailVerified', 'isAdmin', 'password', 'phoneNumber', 'username']);
      expect(new Set(Object.values(error.fields!))).to.deep.equal(new Set(['only an administrator may set this']));
      expect((await users.get(tenantId, user.id)).version).to.equal(2);
    });

    it('lets an administrator change everything; a new e-mail or phone is unverified unless said otherwise', async () => {
      const changed = await users.update(tenantId, user.id, 1, { email: 'changed@example.com', username: 'changed', phoneNumber: '+33999999999', isAdmin: true }, { as: 'admin' });
      expect(changed).to.include({ email: 'changed@example.com', username: 'changed', emailVerified: false, phoneNumberVerified: false, isAdmin: true, version: 2 });
      const verified = await users.update(tenantId, user.id, 2, { email: 'changed2@example.com', emailVerified: true, username: null }, { as: 'admin' });
      expect(verified).to.include({ email: 'changed2@example.com', emailVerified: true, username: null });
      const password = await users.update(tenantId, user.id, 3, { password: 'a brand new password' }, { as: 'admin' });
      expect(password.version).to.equal(4);
      expect(await users.authenticate('changed2@example.com', PASSWORD, tenantId)).to.equal(undefined);
      expect((await users.authenticate('changed2@example.com', 'a brand new password', tenantId))?.id).to.equal(user.id);
    });

    it('refuses a change made against an old version', async () => {
      await users.update(tenantId, user.id, 1, { name: 'first' }, { as: 'self' });
      const error = await rejection(users.update(tenantId, user.id, 1, { name: 'second' }, { as: 'self' }), VersionMismatchError);
      expect(error.message).to.match(/changed since version 1/);
      expect((await users.get(tenantId, user.id)).name).to.equal('first');
      await rejection(users.update(tenantId, user.id, 0, { name: 'x' }, { as: 'self' }), ValidationError);
      await rejection(users.update(tenantId, randomUUID(), 1, { name: 'x' }, { as: 'self' }), NotFoundError);
    });

    it('refuses an e-mail or username another user of the tenant has', async () => {
      const other = await users.create(tenantId, { email: `o-${randomUUID().slice(0, 8)}@example.com`, username: `o${randomUUID().slice(0, 8)}` });
      const error = await rejection(users.update(tenantId, user.id, 1, { email: other.email.toUpperCase(), username: other.username! }, { as: 'admin' }), ConflictError);
      expect(error.fields).to.have.keys('email', 'username');
      // Changing only the case of one's own address is no conflict.
      const recased = await users.update(tenantId, user.id, 1, { email: user.email.toUpperCase() }, { as: 'admin' });
      expect(recased.emailVerified, 'the same address, still verified').to.equal(true);
    });

    it('refuses invalid values and unknown fields in a change', async () => {
      const error = await rejection(users.update(tenantId, user.id, 1, { email: null, birthdate: '02/29/1990', id: 'x' } as never, { as: 'admin' }), ValidationError);
      expect(error.fields).to.deep.equal({ email: 'must not be null', birthdate: 'YYYY-MM-DD, 0000-MM-DD (year withheld) or YYYY', id: 'not a field of a user' });
      const withheldYear = await users.update(tenantId, user.id, 1, { birthdate: '0000-02-29' }, { as: 'self' });
      expect(withheldYear.birthdate).to.equal('0000-02-29');
    });
  });

  describe('status and deletion', () => {
    let tenantId: string;
    before(async () => {
      tenantId = await tenant();
    });

    it('suspends with a reason: sign-in refused (one verification spent all the same), access revoked, findById empty', async () => {
      const user = await users.create(tenantId, { email: 'suspend@example.com', password: PASSWORD });
      const before = revoked.length;
      const suspended = await users.setStatus(tenantId, user.id, 'suspended', 'chargeback under review');
      expect(suspended).to.include({ status: 'suspended', statusReason: 'chargeback under review', version: 2 });
      expect(revoked.slice(before)).to.deep.equal([user.id]);
      const spent = verifications;
      expect(await users.authenticate('suspend@example.com', PASSWORD, tenantId)).to.equal(undefined);
      expect(verifications - spent, 'one argon2 verification, as for an active user').to.equal(1);
      expect(await users.findById(user.id)).to.equal(undefined);
      expect((await users.list(tenantId, { status: 'suspended' })).items.map((u) => u.id)).to.deep.equal([user.id]);

      const active = await users.setStatus(tenantId, user.id, 'active');
      expect(active).to.include({ status: 'active', statusReason: null });
      expect(revoked.slice(before)).to.deep.equal([user.id], 'reactivation revokes nothing');
      expect((await users.authenticate('SUSPEND@example.com', PASSWORD, tenantId))?.id).to.equal(user.id);
      expect((await users.findById(user.id))?.id).to.equal(user.id);
    });

    it('deactivates likewise, and refuses unknown statuses and oversized reasons', async () => {
      const user = await users.create(tenantId, { email: 'deactivate@example.com', password: PASSWORD });
      const deactivated = await users.setStatus(tenantId, user.id, 'deactivated', 'left the company');
      expect(deactivated).to.include({ status: 'deactivated', statusReason: 'left the company' });
      expect(revoked.at(-1)).to.equal(user.id);
      expect(await users.authenticate('deactivate@example.com', PASSWORD, tenantId)).to.equal(undefined);
      expect((await rejection(users.setStatus(tenantId, user.id, 'banned' as never), ValidationError)).fields).to.have.key('status');
      expect((await rejection(users.setStatus(tenantId, user.id, 'suspended', 'x'.repeat(513)), ValidationError)).fields).to.have.key('reason');
    });

    it('spends one verification for an unknown identifier, a wrong password and a right one', async () => {
      await users.create(tenantId, { email: 'timing@example.com', password: PASSWORD });
      for (const [identifier, password] of [['nobody@example.com', PASSWORD], ['timing@example.com', 'wrong password'], ['timing@example.com', PASSWORD], ['', PASSWORD]]) {
        const spent = verifications;
        await users.authenticate(identifier, password, tenantId);
        expect(verifications - spent, identifier).to.equal(1);
      }
    });

    it('soft-deletes: gone from reads and sign-in, access revoked, the e-mail and username free again', async () => {
      const user = await users.create(tenantId, { email: 'soft@example.com', username: 'soft', password: PASSWORD });
      await users.softDelete(tenantId, user.id);
      expect(revoked.at(-1)).to.equal(user.id);
      await rejection(users.get(tenantId, user.id), NotFoundError);
      expect((await users.list(tenantId, { email: 'soft@example.com' })).items).to.deep.equal([]);
      expect(await users.authenticate('soft@example.com', PASSWORD, tenantId)).to.equal(undefined);
      expect(await users.findById(user.id)).to.equal(undefined);
      await rejection(users.softDelete(tenantId, user.id), NotFoundError);
      await rejection(users.update(tenantId, user.id, 2, { name: 'x' }, { as: 'admin' }), NotFoundError);

      const again = await users.create(tenantId, { email: 'SOFT@example.com', username: 'soft', password: 'another long password' });
      expect(again.id).to.not.equal(user.id);
      expect((await users.authenticate('soft@example.com', 'another long password', tenantId))?.id).to.equal(again.id);
      // The row is kept until a hard delete.
      expect(await runtime.db('users').where({ id: user.id }).first('deleted_at')).to.have.property('deleted_at').that.is.not.null;
      await users.hardDelete(tenantId, user.id);
      expect(await runtime.db('users').where({ id: user.id }).first()).to.equal(undefined);
    });

    it('hard-deletes: the row and its role assignments are gone and access revoked', async () => {
      const user = await users.create(tenantId, { email: 'hard@example.com', password: PASSWORD });
      const role = await runtime.rbac.createRole(tenantId, { name: `member-${user.id}` });
      await runtime.rbac.assign(tenantId, role.id, 'user', user.id);
      expect(await runtime.rbac.rolesOf(tenantId, 'user', user.id)).to.have.length(1);
      await users.hardDelete(tenantId, user.id);
      expect(await runtime.db('role_assignments').where({ subject_id: user.id }).first()).to.equal(undefined);
      expect(revoked.at(-1)).to.equal(user.id);
      expect(await runtime.db('users').where({ id: user.id }).first()).to.equal(undefined);
      await rejection(users.get(tenantId, user.id), NotFoundError);
      await rejection(users.hardDelete(tenantId, user.id), NotFoundError);
      expect(await users.authenticate('hard@example.com', PASSWORD, tenantId)).to.equal(undefined);
    });

    it('counts every user row and finds only active users by id', async () => {
      expect(await users.count()).to.be.a('number').and.greaterThan(0);
      expect(await users.findById('not-a-uuid')).to.equal(undefined);
      expect(await users.findById(randomUUID())).to.equal(undefined);
    });
  });

  describe('list', () => {
    let tenantId: string;
    const people: Record<string, User> = {};
    before(async () => {
      tenantId = await tenant();
      const seed: Array<[string, Record<string, unknown>]> = [
        ['ada', { email: 'ada@example.com', username: 'ada', name: 'Ada Lovelace', givenName: 'Ada', familyName: 'Lovelace' }],
        ['alan', { email: 'alan@example.org', username: 'alan', name: 'Alan Turing', givenName: 'Alan', familyName: 'Turing' }],
        ['grace', { email: 'grace@example.com', username: 'grace_h', name: 'Grace Hopper', familyName: 'Hopper' }],
        ['edsger', { email: 'edsger@example.nl', name: 'Edsger Dijkstra' }],
        ['barbara', { email: 'barbara@example.com', username: 'barbara', name: 'Barbara Liskov' }],
        ['percent', { email: 'percent@example.com', name: '100% Real' }],
        ['under', { email: 'under_score@example.com', name: 'Under Score' }],
      ];
      for (const [key, input] of seed) {
        people[key] = await users.create(tenantId, input as never);
        await sleep(5);
      }
      await users.setStatus(tenantId, people.alan.id, 'suspended', 'test');
      await users.setStatus(tenantId, people.edsger.id, 'deactivated');
      const deleted = await users.create(tenantId, { email: 'deleted@example.com', name: 'Ada Deleted' });
      await users.softDelete(tenantId, deleted.id);
      // viewer <- editor <- owner: holding owner means holding editor and viewer.
      const viewer = await runtime.rbac.createRole(tenantId, { name: 'viewer' });
      const editor = await runtime.rbac.createRole(tenantId, { name: 'editor', includes: [viewer.id] });
      const owner = await runtime.rbac.createRole(tenantId, { name: 'owner', includes: [editor.id] });
      await runtime.rbac.assign(tenantId, viewer.id, 'user', people.ada.id);
      await runtime.rbac.assign(tenantId, editor.id, 'user', people.alan.id);
      await runtime.rbac.assign(tenantId, owner.id, 'user', people.grace.id);
      await runtime.rbac.assign(tenantId, viewer.id, 'client', 'some-client');
      // A user of another tenant holding a role of the same name is not listed.
      const other = await tenant();
      const stranger = await users.create(other, { email: 'ada@example.com', name: 'Ada Elsewhere' });
      await runtime.rbac.assign(other, (await runtime.rbac.createRole(other, { name: 'viewer' })).id, 'user', stranger.id);
    });

    const ids = (page: { items: User[] }) => page.items.map((user) => user.id);
    const names = (...keys: string[]) => keys.map((key) => people[key].id);

    it('lists live users in creation order', async () => {
      const page = await users.list(tenantId);
      expect(ids(page)).to.deep.equal(names('ada', 'alan', 'grace', 'edsger', 'barbara', 'percent', 'under'));
      expect(page.nextCursor).to.equal(undefined);
    });

    it('filters by e-mail and username exactly, ignoring case', async () => {
      expect(ids(await users.list(tenantId, { email: 'ADA@example.com' }))).to.deep.equal(names('ada'));
      expect(ids(await users.list(tenantId, { email: 'ada@' }))).to.deep.equal([]);
      expect(ids(await users.list(tenantId, { username: 'Grace_H' }))).to.deep.equal(names('grace'));
    });

    it('filters by status', async () => {
      expect(ids(await users.list(tenantId, { status: 'active' }))).to.deep.equal(names('ada', 'grace', 'barbara', 'percent', 'under'));
      expect(ids(await users.list(tenantId, { status: 'suspended' }))).to.deep.equal(names('alan'));
      expect(ids(await users.list(tenantId, { status: 'deactivated' }))).to.deep.equal(names('edsger'));
    });

    it('filters by role, including roles held through inclusion', async () => {
      expect(ids(await users.list(tenantId, { role: 'viewer' }))).to.deep.equal(names('ada', 'alan', 'grace'));
      expect(ids(await users.list(tenantId, { role: 'EDITOR' }))).to.deep.equal(names('alan', 'grace'));
      expect(ids(await users.list(tenantId, { role: 'owner' }))).to.deep.equal(names('grace'));
      expect(ids(await users.list(tenantId, { role: 'nobody-has-this' }))).to.deep.equal([]);
    });

    it('filters by creation time: from inclusive, to exclusive', async () => {
      const page = await users.list(tenantId, { createdFrom: people.grace.createdAt, createdTo: people.percent.createdAt });
      expect(ids(page)).to.deep.equal(names('grace', 'edsger', 'barbara'));
      expect(ids(await users.list(tenantId, { createdFrom: people.under.createdAt.toISOString() }))).to.deep.equal(names('under'));
    });

    it('matches free text in e-mail, username and names, ignoring case, with wildcards taken literally', async () => {
      expect(ids(await users.list(tenantId, { q: 'LOVE' }))).to.deep.equal(names('ada'));
      expect(ids(await users.list(tenantId, { q: 'example.org' }))).to.deep.equal(names('alan'));
      expect(ids(await users.list(tenantId, { q: 'hopp' }))).to.deep.equal(names('grace'));
      expect(ids(await users.list(tenantId, { q: 'al' }))).to.deep.equal(names('alan', 'percent'));
      expect(ids(await users.list(tenantId, { q: '%' }))).to.deep.equal(names('percent'));
      expect(ids(await users.list(tenantId, { q: '_' }))).to.deep.equal(names('grace', 'under'));
      expect(ids(await users.list(tenantId, { q: 'a%e' }))).to.deep.equal([]);
    });

    it('combines filters', async () => {
      expect(ids(await users.list(tenantId, { role: 'viewer', status: 'active' }))).to.deep.equal(names('ada', 'grace'));
      expect(ids(await users.list(tenantId, { role: 'viewer', q: 'a', createdFrom: people.alan.createdAt }))).to.deep.equal(names('alan', 'grace'));
      expect(ids(await users.list(tenantId, { role: 'viewer', status: 'suspended', q: 'turing' }))).to.deep.equal(names('alan'));
      expect(ids(await users.list(tenantId, { email: 'ada@example.com', status: 'suspended' }))).to.deep.equal([]);
    });

    it('pages with an opaque cursor', async () => {
      const first = await users.list(tenantId, { limit: 3 });
      expect(ids(first)).to.deep.equal(names('ada', 'alan', 'grace'));
      expect(first.nextCursor).to.match(/^[A-Za-z0-9_-]+$/);
      const second = await users.list(tenantId, { limit: 3, cursor: first.nextCursor });
      expect(ids(second)).to.deep.equal(names('edsger', 'barbara', 'percent'));
      const third = await users.list(tenantId, { limit: 3, cursor: second.nextCursor });
      expect(ids(third)).to.deep.equal(names('under'));
      expect(third.nextCursor).to.equal(undefined);
      // Filters and cursor together.
      const active = await users.list(tenantId, { status: 'active', limit: 2 });
      expect(ids(await users.list(tenantId, { status: 'active', limit: 2, cursor: active.nextCursor }))).to.deep.equal(names('barbara', 'percent'));
    });

    it('refuses bad limits, cursors, statuses, dates and unknown filters', async () => {
      for (const limit of [0, 201, 1.5, '10']) {
        expect((await rejection(users.list(tenantId, { limit: limit as number }), ValidationError)).fields).to.have.key('limit');
      }
      expect((await users.list(tenantId, { limit: 200 })).items).to.have.length(7);
      for (const cursor of ['garbage!', Buffer.from('["yesterday","x"]').toString('base64url'), 'x'.repeat(300)]) {
        expect((await rejection(users.list(tenantId, { cursor }), ValidationError)).fields).to.have.key('cursor');
      }
      const error = await rejection(users.list(tenantId, { status: 'gone' as never, createdFrom: 'not a date', sort: 'name' } as never), ValidationError);
      expect(error.fields).to.have.keys('status', 'createdFrom', 'sort');
      await rejection(users.list(tenantId, { q: 'x'.repeat(257) }), ValidationError);
    });
  });

  describe('keyset pagination', () => {
    it('is stable while users are added: no duplicates, and no gaps among users that existed before', async () => {
      const tenantId = await tenant();
      const existing = new Set<string>();
      for (let index = 0; index < 23; index++) existing.add((await users.create(tenantId, { email: `before-${index}@example.com` })).id);
      const seen: string[] = [];
      let cursor: string | undefined;
      let added = 0;
      do {
        // Insert while paging, also concurrently with the page read.
        const [page] = await Promise.all([
          users.list(tenantId, { limit: 4, cursor }),
          users.create(tenantId, { email: `during-${added++}@example.com` }),
        ]);
        seen.push(...page.items.map((user) => user.id));
        const created = page.items.map((user) => user.createdAt.getTime());
        expect(created, 'creation order').to.deep.equal([...created].sort((a, b) => a - b));
        cursor = page.nextCursor;
      } while (cursor && added < 100);
      expect(new Set(seen).size, 'no duplicates').to.equal(seen.length);
      for (const id of existing) expect(seen, 'no gaps').to.include(id);
    });

    it('breaks ties on creation time by id, so rows created in one instant are neither lost nor repeated', async () => {
      const tenantId = await tenant();
      const instant = new Date('2026-01-01T00:00:00.123456Z');
      const rows = Array.from({ length: 9 }, (_, index) => ({ id: randomUUID(), tenant_id: tenantId, email: `same-${index}@example.com`, created_at: instant }));
      await withTenant(runtime.db, tenantId, (trx) => trx('users').insert(rows));
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await users.list(tenantId, { limit: 2, cursor });
        seen.push(...page.items.map((user) => user.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).to.deep.equal(rows.map((row) => row.id).sort());
    });

    it('keeps microsecond precision in the cursor', async () => {
      const tenantId = await tenant();
      // Two rows in the same millisecond, ordered by the microseconds.
      const rows = [
        { id: 'ffffffff-ffff-4fff-bfff-ffffffffffff', tenant_id: tenantId, email: 'first@example.com', created_at: runtime.db.raw("'2026-01-01T00:00:00.123001Z'::timestamptz") },
        { id: '00000000-0000-4000-8000-000000000000', tenant_id: tenantId, email: 'second@example.com', created_at: runtime.db.raw("'2026-01-01T00:00:00.123002Z'::timestamptz") },
      ];
      await withTenant(runtime.db, tenantId, (trx) => trx('users').insert(rows));
      const first = await users.list(tenantId, { limit: 1 });
      expect(first.items[0].email).to.equal('first@example.com');
      const second = await users.list(tenantId, { limit: 1, cursor: first.nextCursor });
      expect(second.items.map((user) => user.email)).to.deep.equal(['second@example.com']);
    });
  });
});

forEachBackend('users: suspension ends access at once', (backend) => {
  let store: BackendEnv;
  let instance: Instance;
  let fixtures: Fixtures;
  let issuer: string;

  before(async () => {
    store = await backend.create();
    instance = await startInstance(store.env);
    issuer = instance.url;
    fixtures = await createFixtures(instance.runtime);
  });
  after(async () => {
    await instance?.stop();
    await store?.cleanup();
  });

  const introspect = (token: string) => introspectToken(issuer, fixtures.machine, token);

  async function userinfoStatus(accessToken: string): Promise<number> {
    const response = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    await response.body?.cancel();
    return response.status;
  }

  it('refuses the refresh token, userinfo, the SSO session and a new login of a suspended user', async function () {
    this.timeout(60_000);
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens, browser } = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    expect(tokens.refresh_token).to.be.a('string');
    expect(await userinfoStatus(tokens.access_token)).to.equal(200);
    const durable = () => instance.runtime.db('oidc_payloads').where({ account_id: fixtures.userId }).pluck('model');
    expect(await durable()).to.include.members(['Session', 'Grant', 'RefreshToken']);

    await instance.runtime.users.setStatus(DEFAULT_TENANT_ID, fixtures.userId, 'suspended', 'suspicious activity');

    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    expect(await userinfoStatus(tokens.access_token)).to.equal(401);
    expect((await introspect(tokens.access_token)).active, 'the access token is gone from the hot store').to.equal(false);
    expect(await durable(), 'sessions, grants and refresh tokens removed').to.deep.equal([]);

    // The browser's SSO session is gone: the authorization endpoint asks for a login again.
    const again = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const { response, url } = await browser.follow(again, issuer);
    expect(url.pathname).to.match(/^\/interaction\//);
    expect(await response.text()).to.include('name="identifier"');

    const refused = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password }).then(() => 'logged in', (error: Error) => error.message);
    expect(refused).to.equal('login failed with 401');

    // Reinstated, the user signs in again.
    await instance.runtime.users.setStatus(DEFAULT_TENANT_ID, fixtures.userId, 'active');
    const back = await loginWithCode(config, issuer, { identifier: USER.email, password: USER.password });
    expect(back.tokens.claims()!.sub).to.equal(fixtures.userId);
  });

  it('ends the access of a soft-deleted user the same way', async function () {
    this.timeout(60_000);
    const user = await instance.runtime.users.create(DEFAULT_TENANT_ID, { email: 'leaving@example.com', password: 'a long enough password', name: 'Leaving' });
    const config = await discover(issuer, fixtures.web.clientId, fixtures.web.clientSecret);
    const { tokens } = await loginWithCode(config, issuer, { identifier: 'leaving@example.com', password: 'a long enough password' });
    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, user.id);
    expect(userinfo).to.include({ sub: user.id, email: 'leaving@example.com', name: 'Leaving' });

    await instance.runtime.users.softDelete(DEFAULT_TENANT_ID, user.id);

    await expectOAuthError(oidc.refreshTokenGrant(config, tokens.refresh_token!), 'invalid_grant');
    expect(await userinfoStatus(tokens.access_token)).to.equal(401);
    const refused = await loginWithCode(config, issuer, { identifier: 'leaving@example.com', password: 'a long enough password' }).then(() => 'logged in', (error: Error) => error.message);
    expect(refused).to.equal('login failed with 401');
  });
});
