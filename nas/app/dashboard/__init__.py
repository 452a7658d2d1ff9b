"""The live dashboard: a read-only web page over one or more run stores (``nas dashboard``).

``nas.app.dashboard.server.make_server`` builds it; ``nas.app.dashboard.assets`` holds its static files."""
