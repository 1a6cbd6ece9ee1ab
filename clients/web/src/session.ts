import { createContext, useContext } from "react";
import type { Account } from "./api";

export interface Session {
  account: Account;
  refresh: () => Promise<void>;
  signOut: (message?: string) => Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in screen");
  return s;
}

/** What the device list calls this browser: "Firefox on Linux", from the user agent. */
export function browserName(ua: string = navigator.userAgent): string {
  const browsers: [RegExp, string][] = [
    [/Edg\//, "Edge"],
    [/OPR\//, "Opera"],
    [/Firefox\//, "Firefox"],
    [/Chrom(e|ium)\//, "Chromium"],
    [/Safari\//, "Safari"],
  ];
  const systems: [RegExp, string][] = [
    [/Android/, "Android"],
    [/iPhone|iPad/, "iOS"],
    [/Windows/, "Windows"],
    [/Mac OS X/, "macOS"],
    [/CrOS/, "ChromeOS"],
    [/Linux/, "Linux"],
  ];
  const browser = browsers.find(([re]) => re.test(ua))?.[1] ?? "Web browser";
  const system = systems.find(([re]) => re.test(ua))?.[1];
  return system ? `${browser} on ${system}` : browser;
}
