// Tenant-defined custom user attributes: a small schema language, and validation of values
// against it. Unknown attributes are refused, so a typo is an error instead of silent data.
import { z } from 'zod';

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

const attributeDefinition = z.discriminatedUnion('type', [
  z.object({ type: z.literal('string'), required: z.boolean().default(false), maxLength: z.number().int().min(1).max(10_000).default(1024), enum: z.array(z.string().max(256)).max(500).optional() }).strict(),
  z.object({ type: z.literal('number'), required: z.boolean().default(false), min: z.number().optional(), max: z.number().optional() }).strict(),
  z.object({ type: z.literal('boolean'), required: z.boolean().default(false) }).strict(),
]);

export const attributeSchemaSchema = z
  .record(z.string().regex(NAME, 'attribute names are lower-case letters, digits and _, starting with a letter'), attributeDefinition)
  .refine((schema) => Object.keys(schema).length <= 100, { message: 'at most 100 custom attributes' });

export type AttributeSchema = z.infer<typeof attributeSchemaSchema>;

// Returns field errors keyed "custom_attributes.<name>"; empty when the values fit the schema.
export function validateAttributes(schema: AttributeSchema, values: Record<string, unknown>, partial = false): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const name of Object.keys(values)) {
    if (!schema[name]) errors[`custom_attributes.${name}`] = 'not an attribute this tenant defines';
  }
  for (const [name, definition] of Object.entries(schema)) {
    const value = values[name];
    const field = `custom_attributes.${name}`;
    if (value === undefined || value === null) {
      if (definition.required && !partial) errors[field] = 'required';
      continue;
    }
    if (definition.type === 'string') {
      if (typeof value !== 'string') errors[field] = 'must be a string';
      else if (value.length > definition.maxLength) errors[field] = `at most ${definition.maxLength} characters`;
      else if (definition.enum && !definition.enum.includes(value)) errors[field] = `one of ${definition.enum.join(', ')}`;
    } else if (definition.type === 'number') {
      if (typeof value !== 'number' || !Number.isFinite(value)) errors[field] = 'must be a number';
      else if (definition.min !== undefined && value < definition.min) errors[field] = `at least ${definition.min}`;
      else if (definition.max !== undefined && value > definition.max) errors[field] = `at most ${definition.max}`;
    } else if (typeof value !== 'boolean') {
      errors[field] = 'must be true or false';
    }
  }
  return errors;
}
