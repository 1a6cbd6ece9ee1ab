import { useState } from "react";
import { api, type Device } from "../api";
import { dateTime } from "../format";
import { useLang, useT } from "../i18n";
import { useSession } from "../session";
import { ConfirmDialog, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

export function Devices() {
  const t = useT();
  const lang = useLang();
  const session = useSession();
  const state = useAsync(() => api<{ devices: Device[] }>("GET", "/api/auth/devices").then((r) => r.devices), []);
  const [pending, setPending] = useState<Device>();
  const [notice, setNotice] = useState<Notice>();
  const label = (d: Device) => d.name || [d.brand, d.model].filter(Boolean).join(" ") || d.platform || d.id;
  return (
    <section>
      <Title>{t("devicesTitle")}</Title>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(devices) => (
          <ul className="cards">
            {devices.map((d) => (
              <li key={d.id} className="card device" data-device={d.id}>
                <div className="grow">
                  <strong>{label(d)}</strong> {d.this_device && <span className="tag">{t("thisDevice")}</span>}
                  <div className="muted small">
                    {[d.brand, d.model, d.platform].filter(Boolean).join(" · ")}
                  </div>
                  <div className="muted small">
                    {t("lastSeen")}: {dateTime(d.last_seen_at, lang)} · {t("signedInSince")}: {dateTime(d.created_at, lang)}
                  </div>
                </div>
                <button type="button" className="danger" onClick={() => setPending(d)} aria-label={`${t("logOut")} ${label(d)}`}>
                  {t("logOut")}
                </button>
              </li>
            ))}
          </ul>
        )}
      </Loaded>
      {pending && (
        <ConfirmDialog
          title={t("logOutTitle", { name: label(pending) })}
          text={t("logOutText")}
          confirmLabel={t("logOut")}
          danger
          onConfirm={async () => {
            if (pending.this_device) return session.signOut(t("signedOutMessage"));
            await api("DELETE", `/api/auth/devices/${encodeURIComponent(pending.id)}`);
            setNotice({ kind: "ok", text: t("loggedOut", { name: label(pending) }) });
            await Promise.all([state.reload(), session.refresh()]);
          }}
          onClose={() => setPending(undefined)}
        />
      )}
    </section>
  );
}
