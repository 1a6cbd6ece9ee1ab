import { useMemo, useRef, useState, type DragEvent } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { api, ApiError, filePath, upload, type FileVersion } from "../api";
import { CATEGORIES, TYPES, typesOf } from "../datatypes";
import { bytes, dateTime } from "../format";
import { useLang, useT } from "../i18n";
import { Link, setQuery, useLocation } from "../router";
import { useSession } from "../session";
import { asApiError, ConfirmDialog, Loaded, NoticeLine, Title, useAsync, type Notice } from "../ui";

interface Upload {
  id: number;
  name: string;
  type: string;
  file: File;
  loaded: number;
  total: number;
  error?: ApiError;
  done?: boolean;
}

let uploadIds = 0;

export function Files() {
  const t = useT();
  const { query } = useLocation();
  const category = query.get("category") ?? "";
  const type = query.get("type") ?? "";
  const q = query.get("q") ?? "";
  const state = useAsync(() => api<{ files: FileVersion[] }>("GET", "/api/files").then((r) => r.files), []);
  const [notice, setNotice] = useState<Notice>();
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [uploadType, setUploadType] = useState(type || "GPX");
  const [dragging, setDragging] = useState(false);
  const chooser = useRef<HTMLInputElement>(null);

  const patch = (id: number, change: Partial<Upload>) =>
    setUploads((list) => list.map((u) => (u.id === id ? { ...u, ...change } : u)));

  const send = async (u: Upload, overwrite = false) => {
    const existing = state.data?.find((f) => f.type === u.type && f.name === u.name);
    patch(u.id, { error: undefined, loaded: 0 });
    try {
      await upload(u.type, u.name, u.file, {
        baseVersion: overwrite ? undefined : existing?.version_id,
        overwrite,
        onProgress: (loaded, total) => patch(u.id, { loaded, total }),
      });
      patch(u.id, { done: true, loaded: u.file.size });
      setNotice({ kind: "ok", text: t("uploaded", { name: u.name }) });
    } catch (e) {
      patch(u.id, { error: asApiError(e) });
    }
    await state.reload();
  };

  const start = (files: FileList | File[]) => {
    const fresh = Array.from(files).map((file) => ({
      id: ++uploadIds,
      name: file.name,
      type: uploadType,
      file,
      loaded: 0,
      total: file.size,
    }));
    setUploads((list) => [...list.filter((u) => !u.done), ...fresh]);
    void (async () => {
      for (const u of fresh) await send(u);
    })();
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (e.dataTransfer.files.length) start(e.dataTransfer.files);
  };

  return (
    <section
      className={"files" + (dragging ? " dragging" : "")}
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes("Files")) {
          e.preventDefault();
          setDragging(true);
        }
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setDragging(false);
      }}
      onDrop={onDrop}
    >
      <Title>{t("filesTitle")}</Title>
      <div className="toolbar">
        <label className="field inline">
          <span>{t("category")}</span>
          <select value={category} onChange={(e) => setQuery({ category: e.target.value, type: "" })}>
            <option value="">{t("all")}</option>
            {CATEGORIES.map((c) => (
              <option key={c} value={c}>
                {t(`cat_${c}`)}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>{t("type")}</span>
          <select value={type} onChange={(e) => setQuery({ type: e.target.value })}>
            <option value="">{t("all")}</option>
            {typesOf(category || null).map((ty) => (
              <option key={ty} value={ty}>
                {ty}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline grow">
          <span>{t("search")}</span>
          <input type="search" value={q} onChange={(e) => setQuery({ q: e.target.value })} />
        </label>
      </div>
      <div className="toolbar upload">
        <label className="field inline">
          <span>{t("uploadType")}</span>
          <select value={uploadType} onChange={(e) => setUploadType(e.target.value)}>
            {Object.keys(TYPES).map((ty) => (
              <option key={ty} value={ty}>
                {ty}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="primary" onClick={() => chooser.current?.click()}>
          {t("chooseFiles")}
        </button>
        <input
          ref={chooser}
          type="file"
          multiple
          hidden
          data-testid="file-chooser"
          onChange={(e) => {
            if (e.target.files?.length) start(e.target.files);
            e.target.value = "";
          }}
        />
        <span className="muted drop-hint">{t("dropHere", { type: uploadType })}</span>
      </div>
      {uploads.length > 0 && (
        <ul className="uploads" aria-label={t("upload")}>
          {uploads.map((u) => (
            <li key={u.id}>
              <label>
                <span>{u.done ? t("uploaded", { name: u.name }) : t("uploading", { name: u.name })}</span>
                <progress max={u.total || 1} value={u.loaded} />
              </label>
              {u.error && (
                <div className="notice error" role="alert">
                  <p>{t("uploadFailed", { name: u.name, message: u.error.message })}</p>
                  {u.error.status === 409 && (
                    <button type="button" onClick={() => void send(u, true)}>
                      {t("replace")}
                    </button>
                  )}
                </div>
              )}
            </li>
          ))}
        </ul>
      )}
      <NoticeLine notice={notice} />
      <Loaded state={state}>
        {(files) => (
          <FileList
            files={files}
            category={category}
            type={type}
            q={q}
            onDeleted={(f) => {
              setNotice({ kind: "ok", text: t("deleted", { name: f.name }) });
              void state.reload();
            }}
          />
        )}
      </Loaded>
      {dragging && (
        <div className="drop-overlay" aria-hidden="true">
          {t("dropHere", { type: uploadType })}
        </div>
      )}
    </section>
  );
}

function FileList(props: { files: FileVersion[]; category: string; type: string; q: string; onDeleted: (f: FileVersion) => void }) {
  const t = useT();
  const lang = useLang();
  const { account } = useSession();
  const [deleting, setDeleting] = useState<FileVersion>();
  const devices = useMemo(() => new Map(account.devices.map((d) => [d.id, d.name || d.model || d.platform])), [account]);
  const shown = useMemo(() => {
    const needle = props.q.trim().toLowerCase();
    return props.files
      .filter((f) => (!props.category || (f.category ?? TYPES[f.type]) === props.category) && (!props.type || f.type === props.type))
      .filter((f) => !needle || f.name.toLowerCase().includes(needle))
      .sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
  }, [props.files, props.category, props.type, props.q]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 52,
    overscan: 10,
  });

  if (props.files.length === 0) return <p className="empty">{t("noFiles")}</p>;
  return (
    <>
      <p className="muted" aria-live="polite">
        {t("fileCount", { n: shown.length })}
      </p>
      {shown.length === 0 ? (
        <p className="empty">{t("noMatch")}</p>
      ) : (
        <div className="file-table">
          <div className="file-row head" aria-hidden="true">
            <span>{t("name")}</span>
            <span>{t("type")}</span>
            <span>{t("size")}</span>
            <span>{t("lastChange")}</span>
            <span>{t("device")}</span>
            <span>{t("actions")}</span>
          </div>
          <div className="scroller" ref={scroller} tabIndex={0} aria-label={t("filesTitle")} role="region">
            <ul role="list" className="virtual" style={{ height: virtual.getTotalSize() }}>
              {virtual.getVirtualItems().map((item) => {
                const f = shown[item.index];
                const href = filePath(f.type, f.name);
                return (
                  <li
                    key={f.type + "/" + f.name}
                    className="file-row"
                    data-index={item.index}
                    ref={virtual.measureElement}
                    aria-setsize={shown.length}
                    aria-posinset={item.index + 1}
                    style={{ transform: `translateY(${item.start}px)` }}
                  >
                    <span className="name">
                      <Link href={`/versions/${encodeURIComponent(f.type)}/${f.name.split("/").map(encodeURIComponent).join("/")}`}>
                        {f.name}
                      </Link>
                    </span>
                    <span className="type">{f.type}</span>
                    <span>{bytes(f.size, lang)}</span>
                    <span>{dateTime(f.updatetime, lang)}</span>
                    <span className="device">{(f.device_id && devices.get(f.device_id)) || t("unknownDevice")}</span>
                    <span className="actions">
                      <a href={href} download={f.name.split("/").pop()} aria-label={`${t("download")} ${f.name}`}>
                        {t("download")}
                      </a>
                      <button type="button" className="link danger" onClick={() => setDeleting(f)} aria-label={`${t("delete")} ${f.name}`}>
                        {t("delete")}
                      </button>
                    </span>
                  </li>
                );
              })}
            </ul>
          </div>
        </div>
      )}
      {deleting && (
        <ConfirmDialog
          title={t("deleteFileTitle", { name: deleting.name })}
          text={t("deleteFileText")}
          confirmLabel={t("delete")}
          danger
          onConfirm={async () => {
            await api("DELETE", filePath(deleting.type, deleting.name) + `?base_version=${encodeURIComponent(deleting.version_id)}`);
            props.onDeleted(deleting);
          }}
          onClose={() => setDeleting(undefined)}
        />
      )}
    </>
  );
}

