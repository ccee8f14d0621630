// What PostgreSQL can hold, for time (as src/store/text.ts for text): the instants both it and
// JavaScript hold, years 0001 to 9999 (UTC). JavaScript's Date reaches year ±275760 and ISO 8601
// has a year 0000; PostgreSQL refuses both in a timestamptz literal, so a date outside this range
// passes a JavaScript check and then fails the statement.
export const EARLIEST_INSTANT = new Date('0001-01-01T00:00:00.000Z');
export const LATEST_INSTANT = new Date('9999-12-31T23:59:59.999Z');

export const INSTANT_RANGE = 'must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z';

export function representable(date: Date): boolean {
  const time = date.getTime();
  return time >= EARLIEST_INSTANT.getTime() && time <= LATEST_INSTANT.getTime();
}
