// The fleet pages' view of the shared exact decimal arithmetic (../../../decimal.ts): a total that leaves out
// what is not a number and says "nothing" as null, and a signed percentage ("+12.5").
import { isDecimal, percentChange as change, sum as total } from "../../../decimal";

// The exact sum; values that are not decimals (null, "") are left out. null when nothing was added.
export function sum(values: Iterable<string | null | undefined>): string | null {
  const numbers = [...values].filter((v): v is string => isDecimal(v));
  return numbers.length ? total(numbers) : null;
}

// The change from `before` to `now` in percent with one place, as text ("+12.5"); null when before is zero.
export function percentChange(now: string | null, before: string | null): string | null {
  if (!isDecimal(now) || !isDecimal(before)) return null;
  const text = change(now as string, before as string, 1);
  return text !== null && !text.startsWith("-") && /[1-9]/.test(text) ? `+${text}` : text;
}
