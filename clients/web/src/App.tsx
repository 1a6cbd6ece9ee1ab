import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, whenSignedOut, type Account } from "./api";
import { I18n, LANGS, initialLang, storeLang, translator, useT, type Key, type Lang } from "./i18n";
import { Link, navigate, useLocation } from "./router";
import { SessionContext, useSession } from "./session";
import { SignIn } from "./screens/SignIn";
import { Files } from "./screens/Files";
import { Versions } from "./screens/Versions";
import { TrashScreen } from "./screens/Trash";
import { StorageScreen } from "./screens/Storage";
import { Backup } from "./screens/Backup";
import { Devices } from "./screens/Devices";
import { Plan } from "./screens/Plan";
import { AccountScreen } from "./screens/Account";

// The map (Leaflet) loads only when its screen is opened: the first screen's JavaScript stays small.
const MapScreen = lazy(() => import("./screens/MapScreen"));

const NAV: { href: string; key: Key }[] = [
  { href: "/files", key: "navFiles" },
  { href: "/map", key: "navMap" },
  { href: "/trash", key: "navTrash" },
  { href: "/storage", key: "navStorage" },
  { href: "/backup", key: "navBackup" },
  { href: "/devices", key: "navDevices" },
  { href: "/plan", key: "navPlan" },
  { href: "/account", key: "navAccount" },
];

export function App() {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const t = useMemo(() => translator(lang), [lang]);
  const setLang = useCallback((l: Lang) => {
    storeLang(l);
    setLangState(l);
  }, []);
  useEffect(() => storeLang(lang), [lang]);

  const [account, setAccount] = useState<Account | null | undefined>(undefined);
  const [message, setMessage] = useState<string>();
  const refresh = useCallback(async () => {
    try {
      setAccount(await api<Account>("GET", "/api/auth/account"));
    } catch {
      setAccount(null);
    }
  }, []);
  const signedIn = useRef(false);
  signedIn.current = !!account;
  useEffect(() => {
    // a call refused for want of a session while signed in: the session ended elsewhere
    whenSignedOut(() => {
      if (!signedIn.current) return;
      setAccount(null);
      setMessage(t("sessionEnded"));
    });
  }, [t]);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  const signOut = useCallback(async (msg?: string) => {
    try {
      await api("POST", "/api/auth/logout");
    } catch {
      // already signed out: the cookie is useless either way
    }
    setAccount(null);
    setMessage(msg);
    navigate("/sign-in");
  }, []);

  const { path } = useLocation();
  const i18n = useMemo(() => ({ lang, t, setLang }), [lang, t, setLang]);

  let content;
  if (account === undefined) {
    content = (
      <main id="main" className="centered">
        <p role="status">{t("loading")}</p>
      </main>
    );
  } else if (account === null) {
    content = (
      <SignIn
        message={message}
        onSignedIn={async () => {
          try {
            setAccount(await api<Account>("GET", "/api/auth/account"));
            setMessage(undefined);
          } catch {
            // signed in, yet the next call carries no session: the browser refused the Secure
            // cookie (a plain-http address other than localhost)
            setMessage(t("cookieRefused"));
            return;
          }
          if (location.pathname === "/" || location.pathname.startsWith("/sign-in")) navigate("/files", true);
        }}
      />
    );
  } else {
    content = (
      <SessionContext.Provider value={{ account, refresh, signOut }}>
        <Shell path={path} />
      </SessionContext.Provider>
    );
  }
  return <I18n.Provider value={i18n}>{content}</I18n.Provider>;
}

function LanguageSwitch() {
  const t = useT();
  return (
    <I18n.Consumer>
      {({ lang, setLang }) => (
        <label className="lang">
          <span className="sr-only">{t("language")}</span>
          <select value={lang} onChange={(e) => setLang(e.target.value as Lang)} aria-label={t("language")}>
            {LANGS.map((l) => (
              <option key={l.code} value={l.code} lang={l.code}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
      )}
    </I18n.Consumer>
  );
}

export { LanguageSwitch };

function Shell({ path }: { path: string }) {
  const t = useT();
  const session = useSession();
  useEffect(() => {
    if (path === "/" || path.startsWith("/sign-in")) navigate("/files", true);
  }, [path]);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        {t("skip")}
      </a>
      <header className="top">
        <Link href="/files" className="brand">
          {t("appName")}
        </Link>
        <span className="who muted">{session.account.email}</span>
        <LanguageSwitch />
        <button type="button" onClick={() => session.signOut(t("signedOutMessage"))}>
          {t("signOut")}
        </button>
      </header>
      <nav aria-label={t("nav")} className="side">
        <ul>
          {NAV.map((n) => (
            <li key={n.href}>
              <Link href={n.href} aria-current={path.startsWith(n.href) ? "page" : undefined}>
                {t(n.key)}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="content">
        <Screen path={path} />
      </main>
    </div>
  );
}

function Screen({ path }: { path: string }) {
  const t = useT();
  if (path.startsWith("/versions/")) {
    const [type, ...name] = path.slice("/versions/".length).split("/");
    return <Versions key={path} type={decodeURIComponent(type)} name={name.map(decodeURIComponent).join("/")} />;
  }
  switch (path.replace(/\/$/, "")) {
    case "/trash":
      return <TrashScreen />;
    case "/storage":
      return <StorageScreen />;
    case "/backup":
      return <Backup />;
    case "/devices":
      return <Devices />;
    case "/plan":
      return <Plan />;
    case "/account":
      return <AccountScreen />;
    case "/map":
      return (
        <Suspense fallback={<p role="status">{t("loading")}</p>}>
          <MapScreen />
        </Suspense>
      );
    default:
      return <Files />;
  }
}
