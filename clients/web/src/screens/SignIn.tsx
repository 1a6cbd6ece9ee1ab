import { useState, type FormEvent } from "react";
import { api, type ApiError } from "../api";
import { useT } from "../i18n";
import { LanguageSwitch } from "../App";
import { browserName } from "../session";
import { asApiError, ErrorBox, Title } from "../ui";

/** E-mail, then the mailed code; the answer sets the session cookie (the page never sees the token). */
export function SignIn({ message, onSignedIn }: { message?: string; onSignedIn: () => Promise<void> }) {
  const t = useT();
  const [email, setEmail] = useState("");
  const [code, setCode] = useState("");
  const [step, setStep] = useState<"email" | "code">("email");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const sendCode = (e?: FormEvent) => {
    e?.preventDefault();
    void run(async () => {
      await api("POST", "/api/auth/login-codes", { email: email.trim() });
      setStep("code");
    });
  };
  const signIn = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      await api("POST", "/api/auth/browser-sessions", { email: email.trim(), code: code.trim(), browser: browserName() });
      await onSignedIn();
    });
  };

  return (
    <main id="main" className="centered">
      <div className="card signin">
        <div className="signin-top">
          <span className="brand">{t("appName")}</span>
          <LanguageSwitch />
        </div>
        <Title>{t("signInTitle")}</Title>
        {message && (
          <p className="notice ok" role="status">
            {message}
          </p>
        )}
        {step === "email" ? (
          <form onSubmit={sendCode}>
            <p>{t("signInIntro")}</p>
            <label className="field">
              <span>{t("email")}</span>
              <input
                type="email"
                name="email"
                autoComplete="email"
                required
                value={email}
                onChange={(e) => setEmail(e.target.value)}
              />
            </label>
            <button type="submit" className="primary" disabled={busy}>
              {t("sendCode")}
            </button>
          </form>
        ) : (
          <form onSubmit={signIn}>
            <p role="status">{t("codeSent", { email })}</p>
            <label className="field">
              <span>{t("code")}</span>
              <input
                name="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                required
                autoFocus
                value={code}
                onChange={(e) => setCode(e.target.value)}
              />
            </label>
            <div className="buttons">
              <button type="submit" className="primary" disabled={busy}>
                {t("signIn")}
              </button>
              <button type="button" onClick={() => sendCode()} disabled={busy}>
                {t("resend")}
              </button>
              <button type="button" className="link" onClick={() => setStep("email")}>
                {t("otherEmail")}
              </button>
            </div>
          </form>
        )}
        {error && <ErrorBox error={error} />}
      </div>
    </main>
  );
}
