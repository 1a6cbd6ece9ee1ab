import { useState } from "react";
import { api, type BillingAccount, type Usage } from "../api";
import { bytes, date } from "../format";
import { useLang, useT } from "../i18n";
import { asApiError, Bar, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

export function Plan() {
  const t = useT();
  const lang = useLang();
  const state = useAsync(
    () => Promise.all([api<BillingAccount>("GET", "/api/billing/account"), api<Usage>("GET", "/api/files/usage")]),
    [],
  );
  const [notice, setNotice] = useState<Notice>();
  const activate = async () => {
    try {
      await api("POST", "/api/billing/start");
    } catch (e) {
      setNotice({ kind: "error", text: asApiError(e).message });
    }
    await state.reload();
  };
  const planName = (p: string) => (p === "pro" ? t("planPro") : p === "start" ? t("planStart") : t("planNone"));
  const statusName = (s: string) =>
    ({ active: t("statusActive"), in_grace: t("statusIn_grace"), expired: t("statusExpired") })[s] ?? t("statusNone");
  return (
    <section>
      <Title>{t("planTitle")}</Title>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {([billing, usage]) => (
          <>
            <dl className="facts">
              <dt>{t("plan")}</dt>
              <dd data-testid="plan-name">{planName(billing.plan)}</dd>
              <dt>{t("status")}</dt>
              <dd>{statusName(billing.status)}</dd>
              {billing.expires_at && (
                <>
                  <dt>{t("expires")}</dt>
                  <dd>{date(billing.expires_at, lang)}</dd>
                </>
              )}
              {billing.grace_until && (
                <>
                  <dt>{t("graceUntil")}</dt>
                  <dd>{date(billing.grace_until, lang)}</dd>
                </>
              )}
            </dl>
            <Bar
              label={t("usage")}
              value={usage.used_bytes}
              max={usage.quota_bytes}
              text={t("usedOf", { used: bytes(usage.used_bytes, lang), quota: bytes(usage.quota_bytes, lang) })}
            />
            {(billing.plan === "none" || !billing.plan || billing.status === "expired") && billing.plan !== "start" && (
              <div className="card">
                <p>{t("startIntro", { quota: "5 MB" })}</p>
                <button type="button" className="primary" onClick={() => void activate()}>
                  {t("activateStart")}
                </button>
              </div>
            )}
            <p className="muted">{t("proIntro")}</p>
          </>
        )}
      </Loaded>
    </section>
  );
}
