import { InvalidArgumentError } from "commander";

/**
 * Parser of a numeric flag bounded to [min, max] (`exclusiveMin`: (min, max]); the error names the
 * flag and its range. Every count and length a command takes has such a bound.
 */
export function numberFlag(
  flag: string,
  min: number,
  max: number,
  { integer = false, exclusiveMin = false } = {},
): (value: string) => number {
  const what = `${integer ? "an integer" : "a number"} in ${exclusiveMin ? "(" : "["}${min}, ${max}]`;
  return (value) => {
    const n = Number(value);
    const inRange = (exclusiveMin ? n > min : n >= min) && n <= max;
    if (value.trim() === "" || !inRange || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${flag} must be ${what}, got "${value}"`);
    }
    return n;
  };
}

export const intFlag = (flag: string, min: number, max: number) =>
  numberFlag(flag, min, max, { integer: true });

/** Seeds are 32-bit. */
export const MAX_SEED = 0xffffffff;
