"""The catalog API: public reads and the admin API (API.md)."""
