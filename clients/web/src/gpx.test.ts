import { describe, expect, it } from "vitest";
import { cssColor, distance, parseGpx, parseXml, trackStats } from "./gpx";

// Points along the Greenwich meridian: 0.01 degree of latitude is 1111.95 m on the mean sphere.
const TRACK = `<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="OsmAnd" xmlns="http://www.topografix.com/GPX/1/1" xmlns:osmand="https://osmand.net">
  <metadata><name>Test &amp; ride</name></metadata>
  <trk>
    <name>Morning &lt;loop&gt;</name>
    <extensions><osmand:color>#ff0000ff</osmand:color></extensions>
    <trkseg>
      <trkpt lat="0.00" lon="0"><ele>10</ele><time>2024-05-01T08:00:00Z</time></trkpt>
      <trkpt lat="0.01" lon="0"><ele>25</ele><time>2024-05-01T08:04:00Z</time></trkpt>
      <trkpt lat="0.02" lon="0"><ele>20</ele><time>2024-05-01T08:10:00Z</time></trkpt>
    </trkseg>
    <trkseg>
      <trkpt lat="0.10" lon="0"><ele>100</ele><time>2024-05-01T09:00:00Z</time></trkpt>
      <trkpt lat="0.11" lon="0"><ele>120</ele><time>2024-05-01T09:05:00Z</time></trkpt>
    </trkseg>
  </trk>
</gpx>`;

const FAVOURITES = `<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>
<gpx version="1.1" creator="OsmAnd~ 4.7" xmlns="http://www.topografix.com/GPX/1/1" xmlns:osmand="https://osmand.net">
  <wpt lat="52.3676" lon="4.9041">
    <name>Home</name>
    <type>Family</type>
    <extensions><osmand:color>#ff10c0f0</osmand:color><osmand:icon>special_house</osmand:icon></extensions>
  </wpt>
  <wpt lat="52.0907" lon="5.1214"><name><![CDATA[Café <Utrecht>]]></name><type>Food</type></wpt>
  <wpt lat="51.9244" lon="4.4777"><name>No group</name></wpt>
  <wpt lat="999" lon="4"><name>broken</name></wpt>
  <extensions>
    <osmand:points_groups>
      <group name="Food" color="#ffee8800" icon="restaurant" background="circle"/>
      <group name="Family" color="#ff00ff00"/>
    </osmand:points_groups>
  </extensions>
</gpx>`;

describe("parseGpx", () => {
  it("reads tracks with their segments, names, entities and colour", () => {
    const gpx = parseGpx(TRACK);
    expect(gpx.name).toBe("Test & ride");
    expect(gpx.tracks).toHaveLength(1);
    const [track] = gpx.tracks;
    expect(track.name).toBe("Morning <loop>");
    expect(track.color).toBe("#0000ff");
    expect(track.segments.map((s) => s.length)).toEqual([3, 2]);
    expect(track.segments[0][1]).toEqual({ lat: 0.01, lon: 0, ele: 25, time: Date.parse("2024-05-01T08:04:00Z") });
  });

  it("reads favourites grouped as OsmAnd groups them, with their colours", () => {
    const gpx = parseGpx(FAVOURITES);
    expect(gpx.waypoints.map((w) => [w.name, w.group, w.color])).toEqual([
      ["Home", "Family", "#10c0f0"], // the point's own colour wins over its group's
      ["Café <Utrecht>", "Food", "#ee8800"], // the group's colour
      ["No group", "", undefined],
    ]);
    expect(Object.keys(gpx.groups).sort()).toEqual(["Family", "Food"]);
    expect(gpx.tracks).toEqual([]);
  });

  it("refuses what is not GPX, with a reason", () => {
    expect(() => parseGpx("<kml></kml>")).toThrow(/not a GPX file/);
    expect(() => parseGpx("<gpx><trk></gpx>")).toThrow(/does not match/);
    expect(() => parseGpx("<gpx><trk>")).toThrow(/not closed/);
    expect(() => parseXml("<a>1 < 2</a>")).toThrow(/unexpected/);
  });

  it("reads routes as tracks", () => {
    const gpx = parseGpx(`<gpx><rte><name>r</name><rtept lat="1" lon="2"/><rtept lat="1.01" lon="2"/></rte></gpx>`);
    expect(gpx.tracks[0].segments[0]).toEqual([{ lat: 1, lon: 2 }, { lat: 1.01, lon: 2 }]);
  });
});

describe("trackStats", () => {
  it("computes a track's known length, duration and climb", () => {
    const stats = trackStats(parseGpx(TRACK).tracks[0]);
    // 3 steps of 0.01 degree along a meridian; no distance counted between the two segments
    expect(stats.distanceMeters).toBeCloseTo(3 * 1111.95, 0);
    // 10 min in the first segment + 5 min in the second
    expect(stats.durationSeconds).toBe(15 * 60);
    // +15, -5 (no loss counted), then +20 in the second segment; 20 -> 100 between segments is no climb
    expect(stats.elevationGainMeters).toBe(35);
    expect(stats.points).toBe(5);
  });

  it("says unknown for duration and climb when the points carry no time or elevation", () => {
    const stats = trackStats({ name: "", segments: [[{ lat: 0, lon: 0 }, { lat: 0, lon: 1 }]] });
    expect(stats.durationSeconds).toBeNull();
    expect(stats.elevationGainMeters).toBeNull();
    expect(stats.distanceMeters).toBeCloseTo(111195, -1); // one degree of longitude on the equator
  });

  it("measures great-circle distance", () => {
    // Amsterdam Centraal to Utrecht Centraal: about 35 km as the crow flies
    expect(distance({ lat: 52.3791, lon: 4.9003 }, { lat: 52.0894, lon: 5.1101 }) / 1000).toBeCloseTo(35.2, 0);
  });
});

describe("cssColor", () => {
  it("turns OsmAnd's #AARRGGBB into CSS", () => {
    expect(cssColor("#80ff0000")).toBe("#ff0000");
    expect(cssColor("#00FF00")).toBe("#00ff00");
    expect(cssColor("red")).toBeUndefined();
  });
});
