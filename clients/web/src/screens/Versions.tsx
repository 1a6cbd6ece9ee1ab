import { useState } from "react";
import { api, filePath, type FileVersion } from "../api";
import { bytes, dateTime } from "../format";
import { useLang, useT } from "../i18n";
import { Link } from "../router";
import { useSession } from "../session";
import { ConfirmDialog, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

export function Versions({ type, name }: { type: string; name: string }) {
  const t = useT();
  const lang = useLang();
  const { account } = useSession();
  const path = filePath(type, name);
  const state = useAsync(
    () => api<{ versions: FileVersion[] }>("GET", `/api/files/history/${path.slice("/api/files/".length)}`).then((r) => r.versions),
    [path],
  );
  const [deleting, setDeleting] = useState<FileVersion>();
  const [notice, setNotice] = useState<Notice>();
  const deviceName = (id?: string | null) => account.devices.find((d) => d.id === id)?.name ?? t("unknownDevice");
  return (
    <section>
      <p>
        <Link href={`/files?type=${encodeURIComponent(type)}`}>← {t("backToFiles")}</Link>
      </p>
      <Title>{t("versionsTitle", { name })}</Title>
      <p className="muted">{type}</p>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(versions) => {
          const ordered = [...versions].sort((a, b) => b.updatetime - a.updatetime);
          return (
            <table className="table versions">
              <thead>
                <tr>
                  <th scope="col">{t("lastChange")}</th>
                  <th scope="col">{t("size")}</th>
                  <th scope="col">{t("device")}</th>
                  <th scope="col">{t("actions")}</th>
                </tr>
              </thead>
              <tbody>
                {ordered.map((v, i) => (
                  <tr key={v.version_id} data-version={v.version_id}>
                    <td>
                      {dateTime(v.updatetime, lang)} {i === 0 && !v.deleted && <span className="tag">{t("current")}</span>}
                      {v.deleted && <span className="tag">{t("deleteMarker")}</span>}
                    </td>
                    <td>{v.deleted ? "—" : bytes(v.size, lang)}</td>
                    <td>{deviceName(v.device_id)}</td>
                    <td className="actions">
                      {!v.deleted && (
                        <a href={`${path}?version=${encodeURIComponent(v.version_id)}`} download={name.split("/").pop()}>
                          {t("download")}
                        </a>
                      )}
                      {!v.deleted && (
                        <button type="button" className="link danger" onClick={() => setDeleting(v)}>
                          {t("delete")}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          );
        }}
      </Loaded>
      {deleting && (
        <ConfirmDialog
          title={t("deleteVersionTitle", { name })}
          text={t("deleteVersionText")}
          confirmLabel={t("delete")}
          danger
          onConfirm={async () => {
            await api("DELETE", `${path}?version=${encodeURIComponent(deleting.version_id)}`);
            setNotice({ kind: "ok", text: t("versionDeleted") });
            await state.reload();
          }}
          onClose={() => setDeleting(undefined)}
        />
      )}
    </section>
  );
}
