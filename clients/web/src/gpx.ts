// GPX as OsmAnd writes it: favourites are waypoints (<wpt>) grouped by <type> (or an
// osmand:points_groups entry) with an osmand:color; tracks are <trk> of <trkseg> of <trkpt>
// (routes, <rte>/<rtept>, count as tracks). Pure functions, no DOM: a small XML reader of its own,
// so the same code runs in the browser and in the unit tests.

export interface XmlNode {
  name: string; // local name, without a namespace prefix
  attrs: Record<string, string>;
  children: XmlNode[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (m, e: string) => {
    if (e[0] === "#") {
      const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : m;
    }
    return ENTITIES[e] ?? m;
  });
}

function localName(qname: string): string {
  const i = qname.indexOf(":");
  return i >= 0 ? qname.slice(i + 1) : qname;
}

const TOKEN =
  /<!\[CDATA\[([\s\S]*?)\]\]>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<![^>]*>|<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)|(<)/g;
const ATTR = /([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/** Parses XML into a tree; throws an Error with a reason on mismatched or unclosed tags. */
export function parseXml(xml: string): XmlNode {
  const root: XmlNode = { name: "#document", attrs: {}, children: [], text: "" };
  const stack: XmlNode[] = [root];
  TOKEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TOKEN.exec(xml))) {
    const top = stack[stack.length - 1];
    if (m[1] !== undefined) top.text += m[1];
    else if (m[6] !== undefined) top.text += decode(m[6]);
    else if (m[7] !== undefined) throw new Error(`unexpected '<' at offset ${m.index}`);
    else if (m[3] !== undefined) {
      const name = localName(m[3]);
      if (m[2] === "/") {
        if (top.name !== name || stack.length === 1) throw new Error(`closing tag </${m[3]}> does not match <${top.name}>`);
        stack.pop();
      } else {
        const attrs: Record<string, string> = {};
        ATTR.lastIndex = 0;
        let a: RegExpExecArray | null;
        while ((a = ATTR.exec(m[4]))) attrs[localName(a[1])] = decode(a[2] ?? a[3] ?? "");
        const node: XmlNode = { name, attrs, children: [], text: "" };
        top.children.push(node);
        if (m[5] !== "/") stack.push(node);
      }
    }
  }
  if (stack.length > 1) throw new Error(`<${stack[stack.length - 1].name}> is not closed`);
  return root;
}

function child(node: XmlNode, name: string): XmlNode | undefined {
  return node.children.find((c) => c.name === name);
}

function childText(node: XmlNode, name: string): string {
  return child(node, name)?.text.trim() ?? "";
}

function descendants(node: XmlNode, name: string, out: XmlNode[] = []): XmlNode[] {
  for (const c of node.children) {
    if (c.name === name) out.push(c);
    else descendants(c, name, out);
  }
  return out;
}

/** OsmAnd writes #AARRGGBB or #RRGGBB; CSS wants #RRGGBB (the alpha is dropped). */
export function cssColor(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^#[0-9a-fA-F]{8}$/.test(v)) return "#" + v.slice(3).toLowerCase();
  if (/^#[0-9a-fA-F]{6}$/.test(v)) return v.toLowerCase();
  return undefined;
}

export interface Point {
  lat: number;
  lon: number;
  ele?: number;
  time?: number; // ms since the epoch
}

export interface Waypoint extends Point {
  name: string;
  group: string; // "" when the point belongs to no group
  color?: string;
  description?: string;
}

export interface Track {
  name: string;
  segments: Point[][];
  color?: string;
}

export interface Gpx {
  name: string;
  waypoints: Waypoint[];
  tracks: Track[];
  groups: Record<string, { color?: string }>;
}

function point(node: XmlNode): Point | null {
  const lat = Number(node.attrs.lat);
  const lon = Number(node.attrs.lon);
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  const p: Point = { lat, lon };
  const ele = childText(node, "ele");
  if (ele !== "" && Number.isFinite(Number(ele))) p.ele = Number(ele);
  const time = Date.parse(childText(node, "time"));
  if (Number.isFinite(time)) p.time = time;
  return p;
}

function extensionColor(node: XmlNode): string | undefined {
  const ext = child(node, "extensions");
  return ext ? cssColor(childText(ext, "color")) : undefined;
}

export function parseGpx(xml: string): Gpx {
  const doc = parseXml(xml);
  const gpx = child(doc, "gpx");
  if (!gpx) throw new Error("not a GPX file (no <gpx> element)");
  const groups: Gpx["groups"] = {};
  for (const g of descendants(gpx, "group")) {
    if (g.attrs.name !== undefined) groups[g.attrs.name] = { color: cssColor(g.attrs.color) };
  }
  const waypoints: Waypoint[] = [];
  for (const w of gpx.children.filter((c) => c.name === "wpt")) {
    const p = point(w);
    if (!p) continue;
    const group = childText(w, "type");
    if (group && !(group in groups)) groups[group] = {};
    const wp: Waypoint = { ...p, name: childText(w, "name"), group };
    const color = extensionColor(w) ?? groups[group]?.color;
    if (color) wp.color = color;
    const desc = childText(w, "desc");
    if (desc) wp.description = desc;
    waypoints.push(wp);
  }
  const tracks: Track[] = [];
  for (const t of gpx.children.filter((c) => c.name === "trk" || c.name === "rte")) {
    const segments =
      t.name === "trk"
        ? t.children.filter((c) => c.name === "trkseg").map((s) => s.children.filter((c) => c.name === "trkpt"))
        : [t.children.filter((c) => c.name === "rtept")];
    const parsed = segments.map((s) => s.map(point).filter((p): p is Point => p !== null)).filter((s) => s.length > 0);
    if (parsed.length === 0) continue;
    const track: Track = { name: childText(t, "name"), segments: parsed };
    const color = extensionColor(t);
    if (color) track.color = color;
    tracks.push(track);
  }
  const metadata = child(gpx, "metadata");
  return { name: metadata ? childText(metadata, "name") : "", waypoints, tracks, groups };
}

// ---- statistics -------------------------------------------------------------------------------

const EARTH_RADIUS_M = 6371008.8; // mean radius (IUGG)

/** Great-circle distance in metres (haversine). */
export function distance(a: Point, b: Point): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

export interface TrackStats {
  distanceMeters: number;
  durationSeconds: number | null; // null when the points carry no times
  elevationGainMeters: number | null; // null when the points carry no elevations
  points: number;
}

/** Distance along each segment (no jump between segments counts), time from the first to the
 * last timed point of each segment added up, and the climb: every rise between consecutive
 * points with an elevation, within a segment. */
export function trackStats(track: Track): TrackStats {
  let meters = 0;
  let seconds: number | null = null;
  let gain: number | null = null;
  let points = 0;
  for (const seg of track.segments) {
    points += seg.length;
    for (let i = 1; i < seg.length; i++) meters += distance(seg[i - 1], seg[i]);
    const timed = seg.filter((p) => p.time !== undefined);
    if (timed.length >= 2) seconds = (seconds ?? 0) + (timed[timed.length - 1].time! - timed[0].time!) / 1000;
    let previous: number | undefined;
    for (const p of seg) {
      if (p.ele === undefined) continue;
      if (previous !== undefined) gain = (gain ?? 0) + Math.max(0, p.ele - previous);
      else gain = gain ?? 0;
      previous = p.ele;
    }
  }
  return { distanceMeters: meters, durationSeconds: seconds, elevationGainMeters: gain, points };
}
