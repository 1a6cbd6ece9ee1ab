import { useState } from "react";
import { api, type Trash, type TrashItem } from "../api";
import { bytes, dateTime, month } from "../format";
import { useLang, useT } from "../i18n";
import { asApiError, ConfirmDialog, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

type Pending = { kind: "delete"; item: TrashItem } | { kind: "empty"; count: number };

export function TrashScreen() {
  const t = useT();
  const lang = useLang();
  const state = useAsync(() => api<Trash>("GET", "/api/trash"), []);
  const [notice, setNotice] = useState<Notice>();
  const [pending, setPending] = useState<Pending>();

  const restore = async (item: TrashItem) => {
    try {
      await api("POST", `/api/trash/items/${encodeURIComponent(item.id)}/restore`);
      setNotice({ kind: "ok", text: t("restored", { name: item.name }) });
    } catch (e) {
      setNotice({ kind: "error", text: asApiError(e).message });
    }
    await state.reload();
  };

  return (
    <section>
      <Title>{t("trashTitle")}</Title>
      <p className="muted">{t("trashIntro")}</p>
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(trash) =>
          trash.total_items === 0 ? (
            <p className="empty">{t("trashEmpty")}</p>
          ) : (
            <>
              <div className="toolbar">
                <span>{t("trashTotals", { n: trash.total_items, size: bytes(trash.total_bytes, lang) })}</span>
                <button type="button" className="danger" onClick={() => setPending({ kind: "empty", count: trash.total_items })}>
                  {t("emptyTrash")}
                </button>
              </div>
              {trash.months.map((m) => (
                <section key={m.month} className="month" aria-labelledby={`month-${m.month}`}>
                  <h2 id={`month-${m.month}`}>{month(m.month, lang)}</h2>
                  <ul className="cards">
                    {m.items.map((item) => (
                      <li key={item.id} className="card trash-item" data-id={item.id}>
                        <div className="grow">
                          <strong className="name">{item.name}</strong>
                          <span className="muted">
                            {" "}
                            · {item.type} · {bytes(Math.max(0, item.size), lang)}
                          </span>
                          <div className="muted small">
                            {t("deletedAt")}: {dateTime(item.deleted_at, lang)} · {t("expiresAt")}: {dateTime(item.expires_at, lang)}
                          </div>
                        </div>
                        <div className="actions">
                          <button type="button" onClick={() => void restore(item)} aria-label={`${t("restore")} ${item.name}`}>
                            {t("restore")}
                          </button>
                          <a
                            href={`/api/trash/items/${encodeURIComponent(item.id)}/download`}
                            download={item.name.split("/").pop()}
                            aria-label={`${t("download")} ${item.name}`}
                          >
                            {t("download")}
                          </a>
                          <button
                            type="button"
                            className="link danger"
                            onClick={() => setPending({ kind: "delete", item })}
                            aria-label={`${t("deleteNow")} ${item.name}`}
                          >
                            {t("deleteNow")}
                          </button>
                        </div>
                      </li>
                    ))}
                  </ul>
                </section>
              ))}
            </>
          )
        }
      </Loaded>
      {pending?.kind === "empty" && (
        <ConfirmDialog
          title={t("emptyTrashTitle")}
          text={t("emptyTrashText", { n: pending.count })}
          confirmLabel={t("emptyTrash")}
          danger
          onConfirm={async () => {
            await api("DELETE", "/api/trash");
            setNotice({ kind: "ok", text: t("trashEmptied") });
            await state.reload();
          }}
          onClose={() => setPending(undefined)}
        />
      )}
      {pending?.kind === "delete" && (
        <ConfirmDialog
          title={t("deleteNowTitle", { name: pending.item.name })}
          text={t("deleteNowText")}
          confirmLabel={t("deleteNow")}
          danger
          onConfirm={async () => {
            await api("DELETE", `/api/trash/items/${encodeURIComponent(pending.item.id)}`);
            await state.reload();
          }}
          onClose={() => setPending(undefined)}
        />
      )}
    </section>
  );
}
