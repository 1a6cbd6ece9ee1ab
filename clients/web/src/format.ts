// Sizes, dates and durations as a person reads them, in the chosen language.
import type { Lang } from "./i18n";

const locales: Record<Lang, string> = { en: "en-GB", nl: "nl-NL" };

export function bytes(n: number, lang: Lang): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toLocaleString(locales[lang], { maximumFractionDigits: digits })} ${units[unit]}`;
}

export function dateTime(value: string | number | null | undefined, lang: Lang): string {
  if (value === null || value === undefined || value === "") return "—";
  const d = new Date(value);
  return d.toLocaleString(locales[lang], { dateStyle: "medium", timeStyle: "short" });
}

export function date(value: string | number | null | undefined, lang: Lang): string {
  if (value === null || value === undefined || value === "") return "—";
  return new Date(value).toLocaleDateString(locales[lang], { dateStyle: "long" });
}

export function month(yyyyMm: string, lang: Lang): string {
  const [y, m] = yyyyMm.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, 15)).toLocaleDateString(locales[lang], { month: "long", year: "numeric" });
}

export function km(meters: number, lang: Lang): string {
  return meters >= 1000
    ? `${(meters / 1000).toLocaleString(locales[lang], { maximumFractionDigits: 2 })} km`
    : `${Math.round(meters)} m`;
}

export function duration(seconds: number | null): string {
  if (seconds === null) return "—";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.round(seconds % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}
