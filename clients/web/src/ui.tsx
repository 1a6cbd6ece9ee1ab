// Shared pieces of every screen: loading/error/empty states that show the server's message,
// a confirmation dialog (the native <dialog>: focus kept inside, Escape closes), notices.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "./api";
import { useT } from "./i18n";

export interface Async<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => Promise<void>;
}

export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError>();
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await load();
      if (mine === generation.current) {
        setData(value);
        setError(undefined);
      }
    } catch (e) {
      if (mine === generation.current) setError(asApiError(e));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload };
}

export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, "client", e instanceof Error ? e.message : String(e));
}

/** Loading, error (with the server's message and a retry) or the content. */
export function Loaded<T>({ state, children }: { state: Async<T>; children: (data: T) => ReactNode }) {
  const t = useT();
  if (state.error && state.data === undefined) return <ErrorBox error={state.error} onRetry={state.reload} />;
  if (state.data === undefined)
    return (
      <p className="muted" role="status">
        {t("loading")}
      </p>
    );
  return (
    <>
      {state.error && <ErrorBox error={state.error} onRetry={state.reload} />}
      {children(state.data)}
    </>
  );
}

export function ErrorBox({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  const t = useT();
  return (
    <div className="notice error" role="alert">
      <p>{error.message}</p>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          {t("retry")}
        </button>
      )}
    </div>
  );
}

export interface Notice {
  kind: "ok" | "error";
  text: string;
}

export function NoticeLine({ notice }: { notice: Notice | undefined }) {
  return (
    <div role="status" aria-live="polite" className={notice ? `notice ${notice.kind}` : "sr-only"}>
      {notice?.text ?? ""}
    </div>
  );
}

/** A modal confirmation; `confirmWord` makes the person type a word first (typed confirmation). */
export function ConfirmDialog(props: {
  title: string;
  text: string;
  confirmLabel: string;
  danger?: boolean;
  confirmWord?: string;
  confirmWordLabel?: string;
  onConfirm: () => Promise<void> | void;
  onClose: () => void;
}) {
  const t = useT();
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  const ready = !props.confirmWord || typed.trim().toLowerCase() === props.confirmWord.toLowerCase();
  const confirm = async () => {
    setBusy(true);
    try {
      await props.onConfirm();
      props.onClose();
    } catch (e) {
      setError(asApiError(e));
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title" onClose={props.onClose}>
      <h2 id="dialog-title">{props.title}</h2>
      <p>{props.text}</p>
      {props.confirmWord && (
        <label className="field">
          <span>{props.confirmWordLabel}</span>
          <input value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
        </label>
      )}
      {error && <ErrorBox error={error} />}
      <div className="buttons">
        <button type="button" onClick={props.onClose} autoFocus>
          {t("cancel")}
        </button>
        <button type="button" className={props.danger ? "danger" : "primary"} disabled={!ready || busy} onClick={confirm}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** A bar of used against a total, as an ARIA meter (value in bytes). */
export function Bar({ label, value, max, text, id }: { label: string; value: number; max: number; text: string; id?: string }) {
  const share = max > 0 ? Math.min(1, value / max) : value > 0 ? 1 : 0;
  return (
    <div className="bar-row">
      <div className="bar-label">
        <span>{label}</span>
        <span className="muted">{text}</span>
      </div>
      <div
        className="bar"
        role="meter"
        id={id}
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={max}
        aria-valuenow={Math.min(value, max || value)}
        aria-valuetext={text}
        data-used={value}
        data-total={max}
      >
        <div className={"bar-fill" + (share >= 0.9 ? " full" : "")} style={{ width: `${(share * 100).toFixed(2)}%` }} />
      </div>
    </div>
  );
}

/** The page's heading, focused when the screen changes so screen readers announce it. */
export function Title({ children }: { children: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}
