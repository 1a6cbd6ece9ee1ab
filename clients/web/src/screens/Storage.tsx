import { useState } from "react";
import { api, type Storage } from "../api";
import { bytes } from "../format";
import { useLang, useT } from "../i18n";
import { useSession } from "../session";
import { Bar, ConfirmDialog, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

type Pending = { kind: "type"; type: string } | { kind: "prune" } | { kind: "all" };

export function StorageScreen() {
  const t = useT();
  const lang = useLang();
  const { account } = useSession();
  const state = useAsync(() => api<Storage>("GET", "/api/files/storage"), []);
  const [pending, setPending] = useState<Pending>();
  const [notice, setNotice] = useState<Notice>();
  const of = (used: number, total: number) => t("usedOf", { used: bytes(used, lang), quota: bytes(total, lang) });

  return (
    <section>
      <Title>{t("storageTitle")}</Title>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(s) => (
          <>
            {s.quota_bytes === 0 && <p className="notice">{t("noQuota")}</p>}
            <Bar id="storage-total" label={t("storageTitle")} value={s.used_bytes} max={s.quota_bytes} text={of(s.used_bytes, s.quota_bytes)} />
            <h2>{t("byCategory")}</h2>
            {s.categories.map((c) => (
              <Bar
                key={c.category}
                id={`storage-${c.category}`}
                label={t(`cat_${c.category}` as "cat_settings")}
                value={c.used_bytes}
                max={s.quota_bytes}
                text={of(c.used_bytes, s.quota_bytes)}
              />
            ))}
            <h2>{t("byType")}</h2>
            <ul className="type-bars">
              {s.types
                .filter((ty) => ty.file_count > 0)
                .map((ty) => (
                  <li key={ty.type} className="type-bar">
                    <Bar id={`storage-type-${ty.type}`} label={ty.type} value={ty.used_bytes} max={s.quota_bytes} text={`${bytes(ty.used_bytes, lang)} · ${t("fileCount", { n: ty.file_count })}`} />
                    <button type="button" className="link danger" onClick={() => setPending({ kind: "type", type: ty.type })}>
                      {t("deleteType", { type: ty.type })}
                    </button>
                  </li>
                ))}
            </ul>
            <div className="danger-zone">
              <div>
                <h2>{t("pruneTitle")}</h2>
                <p>{t("pruneText")}</p>
                <button type="button" onClick={() => setPending({ kind: "prune" })}>
                  {t("pruneTitle")}
                </button>
              </div>
              <div>
                <h2>{t("deleteAllTitle")}</h2>
                <p>{t("deleteAllText", { email: account.email })}</p>
                <button type="button" className="danger" onClick={() => setPending({ kind: "all" })}>
                  {t("deleteAll")}
                </button>
              </div>
            </div>
          </>
        )}
      </Loaded>
      {pending?.kind === "type" && (
        <ConfirmDialog
          title={t("deleteType", { type: pending.type })}
          text={t("deleteTypeText", { type: pending.type })}
          confirmLabel={t("delete")}
          danger
          onConfirm={async () => {
            await api("DELETE", `/api/files/types/${encodeURIComponent(pending.type)}`);
            setNotice({ kind: "ok", text: t("deleteTypeText", { type: pending.type }) });
            await state.reload();
          }}
          onClose={() => setPending(undefined)}
        />
      )}
      {pending?.kind === "prune" && (
        <ConfirmDialog
          title={t("pruneTitle")}
          text={t("pruneText")}
          confirmLabel={t("pruneTitle")}
          danger
          onConfirm={async () => {
            await api("POST", "/api/files/prune");
            setNotice({ kind: "ok", text: t("pruned") });
            await state.reload();
          }}
          onClose={() => setPending(undefined)}
        />
      )}
      {pending?.kind === "all" && (
        <ConfirmDialog
          title={t("deleteAllTitle")}
          text={t("deleteAllText", { email: account.email })}
          confirmLabel={t("deleteAll")}
          danger
          confirmWord={account.email}
          confirmWordLabel={t("typeToConfirm", { email: account.email })}
          onConfirm={async () => {
            await api("DELETE", "/api/files");
            setNotice({ kind: "ok", text: t("allDeleted") });
            await state.reload();
          }}
          onClose={() => setPending(undefined)}
        />
      )}
    </section>
  );
}
