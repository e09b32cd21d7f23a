"""Peregrine's web UI: an embedded alert store fed from the alerts topic, and an authenticated dashboard over it."""
