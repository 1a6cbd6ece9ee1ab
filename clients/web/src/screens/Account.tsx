import { useState, type FormEvent } from "react";
import { api } from "../api";
import { date } from "../format";
import { useLang, useT } from "../i18n";
import { useSession } from "../session";
import { asApiError, ErrorBox, Title } from "../ui";
import type { ApiError } from "../api";

export function AccountScreen() {
  const t = useT();
  const lang = useLang();
  const session = useSession();
  const [step, setStep] = useState<"start" | "code">("start");
  const [code, setCode] = useState("");
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
  const deleteNow = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      await api("POST", "/api/auth/account/delete", { code: code.trim() });
      await session.signOut(t("accountDeleted"));
    });
  };
  return (
    <section>
      <Title>{t("accountTitle")}</Title>
      <dl className="facts">
        <dt>{t("email")}</dt>
        <dd>{session.account.email}</dd>
        <dt>{t("memberSince")}</dt>
        <dd>{date(session.account.created_at, lang)}</dd>
      </dl>
      <div className="danger-zone">
        <div>
          <h2>{t("deleteAccount")}</h2>
          <p>{t("deleteAccountIntro")}</p>
          {step === "start" ? (
            <button
              type="button"
              className="danger"
              disabled={busy}
              onClick={() =>
                void run(async () => {
                  await api("POST", "/api/auth/account/deletion-codes");
                  setStep("code");
                })
              }
            >
              {t("mailDeletionCode")}
            </button>
          ) : (
            <form onSubmit={deleteNow}>
              <p role="status">{t("deletionCodeSent", { email: session.account.email })}</p>
              <label className="field">
                <span>{t("deletionCode")}</span>
                <input name="deletion-code" inputMode="numeric" autoComplete="one-time-code" required autoFocus value={code} onChange={(e) => setCode(e.target.value)} />
              </label>
              <button type="submit" className="danger" disabled={busy}>
                {t("deleteAccountNow")}
              </button>
            </form>
          )}
          {error && <ErrorBox error={error} />}
        </div>
      </div>
    </section>
  );
}
