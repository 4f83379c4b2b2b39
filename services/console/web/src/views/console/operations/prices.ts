// A unit price as the tariff states it: at least two places, and every further place it has (a water price of
// 3.4567 per m³ is not 3.45). format.ts's money() is for amounts, which have exactly two.
export function price(amount: string | null | undefined, currency = ""): string {
  if (amount === null || amount === undefined || amount === "") return "—";
  const negative = amount.startsWith("-");
  const [whole, fraction = ""] = amount.replace(/^[-+]/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const places = fraction.replace(/0+$/, "").padEnd(2, "0");
  const symbol = currency === "CNY" ? "¥" : currency ? `${currency} ` : "";
  return `${negative ? "-" : ""}${symbol}${grouped}.${places}`;
}
