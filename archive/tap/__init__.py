"""TAP 1.1: ADQL translation, sync and async (UWS) queries, VOSI, TAP_SCHEMA, uploads."""
