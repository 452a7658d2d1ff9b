"""The live dashboard: a read-only web page over one or more run stores (``nas dashboard``).

``nas.dashboard.server.make_server`` builds it; ``nas.dashboard.assets`` holds its static files."""
