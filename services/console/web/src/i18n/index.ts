// zh-CN and en. Each area of the app keeps its texts in its own file under messages/ (exporting
// `{ "zh-CN": {...}, en: {...} }`), merged here, so pages can be added without touching a shared file.
import { createI18n } from "vue-i18n";

export const LOCALES = ["zh-CN", "en"] as const;
export type Locale = (typeof LOCALES)[number];
type Tree = { [key: string]: string | Tree };

const files = import.meta.glob<{ default: Record<Locale, Tree> }>("./messages/*.ts", { eager: true });

function merge(into: Tree, from: Tree): Tree {
  for (const [key, value] of Object.entries(from)) {
    const existing = into[key];
    into[key] =
      typeof value === "object" && typeof existing === "object" ? merge(existing, value) : (value as string | Tree);
  }
  return into;
}

const messages: Record<Locale, Tree> = { "zh-CN": {}, en: {} };
for (const file of Object.values(files)) for (const locale of LOCALES) merge(messages[locale], file.default[locale] ?? {});

const STORAGE_KEY = "amiflow.locale";

function initialLocale(): Locale {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved && (LOCALES as readonly string[]).includes(saved)) return saved as Locale;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: "en",
  messages,
  missingWarn: false,
  fallbackWarn: false,
});

export function currentLocale(): Locale {
  return i18n.global.locale.value as Locale;
}

export function setLocale(locale: Locale): void {
  i18n.global.locale.value = locale;
  localStorage.setItem(STORAGE_KEY, locale);
  document.documentElement.lang = locale;
}
document.documentElement.lang = currentLocale();
