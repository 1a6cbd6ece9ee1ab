// The catalogue of data types by category (libs/common osmcloud_common/datatypes.py).
export const CATEGORIES = ["settings", "my_places", "resources"] as const;
export type Category = (typeof CATEGORIES)[number];

export const TYPES: Record<string, Category> = {
  GLOBAL: "settings",
  PROFILE: "settings",
  QUICK_ACTIONS: "settings",
  POI_UI_FILTERS: "settings",
  AVOID_ROADS: "settings",
  MAP_SOURCES: "settings",
  ONLINE_ROUTING_ENGINES: "settings",
  FAVOURITES: "my_places",
  GPX: "my_places",
  OSM_NOTES: "my_places",
  OSM_EDITS: "my_places",
  ACTIVE_MARKERS: "my_places",
  HISTORY_MARKERS: "my_places",
  SEARCH_HISTORY: "my_places",
  NAVIGATION_HISTORY: "my_places",
  ITINERARY_GROUPS: "my_places",
  MULTIMEDIA_NOTES: "my_places",
  DOWNLOADS: "resources",
  CUSTOM_RENDER_STYLE: "resources",
  CUSTOM_ROUTING: "resources",
  TTS_VOICE: "resources",
  VOICE: "resources",
  FILE: "resources",
};

export function typesOf(category: string | null): string[] {
  return Object.keys(TYPES).filter((t) => !category || TYPES[t] === category);
}

/** A type for a dropped file: tracks and favourites by their name, anything else FILE. */
export function guessType(fileName: string): string {
  const lower = fileName.toLowerCase();
  if (lower.endsWith(".gpx")) return /favou?rites?/.test(lower) ? "FAVOURITES" : "GPX";
  if (lower.endsWith(".osf") || lower.endsWith(".json")) return "FILE";
  return "FILE";
}
