"""The catalogue of data types (PRODUCT.md §6). A type is part of a file's identity and
belongs to one category. Names follow OsmAnd's wire names so both APIs share files."""

from enum import StrEnum


class Category(StrEnum):
    SETTINGS = "settings"
    MY_PLACES = "my_places"
    RESOURCES = "resources"


TYPE_CATEGORIES: dict[str, Category] = {
    # Settings
    "GLOBAL": Category.SETTINGS,
    "PROFILE": Category.SETTINGS,
    "QUICK_ACTIONS": Category.SETTINGS,
    "POI_UI_FILTERS": Category.SETTINGS,
    "AVOID_ROADS": Category.SETTINGS,
    "MAP_SOURCES": Category.SETTINGS,
    "ONLINE_ROUTING_ENGINES": Category.SETTINGS,
    # My Places
    "FAVOURITES": Category.MY_PLACES,
    "GPX": Category.MY_PLACES,
    "OSM_NOTES": Category.MY_PLACES,
    "OSM_EDITS": Category.MY_PLACES,
    "ACTIVE_MARKERS": Category.MY_PLACES,
    "HISTORY_MARKERS": Category.MY_PLACES,
    "SEARCH_HISTORY": Category.MY_PLACES,
    "NAVIGATION_HISTORY": Category.MY_PLACES,
    "ITINERARY_GROUPS": Category.MY_PLACES,
    "MULTIMEDIA_NOTES": Category.MY_PLACES,
    # Resources (maps themselves are never stored: DOWNLOADS is the list of a device's maps)
    "DOWNLOADS": Category.RESOURCES,
    "CUSTOM_RENDER_STYLE": Category.RESOURCES,
    "CUSTOM_ROUTING": Category.RESOURCES,
    "TTS_VOICE": Category.RESOURCES,
    "VOICE": Category.RESOURCES,
    "FILE": Category.RESOURCES,
}

START_TYPES: frozenset[str] = frozenset({"FAVOURITES", "GLOBAL", "PROFILE", "OSM_EDITS", "OSM_NOTES"})


def category_of(file_type: str) -> Category:
    return TYPE_CATEGORIES[file_type]
