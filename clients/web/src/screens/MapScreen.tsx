// Favourites and tracks from the cloud on a Leaflet map. Vector layers are drawn by Leaflet's SVG
// renderer, so they show even when no tile loads (a closed network, a tile server down).
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import L from "leaflet";
import "leaflet/dist/leaflet.css";
import { api, filePath, type FileVersion } from "../api";
import { duration, km } from "../format";
import { parseGpx, trackStats, type Track, type TrackStats, type Waypoint } from "../gpx";
import { useLang, useT } from "../i18n";
import { Title, useAsync, Loaded } from "../ui";

const MAX_FILES = 200;
const MAX_BYTES = 20 * 1024 * 1024;
const TILE_KEY = "osmcloud.tiles";
export const DEFAULT_TILES = {
  url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
  attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
};
const TRACK_COLOURS = ["#d7301f", "#2b8cbe", "#31a354", "#756bb1", "#e6550d", "#636363"];

interface Loaded {
  file: FileVersion;
  waypoints: Waypoint[];
  tracks: { track: Track; stats: TrackStats; colour: string }[];
  error?: string;
}

function tiles(): { url: string; attribution: string } {
  try {
    const stored = JSON.parse(localStorage.getItem(TILE_KEY) ?? "null");
    if (stored && typeof stored.url === "string") return stored;
  } catch {
    /* a broken setting: the default */
  }
  return DEFAULT_TILES;
}

async function loadPlaces(): Promise<Loaded[]> {
  const { files } = await api<{ files: FileVersion[] }>("GET", "/api/files?types=FAVOURITES,GPX");
  const wanted = files.filter((f) => f.size <= MAX_BYTES && f.name.toLowerCase().endsWith(".gpx")).slice(0, MAX_FILES);
  let colour = 0;
  return Promise.all(
    wanted.map(async (file): Promise<Loaded> => {
      try {
        const response = await fetch(filePath(file.type, file.name), { credentials: "same-origin" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const gpx = parseGpx(await response.text());
        return {
          file,
          waypoints: gpx.waypoints,
          tracks: gpx.tracks.map((track) => ({
            track,
            stats: trackStats(track),
            colour: track.color ?? TRACK_COLOURS[colour++ % TRACK_COLOURS.length],
          })),
        };
      } catch (e) {
        return { file, waypoints: [], tracks: [], error: e instanceof Error ? e.message : String(e) };
      }
    }),
  );
}

export default function MapScreen() {
  const t = useT();
  const state = useAsync(loadPlaces, []);
  return (
    <section className="map-screen">
      <Title>{t("mapTitle")}</Title>
      <p className="muted">{t("mapIntro")}</p>
      <Loaded state={state}>{(loaded) => <PlacesMap loaded={loaded} />}</Loaded>
    </section>
  );
}

function PlacesMap({ loaded }: { loaded: Loaded[] }) {
  const t = useT();
  const lang = useLang();
  const element = useRef<HTMLDivElement>(null);
  const [tileSource, setTileSource] = useState(tiles);
  const waypoints = useMemo(() => loaded.flatMap((l) => l.waypoints), [loaded]);
  const tracks = useMemo(() => loaded.flatMap((l) => l.tracks.map((tr) => ({ ...tr, file: l.file }))), [loaded]);
  const groups = useMemo(() => {
    const by = new Map<string, Waypoint[]>();
    for (const w of waypoints) by.set(w.group, [...(by.get(w.group) ?? []), w]);
    return [...by.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [waypoints]);

  useEffect(() => {
    if (!element.current) return;
    const map = L.map(element.current, { preferCanvas: false, keyboard: true }).setView([52.1, 5.1], 7);
    L.tileLayer(tileSource.url, { attribution: tileSource.attribution, maxZoom: 19 }).addTo(map);
    const bounds = L.latLngBounds([]);
    for (const { track, stats, colour, file } of tracks) {
      for (const seg of track.segments) {
        const line = L.polyline(
          seg.map((p) => [p.lat, p.lon] as [number, number]),
          { color: colour, weight: 4, className: "track-line" },
        ).addTo(map);
        line.bindTooltip(`${track.name || file.name}: ${km(stats.distanceMeters, lang)}`);
        bounds.extend(line.getBounds());
      }
    }
    for (const w of waypoints) {
      const marker = L.circleMarker([w.lat, w.lon], {
        radius: 7,
        color: "#ffffff",
        weight: 2,
        fillColor: w.color ?? "#d7301f",
        fillOpacity: 1,
        className: "favourite-marker",
      }).addTo(map);
      marker.bindTooltip(w.group ? `${w.name} (${w.group})` : w.name);
      bounds.extend([w.lat, w.lon]);
    }
    if (bounds.isValid()) map.fitBounds(bounds, { padding: [24, 24], maxZoom: 15 });
    return () => {
      map.remove();
    };
  }, [tracks, waypoints, tileSource, lang]);

  const saveTiles = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const next = { url: String(form.get("url") || DEFAULT_TILES.url), attribution: String(form.get("attribution") ?? "") };
    localStorage.setItem(TILE_KEY, JSON.stringify(next));
    setTileSource(next);
  };

  const failed = loaded.filter((l) => l.error);
  return (
    <>
      {failed.map((l) => (
        <p key={l.file.type + l.file.name} className="notice error" role="alert">
          {t("notParsed", { name: l.file.name, message: l.error! })}
        </p>
      ))}
      <div className="map-layout">
        <div ref={element} className="map" role="region" aria-label={t("mapTitle")} data-testid="map" />
        <div className="map-side">
          {waypoints.length === 0 && tracks.length === 0 && <p className="empty">{t("noPlaces")}</p>}
          {tracks.length > 0 && (
            <>
              <h2>{t("tracks")}</h2>
              <ul className="cards">
                {tracks.map(({ track, stats, colour, file }, i) => (
                  <li key={file.name + i} className="card track" data-testid="track">
                    <span className="swatch" style={{ background: colour }} aria-hidden="true" />
                    <div>
                      <strong>{track.name || file.name}</strong>
                      <dl className="stats">
                        <dt>{t("distance")}</dt>
                        <dd data-testid="track-distance">{km(stats.distanceMeters, lang)}</dd>
                        <dt>{t("duration")}</dt>
                        <dd>{duration(stats.durationSeconds)}</dd>
                        <dt>{t("elevationGain")}</dt>
                        <dd data-testid="track-climb">{stats.elevationGainMeters === null ? "—" : `${Math.round(stats.elevationGainMeters)} m`}</dd>
                      </dl>
                    </div>
                  </li>
                ))}
              </ul>
            </>
          )}
          {groups.length > 0 && (
            <>
              <h2>{t("favourites")}</h2>
              {groups.map(([group, points]) => (
                <details key={group} open>
                  <summary>
                    {group || t("noGroup")} ({points.length})
                  </summary>
                  <ul className="plain">
                    {points.map((p, i) => (
                      <li key={i}>
                        <span className="swatch round" style={{ background: p.color ?? "#d7301f" }} aria-hidden="true" /> {p.name}
                      </li>
                    ))}
                  </ul>
                </details>
              ))}
            </>
          )}
          <details className="card">
            <summary>{t("tileSource")}</summary>
            <form onSubmit={saveTiles}>
              <label className="field">
                <span>{t("tileUrl")}</span>
                <input name="url" defaultValue={tileSource.url} />
              </label>
              <label className="field">
                <span>{t("tileAttribution")}</span>
                <input name="attribution" defaultValue={tileSource.attribution} />
              </label>
              <button type="submit">{t("save")}</button>
              <p className="muted small">{t("tilesHint")}</p>
            </form>
          </details>
        </div>
      </div>
    </>
  );
}
