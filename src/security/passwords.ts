import argon2 from 'argon2';

export interface PasswordHashing {
  hash(password: string): Promise<string>;
  verify(hash: string | null | undefined, password: string): Promise<boolean>;
}

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

// argon2id. verify() always spends one full hash, also when there is no stored hash,
// so an unknown user and a wrong password take the same time.
export function createPasswordHashing(parameters: Argon2Parameters): PasswordHashing {
  const options = { type: argon2.argon2id as 2, ...parameters };
  let dummyHash: Promise<string> | undefined;
  return {
    hash(password) {
      return argon2.hash(password, options);
    },
    async verify(hash, password) {
      if (!hash) {
        dummyHash ??= argon2.hash('no such user: the answer must take as long as a real check', options);
        await argon2.verify(await dummyHash, password);
        return false;
      }
      try {
        return await argon2.verify(hash, password);
      } catch {
        return false;
      }
    },
  };
}
