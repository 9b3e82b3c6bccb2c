"""Thumbnails of dataset images: made from the file the scan saw, cached on disk."""
