"""The web UI at /ui: the catalog, runs and quality of the registry, server-rendered (Jinja2,
inline SVG charts, one stylesheet): no script, no CDN, relative links only."""
