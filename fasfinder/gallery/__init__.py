"""The gallery: SQLite as the single source of truth, one FAISS index per engine as derived state."""

from .store import Gallery, GalleryRecord, SearchHit

__all__ = ["Gallery", "GalleryRecord", "SearchHit"]
