"""The live dashboard: a read-only web page over one or more run stores (``nas dashboard``)."""

from nas.dashboard.server import DashboardServer, make_server

__all__ = ["DashboardServer", "make_server"]
