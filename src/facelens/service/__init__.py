"""service: the HTTP API and web UI (an edge: reads settings, serves the pipeline)."""
