import { useState } from "react";
import { api } from "../api";
import { CATEGORIES } from "../datatypes";
import { useT } from "../i18n";
import { asApiError, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

interface BackupType {
  type: string;
  category: string;
  enabled: boolean;
}

export function Backup() {
  const t = useT();
  const state = useAsync(() => api<{ types: BackupType[] }>("GET", "/api/files/backup-types").then((r) => r.types), []);
  const [notice, setNotice] = useState<Notice>();
  const switchType = async (type: string, enabled: boolean) => {
    try {
      await api("PUT", `/api/files/backup-types/${encodeURIComponent(type)}`, { enabled });
    } catch (e) {
      setNotice({ kind: "error", text: asApiError(e).message });
    }
    await state.reload();
  };
  return (
    <section>
      <Title>{t("backupTitle")}</Title>
      <p className="buttons">
        {/* the zip streams straight to the browser's downloads: a plain link (GET, the session cookie) */}
        <a className="button" href="/api/files/backup" download>
          {t("downloadBackup")}
        </a>
        <span className="muted">{t("downloadBackupIntro")}</span>
      </p>
      <p className="muted">{t("backupIntro")}</p>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(types) => (
          <div className="columns">
            {CATEGORIES.map((c) => (
              <fieldset key={c} className="card">
                <legend>{t(`cat_${c}`)}</legend>
                {types
                  .filter((ty) => ty.category === c)
                  .map((ty) => (
                    <label key={ty.type} className="switch">
                      <input type="checkbox" role="switch" checked={ty.enabled} onChange={(e) => void switchType(ty.type, e.target.checked)} />
                      <span>{ty.type}</span>
                    </label>
                  ))}
              </fieldset>
            ))}
          </div>
        )}
      </Loaded>
    </section>
  );
}
